import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from stages.evaluate.coldstart import keep_per_row, known_track_runs, top_k
from stages.schema import MODEL, TRACK_IDX, USER_IDX


def test_keep_per_row_keeps_a_seeded_subset_of_n_entries(rng):
    rows = sp.random(50, 40, density=0.3, format="csr", random_state=1, dtype=np.float32)
    kept = keep_per_row(rows, n=3, seed=5)
    assert (np.diff(kept.indptr) == np.minimum(np.diff(rows.indptr), 3)).all()
    dense, full = kept.toarray(), rows.toarray()
    assert (dense[dense != 0] == full[dense != 0]).all()  # original entries, same values
    assert (keep_per_row(rows, n=3, seed=5) != kept).nnz == 0
    assert (keep_per_row(rows, n=3, seed=6) != kept).nnz > 0


def test_top_k_orders_by_score_and_never_returns_an_excluded_track():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.3, 0.2, 0.1, 0.0]], dtype=np.float32)
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    assert top_k(scores, exclude, k=2).tolist() == [[3, 2], [0, 1]]


def test_known_track_runs_give_each_model_exactly_n_tracks_of_the_same_users():
    # users 0-3 know 12 tracks each (0-11), user 4 only 6: left out (fewer than 10);
    # the test track of every user is 12 + user
    history = sp.csr_matrix(
        (
            np.ones(54, dtype=np.float32),
            (
                np.repeat(np.arange(5), [12] * 4 + [6]),
                np.concatenate([np.arange(12)] * 4 + [np.arange(6)]),
            ),
        ),
        shape=(5, 20),
    )
    users = np.arange(5)
    test = pl.LazyFrame(
        {USER_IDX: users.astype(np.uint32), TRACK_IDX: (12 + users).astype(np.uint32)}
    )
    seen: dict[int, list[int]] = {}

    def oracle(rows):  # finds the test track once it is given at least 3 tracks
        n = int(np.diff(rows.indptr).max())
        seen.setdefault(n, []).extend(np.diff(rows.indptr).tolist())
        scores = np.zeros(rows.shape, dtype=np.float32)
        scores[:, 19] = 0.5  # a track no one has in test
        if n >= 3:
            scores[np.arange(rows.shape[0]), 12 + np.arange(rows.shape[0])] = 1.0
        return scores

    runs = known_track_runs(
        history, users, test, {"oracle": oracle, "als": oracle}, ks=(1,), counts=(0, 1, 3, 10)
    )
    assert seen == {0: [0] * 4, 1: [1] * 8, 3: [3] * 8, 10: [10] * 8}  # als skipped at 0
    got = {
        (n, m): (u, v)
        for n, m, u, v in runs.select("known_tracks", MODEL, "n_users", "ndcg@1").rows()
    }
    assert got[(0, "oracle")] == (4, 0.0)
    assert got[(1, "oracle")] == (4, 0.0)
    assert got[(3, "oracle")] == (4, pytest.approx(1.0))
    assert (0, "als") not in got
