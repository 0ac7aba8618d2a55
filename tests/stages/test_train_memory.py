"""Train's memory savings change no number: ALS's alpha scaling and popularity's counts.

`fit_als` scales by alpha itself (in place when no later model reads the weights) and must
give the factors of a fit on the matrix scaled beforehand, bit for bit. The weights CSR is
build_matrix's, filled batch by batch (tests/stages/test_preprocess_matrix.py).
"""

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from musicrec_cli.runner.train import weights_spare
from stages.models import fitting, registry
from stages.models.als import fit_als
from stages.models.training import TrainingData
from tests.stages.test_models import N_ITEMS, N_USERS, _clusters

ALS = {"factors": 2, "iterations": 15, "regularization": 0.05, "seed": 1}


def _pairs(matrix: sp.csr_matrix) -> pl.DataFrame:
    coo = matrix.tocoo()
    return pl.DataFrame(
        {
            "user_idx": pl.Series(coo.row, dtype=pl.UInt32),
            "track_idx": pl.Series(coo.col, dtype=pl.UInt32),
            "weight": pl.Series(coo.data, dtype=pl.Float32),
            "play_count": pl.Series(np.arange(coo.nnz) % 7 + 1, dtype=pl.UInt32),
        }
    )


def _prescaled_fit(user_items: sp.csr_matrix, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    scaled = sp.csr_matrix(user_items * np.float32(alpha), dtype=np.float32)
    model = fit_als(scaled, alpha=1.0, **ALS)
    return model.user_factors, model.item_factors


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("alpha", [1.0, 10.0, 0.3])
def test_als_scaled_by_us_equals_a_fit_on_the_prescaled_matrix_bit_for_bit(in_place, alpha):
    user_items = _clusters()
    before = user_items.data.copy()
    users, items = _prescaled_fit(user_items, alpha)
    ours = fit_als(user_items, alpha=alpha, scale_in_place=in_place, **ALS)
    np.testing.assert_array_equal(ours.user_factors, users)
    np.testing.assert_array_equal(ours.item_factors, items)
    assert ours.alpha == alpha
    scaled = before * np.float32(alpha) if in_place else before
    np.testing.assert_array_equal(user_items.data, scaled)


def _data() -> TrainingData:
    return TrainingData.build(
        _pairs(_clusters()).lazy(), np.zeros((N_ITEMS, 0)), n_users=N_USERS, n_tracks=N_ITEMS
    )


@pytest.mark.parametrize("spare", [False, True])
def test_als_overwrites_the_weights_only_when_they_are_spare(spare):
    data = _data()
    before = data.weights.data.copy()
    params = fitting.AlsParams(**ALS, alpha=10.0, confidence="log", bm25_k1=1.0, bm25_b=0.5)
    model = fitting.fit_als(TrainingData(**{**_fields(data), "weights_spare": spare}), params, {})
    np.testing.assert_array_equal(data.weights.data, before * np.float32(10.0) if spare else before)
    users, _ = _prescaled_fit(
        sp.csr_matrix((before, data.weights.indices, data.weights.indptr)), 10
    )
    np.testing.assert_array_equal(model.user_factors, users)


def _fields(data: TrainingData) -> dict:
    return {"frame": data.frame, "weights": data.weights, "audio": data.audio}


def test_weights_are_spare_after_the_last_model_that_reads_them():
    assert weights_spare(("popularity", "als")) == (False, True)
    assert weights_spare(("als", "bpr")) == (False, True)
    order = registry.fit_order(("hybrid", "blend"))
    spare = dict(zip(order, weights_spare(order), strict=True))
    assert order[-3:] == ("hybrid", "ease", "blend")
    assert not spare["als"]
    assert not spare["rp3beta"]
    assert spare["ease"]
    assert spare["content"] is False  # ease comes after it
    assert spare["hybrid"] is False
    assert spare["blend"] is True


@pytest.mark.parametrize("block", [1, 7, 1 << 24])
def test_listeners_counted_in_blocks_equal_the_csc_column_lengths(block):
    from stages.models.popularity import _column_counts

    matrix = _clusters()
    expected = np.diff(matrix.tocsc().indptr)
    np.testing.assert_array_equal(_column_counts(matrix, block=block), expected)
    assert expected.sum() == matrix.nnz
