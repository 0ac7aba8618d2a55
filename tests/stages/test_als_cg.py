"""ALS's compiled CG sweep against exact float64 solves and against implicit's own solver."""

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from stages.models import als_cg
from stages.models.als import fit_als

REG = 0.1


def _confidences(rows: int, cols: int, seed: int = 0) -> sp.csr_matrix:
    """Random confidences 1-40 with some negative (disliked) cells, some empty rows."""
    rng = np.random.default_rng(seed)
    dense = rng.random((rows, cols)) < 0.15
    dense[::7] = False  # rows without nonzeros
    values = rng.integers(1, 40, size=(rows, cols)).astype(np.float32)
    values[rng.random((rows, cols)) < 0.1] *= -1
    return sp.csr_matrix(np.where(dense, values, 0).astype(np.float32))


def _exact(conf: sp.csr_matrix, y: np.ndarray, reg: float) -> np.ndarray:
    """Each row's normal equations solved in float64 (Hu et al. 2008, eq. 4)."""
    y = y.astype(np.float64)
    base = y.T @ y + reg * np.eye(y.shape[1])
    out = np.zeros((conf.shape[0], y.shape[1]))
    for u in range(conf.shape[0]):
        cols, c = (
            conf.indices[conf.indptr[u] : conf.indptr[u + 1]],
            conf.data[conf.indptr[u] : conf.indptr[u + 1]],
        )
        if cols.size == 0:
            continue
        yu = y[cols]
        a = base + yu.T @ ((np.abs(c) - 1)[:, None] * yu)
        out[u] = np.linalg.solve(a, yu.T @ np.where(c > 0, c, 0))
    return out


def _sweep(conf: sp.csr_matrix, x: np.ndarray, y: np.ndarray, steps: int) -> np.ndarray:
    x = x.copy()
    with threadpool_limits(1, "blas"):
        als_cg.cg_sweep(conf.indptr, conf.indices, conf.data, x, y, REG, steps)
    return x


@pytest.fixture(scope="module")
def problem() -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    conf = _confidences(60, 80)
    return conf, rng.random((60, 8), dtype=np.float32) * 0.1, rng.random((80, 8), dtype=np.float32)


def test_enough_cg_steps_reach_each_rows_exact_least_squares_solution(problem):
    conf, x0, y = problem
    solved = _sweep(conf, x0, y, steps=16)
    exact = _exact(conf, y, REG)
    np.testing.assert_allclose(solved, exact, rtol=2e-3, atol=2e-4)
    empty = np.diff(conf.indptr) == 0
    assert empty.any()
    assert not solved[empty].any()


def test_rows_longer_than_the_gather_buffer_give_the_same_factors(problem, monkeypatch):
    conf, x0, y = problem
    gathered = _sweep(conf, x0, y, steps=3)
    monkeypatch.setattr(als_cg, "GATHER_BYTES", 4 * 8 * 3)  # rows of more than 3 nonzeros
    assert np.diff(conf.indptr).max() > 3
    np.testing.assert_array_equal(_sweep(conf, x0, y, steps=3), gathered)


def test_one_thread_or_two_give_the_same_factors(problem):
    conf, x0, y = problem
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        alone = _sweep(conf, x0, y, steps=3)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(_sweep(conf, x0, y, steps=3), alone)


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_a_sweep_is_as_close_to_implicits_float64_solver_as_its_float32_one(problem):
    from implicit.cpu import _als

    conf, x0, y = problem
    theirs, exact = x0.copy(), x0.astype(np.float64)
    with threadpool_limits(1, "blas"):
        _als.least_squares_cg(conf, theirs, y, REG, 0, 3)
        _als.least_squares_cg(conf, exact, y.astype(np.float64), REG, 0, 3)
    ours = _sweep(conf, x0, y, steps=3)
    assert _relative(ours, exact) < 2 * _relative(theirs, exact) + 1e-6
    assert _relative(x0, exact) > 0.5  # the sweep moved the factors


@pytest.mark.parametrize("iterations", [1, 10])  # 1: the same random start as implicit's
def test_a_fit_is_as_close_to_implicits_float64_fit_as_its_float32_one(iterations):
    from implicit.cpu.als import AlternatingLeastSquares

    conf = abs(_confidences(300, 200, seed=2))
    rng = np.random.default_rng(4)  # implicit's start for random_state=4, kept for float64
    start = [rng.random((n, 16), dtype=np.float32) * np.float32(0.01) for n in conf.shape]
    scores = {}
    with threadpool_limits(1, "blas"):
        for dtype in (np.float32, np.float64):
            model = AlternatingLeastSquares(
                factors=16, iterations=iterations, regularization=REG, random_state=4, dtype=dtype
            )
            if dtype == np.float64:
                model.user_factors, model.item_factors = (f.astype(dtype) for f in start)
            model.fit(conf, show_progress=False)
            scores[dtype] = model.user_factors @ model.item_factors.T
    ours = fit_als(conf, factors=16, iterations=iterations, regularization=REG, alpha=1.0, seed=4)
    exact = scores[np.float64]
    theirs = _relative(scores[np.float32], exact)
    assert _relative(ours.user_factors @ ours.item_factors.T, exact) < 2 * theirs + 1e-6


def test_block_starts_cut_every_row_once_by_work():
    indptr = np.concatenate([[0], np.cumsum([100_000] + [1] * 999)])  # one heavy row first
    starts = als_cg.block_starts(indptr, 4)
    assert starts[0] == 0
    assert starts[-1] == 1000
    assert np.all(np.diff(starts) > 0)
    assert starts[1] == 1  # the heavy row is a block of its own
