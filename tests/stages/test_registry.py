"""The model registry: every spec fits, saves, loads and does what its capabilities say."""

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from musicrec_cli.artifacts import load_arrays
from musicrec_cli.config import ConfigError, TrainConfig
from musicrec_cli.config_load import load_config
from stages.models import (
    Explains,
    Factorised,
    FoldIn,
    NotScorableError,
    SimilarTracks,
    UserHistory,
    fitting,
    registry,
)
from stages.models.training import TrainingData
from tests.stages.test_models import HALF, N_ITEMS, N_USERS, _audio, _clusters

PROTOCOLS = {"similar": SimilarTracks, "fold_in": FoldIn, "explain": Explains}
SETTINGS = TrainConfig(
    factors=2,
    iterations=15,
    alpha=10.0,
    seed=1,
    bpr_factors=8,
    bpr_iterations=300,
    bpr_learning_rate=0.1,
    knn_neighbours=10,
)


@pytest.fixture(scope="module")
def data() -> TrainingData:
    weights = _clusters().tocoo()
    frame = pl.DataFrame(
        {
            "user_idx": pl.Series(weights.row, dtype=pl.UInt32),
            "track_idx": pl.Series(weights.col, dtype=pl.UInt32),
            "weight": pl.Series(weights.data, dtype=pl.Float32),
            "play_count": pl.Series(np.rint(np.expm1(weights.data)), dtype=pl.UInt32),
            "last_ts": pl.Series([dt.datetime(2024, 1, 1, tzinfo=dt.UTC)] * weights.nnz),
        }
    )
    return TrainingData.build(frame, _audio(), n_users=N_USERS, n_tracks=N_ITEMS)


@pytest.fixture(scope="module")
def fitted(data: TrainingData) -> dict:
    out: dict = {}
    for name in registry.fit_order(registry.names()):
        out[name] = registry.fit(name, data, SETTINGS, {k: m for k, (m, _) in out.items()})
    return out


def test_every_parameter_is_a_train_setting():
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in registry.names():
        keys = set(registry.spec(name).config_keys().values())
        assert keys <= known, name


def test_fit_order_puts_components_first_and_keeps_the_rest_in_order():
    assert registry.fit_order(("hybrid", "bpr")) == (
        "als",
        "content",
        "popularity",
        "rp3beta",
        "hybrid",
        "bpr",
    )
    assert registry.fit_order(("knn", "als", "knn")) == ("knn", "als")


@pytest.mark.parametrize("name", registry.names())
def test_capabilities_are_what_the_model_implements(name, fitted):
    model, _ = fitted[name]
    declared = registry.spec(name).capabilities
    implemented = {c for c, protocol in PROTOCOLS.items() if isinstance(model, protocol)}
    assert implemented == declared


@pytest.mark.parametrize("name", registry.names())
def test_saved_arrays_and_record_load_the_same_model(name, fitted, tmp_path: Path):
    model, record = fitted[name]
    path = tmp_path / f"{name}.npz"
    with path.open("wb") as handle:
        np.savez(handle, **model.arrays())
    loaded = registry.load(name, load_arrays(path), record)
    users, rows = np.arange(N_USERS), _clusters()
    np.testing.assert_array_equal(loaded.score(users, rows), model.score(users, rows))
    if isinstance(model, FoldIn):
        np.testing.assert_array_equal(loaded.score_new(rows[:3]), model.score_new(rows[:3]))


@pytest.mark.parametrize("name", registry.with_capability("similar"))
def test_similar_tracks_stay_in_the_seed_cluster(name, fitted):
    model, _ = fitted[name]
    scores = model.similar_items(0)
    scores[0] = -np.inf
    assert (np.argsort(-scores, kind="stable")[:3] < HALF).all()


def test_content_has_no_similar_tracks_for_a_track_without_features(fitted):
    with pytest.raises(NotScorableError, match=f"track {N_ITEMS - 1} has no audio features"):
        fitted["content"][0].similar_items(N_ITEMS - 1)


@pytest.mark.parametrize("name", registry.with_capability("explain"))
def test_explanations_name_only_heard_tracks(name, fitted):
    model, _ = fitted[name]
    row = _clusters()[[0]]
    target = int(np.setdiff1d(np.arange(HALF), row.indices)[0])
    found = model.explain(UserHistory(user_idx=0, counts=row, weights=row), target, n=3)
    assert found.contributions
    for pairs in found.contributions.values():
        assert {i for i, _ in pairs} <= set(row.indices.tolist())


def test_factor_models_are_the_ones_with_factors(fitted):
    assert {n for n, (m, _) in fitted.items() if isinstance(m, Factorised)} == {"als", "bpr"}


def test_records_are_what_models_json_keeps(fitted):
    assert fitted["popularity"][1] == {}
    assert fitted["content"][1] == {"n_features": 3}
    assert fitted["knn"][1] == {"similarity": "cosine", "neighbours": 10}
    assert list(fitted["als"][1]) == [
        "factors",
        "iterations",
        "regularization",
        "alpha",
        "seed",
        "confidence",
    ]
    assert fitted["hybrid"][1]["liked"] == [0.7, 0.3, 0.0, 0.0]


def test_config_validates_model_names_against_the_registry(monkeypatch):
    with pytest.raises(ConfigError, match=r"train\]\.models.*model names from \['popularity'"):
        load_config(overrides=['train.models=["popularity", "nope"]'])
    extra = dataclasses.replace(registry.MODELS["popularity"], name="other")
    monkeypatch.setitem(registry.MODELS, "other", extra)
    assert load_config(overrides=['train.models=["other"]']).train.models == ("other",)


@pytest.mark.parametrize("confidence", ["log", "bm25", "binary", "raw"])
def test_als_confidence_picks_the_matrix_it_fits_19(confidence, data):
    params = registry.spec("als").params_from(dataclasses.replace(SETTINGS, confidence=confidence))
    got = fitting.als_matrix(data, params)
    assert (got.indices == data.weights.indices).all()
    expected = {
        "log": data.weights.data,
        "binary": np.ones(data.weights.nnz),
        "raw": data.counts().data,
    }.get(confidence)
    if expected is None:  # bm25: a different weighting of the same counts
        assert not np.allclose(got.data, data.counts().data)
    else:
        np.testing.assert_array_equal(got.data, expected)
