"""Top-N scoring: known-answer factors, filtering, padding, and both scorers agreeing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest
import scipy.sparse as sp

from stages import ann, predict, topk
from stages.models.als import AlsModel
from stages.models.popularity import PopularityModel

# Item 0 points east, 1 nearly east, 2 north-east, 3 north, 4 west-south-west.
ITEMS = np.array([[1, 0], [0.9, 0.1], [0.5, 0.5], [0, 1], [-1, -0.2]], dtype=np.float32)
USERS = np.array([[1, 0], [0, 1]], dtype=np.float32)  # user 0 faces east, user 1 north


@dataclass(frozen=True)
class DenseOnly:
    """The same scores as AlsModel, but without factor attributes: forces the generic path."""

    model: AlsModel

    @property
    def n_items(self) -> int:
        return self.model.n_items

    def score(self, user_idx: npt.NDArray[np.int64], user_items: sp.csr_matrix) -> np.ndarray:
        return self.model.score(user_idx, user_items)

    def arrays(self) -> dict[str, np.ndarray]:
        return self.model.arrays()


def _heard(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    indptr = np.cumsum([0, *(len(r) for r in rows)])
    indices = np.array([i for r in rows for i in r], dtype=np.int32)
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_items))


@pytest.fixture(params=["factors", "dense"])
def model(request: pytest.FixtureRequest) -> object:
    als = AlsModel(user_factors=USERS, item_factors=ITEMS)
    return als if request.param == "factors" else DenseOnly(als)


def test_is_factorised_only_for_factor_models() -> None:
    als = AlsModel(user_factors=USERS, item_factors=ITEMS)
    assert predict.is_factorised(als)
    assert not predict.is_factorised(DenseOnly(als))


def _top_n_frame(model: object, users: np.ndarray, user_items: object, *, n: int) -> pl.DataFrame:
    """What the predict runner does for one block: candidates, then ranked rows."""
    idx, best = predict.candidates(model, users, user_items[users], k=n)
    return predict.ranked_frame(users, idx, best, model_name="m")


def test_known_answer_top3_without_heard_tracks(model: object) -> None:
    user_items = _heard([[0], [3]], 5)
    frame = _top_n_frame(model, np.array([0, 1]), user_items, n=3)
    assert frame.to_dict(as_series=False) == {
        "user_idx": [0, 0, 0, 1, 1, 1],
        "rank": [1, 2, 3, 1, 2, 3],
        "track_idx": [1, 2, 3, 2, 1, 0],
        "score": pytest.approx([0.9, 0.5, 0.0, 0.5, 0.1, 0.0]),
        "model": ["m"] * 6,
    }


def test_padding_dropped_when_fewer_than_n_unheard(model: object) -> None:
    user_items = _heard([[0, 1, 2], [0, 1, 2, 3, 4]], 5)
    frame = _top_n_frame(model, np.array([0, 1]), user_items, n=10)
    assert frame["user_idx"].to_list() == [0, 0]
    assert frame["rank"].to_list() == [1, 2]
    assert frame["track_idx"].to_list() == [3, 4]


def test_candidates_pad_with_minus_one_and_minus_inf(model: object) -> None:
    idx, best = predict.candidates(model, np.array([0]), _heard([[0, 1, 2, 3]], 5), k=3)
    assert idx.tolist() == [[4, -1, -1]]
    assert best[0, 0] == pytest.approx(-1.0)
    assert np.isneginf(best[0, 1:]).all()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_heard_never_recommended_and_both_scorers_agree(seed: int) -> None:
    rng = np.random.default_rng(seed)
    als = AlsModel(
        user_factors=rng.normal(size=(40, 8)).astype(np.float32),
        item_factors=rng.normal(size=(60, 8)).astype(np.float32),
    )
    user_items = sp.random(40, 60, density=0.3, format="csr", rng=rng, dtype=np.float32)
    users = np.arange(40)
    fast = predict.candidates(als, users, user_items, k=20)
    slow = predict.candidates(DenseOnly(als), users, user_items, k=20)
    np.testing.assert_array_equal(fast[0], slow[0])
    # float32 sums in another order: errors of ~1e-7 x |user| x |item| (~8), even near 0
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-5, atol=1e-5)
    heard = user_items.toarray() > 0
    picked = fast[0] >= 0
    assert not heard[np.repeat(users, 20)[picked.ravel()], fast[0][picked]].any()
    assert (picked.sum(axis=1) == np.minimum(20, 60 - heard.sum(axis=1))).all()


def _brute_force(scores: np.ndarray, heard: np.ndarray, k: int) -> np.ndarray:
    """Best k unheard per row by (score descending, index), padded with -1."""
    out = np.full((len(scores), k), -1)
    for row, (s, h) in enumerate(zip(scores, heard, strict=True)):
        ranked = [i for i in np.lexsort((np.arange(len(s)), -s)) if not h[i]][:k]
        out[row, : len(ranked)] = ranked
    return out


@pytest.mark.parametrize(("probe", "rows"), [(6, 4), (40, 3), (1000, 256)])
def test_factor_top_k_threshold_is_exact_with_ties_and_heavy_users(
    monkeypatch: pytest.MonkeyPatch, probe: int, rows: int
) -> None:
    rng = np.random.default_rng(probe)
    items = rng.integers(-2, 3, size=(80, 3)).astype(np.float32)  # many tied scores
    queries = rng.integers(-2, 3, size=(23, 3)).astype(np.float32)
    heard = rng.random((23, 80)) < 0.2
    heard[5, :75] = True  # fewer than k unheard tracks at all
    heard[7, items[:, 0] > 0] = True  # heard most probe tracks: the argpartition fallback
    monkeypatch.setattr(topk, "PROBE_TRACKS", probe)
    monkeypatch.setattr(topk, "SCORE_ROWS", rows)
    idx, best = predict.FactorTopK(items, threads=2)(queries, sp.csr_matrix(heard), 10)
    want = _brute_force(queries @ items.T, heard, 10)
    np.testing.assert_array_equal(idx, want)
    scores = queries @ items.T
    np.testing.assert_array_equal(best[want >= 0], np.take_along_axis(scores, want, 1)[want >= 0])
    assert np.isneginf(best[want < 0]).all()


@pytest.mark.parametrize("probe", [256, 4096])
def test_factor_top_k_equals_brute_force_for_1500_users(
    monkeypatch: pytest.MonkeyPatch, probe: int
) -> None:
    """Pruning by norm must never drop a track of the true top k (a 20% looser bound does)."""
    rng = np.random.default_rng(15)
    n_users, n_items, k = 1500, 3000, 20
    # popular tracks have long factor vectors, as in a fitted ALS: norms spread over 10x
    items = rng.normal(size=(n_items, 8)) * rng.lognormal(0, 0.6, size=(n_items, 1))
    queries = rng.normal(size=(n_users, 8)) + 0.5  # a shared taste direction: bounds > 0
    heard = sp.random(n_users, n_items, density=0.01, format="csr", rng=rng, dtype=np.float32)
    monkeypatch.setattr(topk, "PROBE_TRACKS", probe)
    items, queries = items.astype(np.float32), queries.astype(np.float32)
    idx, _ = predict.FactorTopK(items, threads=2)(queries, heard, k)
    scores = queries @ items.T
    scores[heard.toarray() > 0] = -np.inf
    want = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    wrong = (idx != want).any(axis=1)
    assert not wrong.any(), f"{wrong.sum()} of {n_users} users get a wrong list"


def test_similar_block_excludes_self_and_orders_by_cosine() -> None:
    unit = predict.unit_rows(ITEMS)
    seeds = np.array([0, 3])
    frame = predict.similar_frame(seeds, *predict.similar_block(predict.FactorTopK(unit), seeds, 2))
    assert frame.to_dict(as_series=False) | {"similarity": None} == {
        "track_idx": [0, 0, 3, 3],
        "rank": [1, 2, 1, 2],
        "similar_track_idx": [1, 2, 2, 1],
        "similarity": None,
    }
    cos_01 = 0.9 / np.hypot(0.9, 0.1)
    assert frame["similarity"].to_list() == pytest.approx(
        [cos_01, 2**-0.5, 2**-0.5, 0.1 / np.hypot(0.9, 0.1)]
    )


def test_unit_rows_keeps_zero_rows_zero() -> None:
    out = predict.unit_rows(np.array([[3, 4], [0, 0]], dtype=np.float32))
    assert out.tolist() == [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]


def test_dense_path_in_sub_blocks_gives_the_same_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    als = AlsModel(
        user_factors=rng.normal(size=(9, 4)).astype(np.float32),
        item_factors=rng.normal(size=(12, 4)).astype(np.float32),
    )
    user_items = sp.random(9, 12, density=0.3, format="csr", rng=rng, dtype=np.float32)
    whole = predict.candidates(DenseOnly(als), np.arange(9), user_items, k=5)
    monkeypatch.setattr(predict, "DENSE_CELLS", 2 * 12)  # two users at a time
    parts = predict.candidates(DenseOnly(als), np.arange(9), user_items, k=5)
    np.testing.assert_array_equal(whole[0], parts[0])
    np.testing.assert_allclose(whole[1], parts[1], rtol=1e-6)  # GEMM rounding by batch size


@pytest.mark.parametrize("seed", [4, 5])
def test_shared_scores_fast_path_equals_dense_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pop = PopularityModel(item_scores=rng.integers(0, 6, 30).astype(np.float32) / 6)  # ties
    dense = sp.random(8, 30, density=0.4, rng=rng, dtype=np.float32).toarray()
    dense[3] = 1.0  # a user who heard everything
    user_items = sp.csr_matrix(dense)
    users = np.arange(8)
    fast = predict.candidates(pop, users, user_items, k=10)
    order = np.lexsort((np.arange(30), -pop.item_scores))  # best first, ties: lower index
    heard = dense > 0
    for user in users:
        want = [int(i) for i in order if not heard[user, i]][:10]
        want += [-1] * (10 - len(want))
        assert fast[0][user].tolist() == want
    np.testing.assert_array_equal(fast[1][fast[0] >= 0], pop.item_scores[fast[0][fast[0] >= 0]])


def test_hnsw_matches_exact_on_a_small_catalogue() -> None:
    rng = np.random.default_rng(11)
    als = AlsModel(
        user_factors=rng.normal(size=(30, 8)).astype(np.float32),
        item_factors=rng.normal(size=(150, 8)).astype(np.float32),
    )
    user_items = sp.random(30, 150, density=0.2, format="csr", rng=rng, dtype=np.float32)
    index = ann.build_hnsw(als.item_factors, m=16, ef_construction=200)
    users = np.arange(30)
    approx = ann.search_unheard(
        index, als.user_factors, user_items, k=10, overfetch=150, ef_search=300
    )
    exact = predict.candidates(als, users, user_items, k=10)
    np.testing.assert_array_equal(approx[0], exact[0])
    np.testing.assert_allclose(approx[1], exact[1], rtol=1e-5)


def test_hnsw_drops_heard_tracks_and_pads() -> None:
    index = ann.build_hnsw(ITEMS, m=4, ef_construction=20)
    idx, best = ann.search_unheard(
        index, USERS, _heard([[0, 1, 2], [0, 1, 2, 3, 4]], 5), k=3, overfetch=5, ef_search=10
    )
    assert idx.tolist() == [[3, 4, -1], [-1, -1, -1]]
    assert best[0, :2].tolist() == pytest.approx([0.0, -1.0])
    assert np.isneginf(best[1]).all()


@dataclass(frozen=True)
class FromHistory:
    """A dense model whose scores come from the history alone (item-kNN-like): track i scores
    the number of heard tracks i + 1 and i - 1."""

    n_items: int = 5

    def score(self, user_idx: npt.NDArray[np.int64], user_items: sp.csr_matrix) -> np.ndarray:
        heard = user_items.toarray() > 0
        return (np.roll(heard, 1, axis=1) + np.roll(heard, -1, axis=1)).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {}


@pytest.mark.parametrize(
    "model",
    [AlsModel(user_factors=USERS, item_factors=ITEMS), DenseOnly(AlsModel(
        user_factors=USERS, item_factors=ITEMS)), PopularityModel(
        item_scores=np.array([5, 4, 3, 2, 1], dtype=np.float32))],
    ids=["factors", "dense", "shared"],
)  # fmt: skip
def test_keep_heard_lists_heard_tracks_too(model: object) -> None:
    """One person's replay test: the heard track 0 is user 0's best and stays in the list."""
    heard = _heard([[0], [3]], 5)
    idx, _ = predict.scorer(model, keep_heard=True)(np.array([0, 1]), heard, 2)
    assert idx[0, 0] == 0
    unheard, _ = predict.scorer(model)(np.array([0, 1]), heard, 2)
    assert 0 not in unheard[0]


def test_keep_heard_still_scores_from_the_history() -> None:
    idx, best = predict.scorer(FromHistory(), keep_heard=True)(np.array([0]), _heard([[2]], 5), 2)
    assert sorted(idx[0].tolist()) == [1, 3]
    assert best[0].tolist() == [1.0, 1.0]
