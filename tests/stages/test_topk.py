"""FactorTopK's two branches, each exact against a float64 brute force, and the choice."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from stages import topk


def _brute_force_sets(queries: np.ndarray, items: np.ndarray, heard: np.ndarray, k: int) -> list:
    """Best k unheard tracks per row as sets, scored in float64."""
    scores = queries.astype(np.float64) @ items.astype(np.float64).T
    scores[heard] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [set(row[np.isfinite(s[row])].tolist()) for row, s in zip(order, scores, strict=True)]


def _force(monkeypatch: pytest.MonkeyPatch, branch: str) -> None:
    monkeypatch.setattr(topk, "choose_branch", lambda width, k, candidates: branch)


@pytest.mark.parametrize("branch", ["pruned", "sampled"])
@pytest.mark.parametrize("skew", ["gaussian", "skewed", "unit"])
def test_each_branch_gives_the_float64_top_k_sets(
    monkeypatch: pytest.MonkeyPatch, branch: str, skew: str
) -> None:
    rng = np.random.default_rng(20)
    n_users, n_items, k = 300, 5000, 25
    items = rng.normal(size=(n_items, 16))
    if skew == "skewed":  # as the benchmark's items: norms spread over ~30x
        items /= (rng.permutation(n_items)[:, None] + 10.0) ** 0.3
    if skew == "unit":
        items /= np.linalg.norm(items, axis=1, keepdims=True)
    queries = rng.normal(size=(n_users, 16)) + 0.3
    heard = rng.random((n_users, n_items)) < 0.02
    heard[3, : n_items - 10] = True  # fewer than k unheard tracks
    monkeypatch.setattr(topk, "PROBE_TRACKS", 512)
    monkeypatch.setattr(topk, "TILE_TRACKS", 700)  # the sample, then six tiles
    _force(monkeypatch, branch)
    top = topk.FactorTopK(items.astype(np.float32), threads=2)
    idx, best = top(queries.astype(np.float32), sp.csr_matrix(heard), k)
    assert top.branches == {branch: 2}
    want = _brute_force_sets(queries, items, heard, k)
    got = [set(row[row >= 0].tolist()) for row in idx]
    wrong = [u for u in range(n_users) if got[u] != want[u]]
    assert not wrong, f"{len(wrong)} of {n_users} users get a wrong set, e.g. {wrong[:5]}"
    assert (idx[3] >= 0).sum() == 10
    assert (np.diff(np.maximum(best, -1e30), axis=1) <= 0).all()  # best first, then padding


@pytest.mark.parametrize("pad_limit", [3, 1 << 16])
def test_sampled_branch_keeps_ties_and_order_of_the_pruned_one(
    monkeypatch: pytest.MonkeyPatch, pad_limit: int
) -> None:
    """Integer factors: exact float32 scores with many ties; both branches, the same lists."""
    rng = np.random.default_rng(pad_limit)
    items = rng.integers(-2, 3, size=(400, 3)).astype(np.float32)
    queries = rng.integers(-2, 3, size=(50, 3)).astype(np.float32)
    heard = sp.csr_matrix(rng.random((50, 400)) < 0.1)
    monkeypatch.setattr(topk, "PROBE_TRACKS", 16)
    monkeypatch.setattr(topk, "PAD_LIMIT", pad_limit)  # 3: every row partitioned on its own
    monkeypatch.setattr(topk, "TILE_TRACKS", 50)
    lists = {}
    for branch in ("pruned", "sampled"):
        _force(monkeypatch, branch)
        lists[branch] = topk.FactorTopK(items, threads=2)(queries, heard, 10)
    np.testing.assert_array_equal(lists["pruned"][0], lists["sampled"][0])
    np.testing.assert_array_equal(lists["pruned"][1], lists["sampled"][1])
    scores = queries @ items.T
    scores[heard.toarray()] = -np.inf
    want = np.lexsort((np.broadcast_to(np.arange(400), scores.shape), -scores), axis=1)[:, :10]
    np.testing.assert_array_equal(lists["sampled"][0], want)


def test_cost_estimate_sorts_few_candidates_and_samples_many() -> None:
    k = 100
    # the default data: the probe sees the whole catalogue, about k candidates
    assert topk.choose_branch(3_798, k, candidates=120) == "pruned"
    # skewed norms: even the whole catalogue lets few scores past the probe's threshold
    assert topk.choose_branch(800_000, k, candidates=300) == "pruned"
    # Gaussian factors: k n / PROBE_TRACKS candidates
    assert topk.choose_branch(800_000, k, candidates=19_500) == "sampled"
    assert topk.choose_branch(805_000, 20, candidates=3_900) == "sampled"  # unit vectors
    assert topk.sample_size(800_000, k) == pytest.approx(32_660, rel=0.01)
    assert topk.sample_size(1000, k) == 1000  # never more than the row


def test_gaussian_factors_take_the_sampled_branch_and_skewed_ones_prune() -> None:
    rng = np.random.default_rng(3)
    n_items = 40_000  # enough tracks for the probe to pay (topk.PROBE_PAYS)
    gaussian = rng.normal(size=(n_items, 64)).astype(np.float32)
    skewed = gaussian / ((np.arange(n_items)[:, None] + 10.0) ** 0.5).astype(np.float32)
    queries = rng.normal(size=(256, 64)).astype(np.float32)
    heard = sp.csr_matrix((256, n_items), dtype=np.float32)
    plain = topk.FactorTopK(gaussian, threads=1)
    plain(queries, heard, 100)
    pruned = topk.FactorTopK(skewed, threads=1)
    pruned(queries, heard, 100)
    assert plain.branches == {"sampled": 1}
    assert pruned.branches == {"pruned": 1}


def test_small_catalogue_is_scored_whole_without_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under PROBE_PAYS probes' worth of tracks the probe would cost what pruning saves."""
    rng = np.random.default_rng(9)
    items = (rng.normal(size=(3000, 8)) / (np.arange(3000)[:, None] + 1.0)).astype(np.float32)
    queries = rng.normal(size=(40, 8)).astype(np.float32) + 1
    heard = sp.csr_matrix(rng.random((40, 3000)) < 0.05)

    def no_probe(*_: object) -> None:
        raise AssertionError

    monkeypatch.setattr(topk.FactorTopK, "_prefix", no_probe)
    idx, _ = topk.FactorTopK(items, threads=1)(queries, heard, 20)
    assert [set(r) for r in idx.tolist()] == _brute_force_sets(queries, items, heard.toarray(), 20)
