"""RP3beta and EASE on hand-computed cases and against independent formulations."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import Ridge

from stages.models.ease import ease_bytes, fit_ease, load_ease
from stages.models.knn import load_knn
from stages.models.rp3beta import block_bounds, fit_rp3beta, rp3beta_walk, top_k_per_row
from tests.stages.test_models import HALF, N_ITEMS, N_USERS, _clusters, _top_unheard


def _csr(rows: list[list[float]]) -> sp.csr_matrix:
    return sp.csr_matrix(np.array(rows, dtype=np.float32))


def test_rp3beta_matches_the_hand_computed_walk():
    # u0 plays 0, 1; u1 and u2 play 0, 2. pop = [3, 1, 2]; every user has 2 tracks.
    x = _csr([[1, 1, 0], [1, 0, 1], [1, 0, 1]])
    w = fit_rp3beta(x, alpha=1.0, beta=0.5, neighbours=2).similarity.toarray()
    expected = np.array(
        [
            [0, (1 / 3) * (1 / 2) * 1, 2 * (1 / 3) * (1 / 2) * 2**-0.5],
            [1 * (1 / 2) * 3**-0.5, 0, 0],
            [2 * (1 / 2) * (1 / 2) * 3**-0.5, 0, 0],
        ]
    )
    np.testing.assert_allclose(w, expected, rtol=1e-6)


def test_rp3beta_popularity_penalty_changes_the_nearest_neighbour():
    # track 0 shares 2 listeners with the popular track 1 and 1 with the rare track 2
    x = _csr([[1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 1, 0], [0, 1, 0], [0, 1, 0]])
    plain = fit_rp3beta(x, alpha=1.0, beta=0.0, neighbours=1).similarity
    penalised = fit_rp3beta(x, alpha=1.0, beta=1.0, neighbours=1).similarity
    assert plain[[0]].indices.tolist() == [1]
    assert penalised[[0]].indices.tolist() == [2]


def _dense_rp3beta(x: np.ndarray, *, alpha: float, beta: float, k: int) -> np.ndarray:
    """The paper's definition on dense arrays, row by row (the reference)."""
    heard = (x > 0).astype(np.float64)
    pop = heard.sum(axis=0)
    p_ui = x / np.maximum(x.sum(axis=1, keepdims=True), 1e-300)
    p_iu = heard.T / np.maximum(pop[:, None], 1e-300)
    w = (p_iu**alpha) @ (p_ui**alpha) * np.where(pop > 0, pop, 1.0) ** -beta
    np.fill_diagonal(w, 0)
    out = np.zeros_like(w)
    for i, row in enumerate(w):
        top = np.argsort(-row, kind="stable")[:k]
        top = top[row[top] > 0]
        out[i, top] = row[top]
    return out


@pytest.mark.parametrize(("seed", "density"), [(0, 0.3), (1, 0.3), (2, 0.05)])
def test_rp3beta_in_many_blocks_equals_the_dense_definition(seed, density):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 4, size=(40, 30)).astype(np.float32) * (rng.random((40, 30)) < density)
    x[:, 7] = 0  # a track nobody played
    model = fit_rp3beta(sp.csr_matrix(x), alpha=0.7, beta=0.3, neighbours=5, block_entries=40)
    expected = _dense_rp3beta(x.astype(np.float64), alpha=0.7, beta=0.3, k=5)
    np.testing.assert_allclose(model.similarity.toarray(), expected, rtol=1e-5, atol=1e-7)
    assert model.similarity.dtype == np.float32
    assert (np.diff(model.similarity.indptr) <= 5).all()
    p_iu, p_ui, _ = rp3beta_walk(sp.csr_matrix(x), alpha=0.7, beta=0.3)
    assert len(block_bounds(p_iu, p_ui, block_entries=40)) >= 3


def test_block_bounds_cut_on_each_tracks_product_row_bound():
    # listeners' track counts: u0 3, u1 1, u2 2, u3 0; track 3 has no listener. Row bounds:
    # the sum of the listeners' counts [5, 4, 5, 0], at most the 4 tracks: [4, 4, 4, 0]
    x = _csr([[1, 2, 1, 0], [0, 3, 0, 0], [4, 0, 1, 0], [0, 0, 0, 0]])
    p_iu, p_ui, _ = rp3beta_walk(x, alpha=1.0, beta=0.5)
    assert block_bounds(p_iu, p_ui, block_entries=4) == [(0, 1), (1, 2), (2, 4)]
    assert block_bounds(p_iu, p_ui, block_entries=8) == [(0, 2), (2, 4)]
    assert block_bounds(p_iu, p_ui, block_entries=100) == [(0, 4)]
    halves = [[0.5, 0, 0.5, 0], [0.5, 0.5, 0, 0], [0.5, 0, 0.5, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(p_iu.toarray(), halves)
    np.testing.assert_allclose(p_ui.toarray(), x.toarray() / [[4], [3], [5], [1]], rtol=1e-7)


def test_top_k_per_row_breaks_ties_by_column_and_drops_the_diagonal():
    cells = np.zeros((2, 64))
    cells[0, :4] = [5.0, 2.0, 2.0, 2.0]
    cells[1, :4] = [1.0, 3.0, 0.0, 3.0]
    top = top_k_per_row(sp.csr_matrix(cells), k=2, row_offset=0).toarray()  # sparse path
    expected = np.zeros((2, 64))
    expected[0, 1:3] = 2.0
    expected[1, [0, 3]] = [1.0, 3.0]
    np.testing.assert_array_equal(top, expected)


def test_top_k_per_row_of_a_dense_block_keeps_the_k_largest_off_the_diagonal():
    block = sp.csr_matrix(np.array([[9.0, 1.0, 4.0, 3.0], [2.0, 8.0, 0.0, 5.0], [0, 0, 0, 0]]))
    top = top_k_per_row(block, k=2, row_offset=1).toarray()  # diagonal: (0, 1), (1, 2), (2, 3)
    np.testing.assert_array_equal(top, [[9, 0, 4, 0], [0, 8, 0, 5], [0, 0, 0, 0]])


def test_ease_matches_the_hand_computed_two_track_case():
    # G + I = [[3, 1], [1, 2]]: B[1, 0] = 1/2, B[0, 1] = 1/3 (one-variable ridge regressions)
    model = fit_ease(_csr([[1, 1], [1, 0]]), regularization=1.0)
    np.testing.assert_allclose(model.weights, [[0, 1 / 3], [1 / 2, 0]], rtol=1e-6)


def test_ease_columns_are_ridge_regressions_on_the_other_tracks():
    rng = np.random.default_rng(3)
    x = (rng.random((50, 8)) < 0.4).astype(np.float32)
    model = fit_ease(sp.csr_matrix(x), regularization=2.0)
    for j in range(8):
        others = np.delete(np.arange(8), j)
        ridge = Ridge(alpha=2.0, fit_intercept=False, solver="cholesky").fit(x[:, others], x[:, j])
        np.testing.assert_allclose(model.weights[others, j], ridge.coef_, rtol=1e-4, atol=1e-5)
        assert model.weights[j, j] == 0


def test_ease_refuses_a_catalogue_above_the_memory_plan_before_allocating():
    x = sp.csr_matrix((10, 800_000), dtype=np.float32)
    with pytest.raises(MemoryError, match=r"800,000 tracks needs 2,384\.2 GiB \(2\.6 TB\)"):
        fit_ease(x, regularization=100.0, max_bytes=20 * 2**30)
    assert ease_bytes(800_000) == 4 * 800_000**2


@pytest.mark.parametrize("name", ["rp3beta", "ease"])
def test_cluster_listeners_get_their_own_cluster_and_files_round_trip(name):
    x = _clusters()
    if name == "rp3beta":
        model = fit_rp3beta(x, alpha=1.0, beta=0.5, neighbours=10)
        loaded = load_knn(model.arrays())
    else:
        model = fit_ease(x, regularization=10.0)
        loaded = load_ease(model.arrays())
    users = np.arange(N_USERS)
    top = _top_unheard(model.score(users, x), x, n=3)
    assert (top[: N_USERS // 2] < HALF).all()
    assert (top[N_USERS // 2 :] >= HALF).all()
    np.testing.assert_array_equal(loaded.score(users, x), model.score(users, x))
    assert loaded.score(users, x).shape == (N_USERS, N_ITEMS)
