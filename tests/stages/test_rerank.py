"""Re-ranking: caps respected exactly, MMR against near-duplicates, novelty boost by hand."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from stages.rerank import ItemAttributes, RerankParams, audio_matrix, novelty_scores, rerank


def _items(
    n: int,
    *,
    group: list[int] | None = None,
    artist: list[int] | None = None,
    novelty: list[float] | None = None,
    vectors: list[list[float]] | None = None,
) -> ItemAttributes:
    return ItemAttributes(
        group=np.array(group if group is not None else range(n), dtype=np.int64),
        artist=None if artist is None else np.array(artist, dtype=np.int64),
        novelty=np.array(novelty if novelty is not None else [0.0] * n, dtype=np.float32),
        vectors=None if vectors is None else np.array(vectors, dtype=np.float32),
    )


def _one_user(scores: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Candidates 0..len-1 of one user, already sorted best first."""
    return np.arange(len(scores))[None, :], np.array([scores], dtype=np.float32)


PLAIN = {"mmr_lambda": 1.0, "novelty_weight": 0.0, "max_per_artist": 0}


def test_at_most_one_track_per_group() -> None:
    idx, scores = _one_user([5, 4, 3, 2, 1])
    out, out_scores = rerank(
        idx, scores, _items(5, group=[0, 0, 1, 1, 2]), RerankParams(n=3, **PLAIN)
    )
    assert out.tolist() == [[0, 2, 4]]
    assert out_scores.tolist() == [[5.0, 3.0, 1.0]]


def test_at_most_m_tracks_per_artist() -> None:
    idx, scores = _one_user([6, 5, 4, 3, 2, 1])
    items = _items(6, artist=[7, 7, 7, 8, 8, 9])
    params = RerankParams(n=5, mmr_lambda=1.0, novelty_weight=0.0, max_per_artist=2)
    out, _ = rerank(idx, scores, items, params)
    assert out.tolist() == [[0, 1, 3, 4, 5]]
    params_one = RerankParams(n=5, mmr_lambda=1.0, novelty_weight=0.0, max_per_artist=1)
    assert rerank(idx, scores, items, params_one)[0].tolist() == [[0, 3, 5, -1, -1]]


def test_short_list_padded_when_caps_leave_too_few() -> None:
    idx = np.array([[3, 1, 2, -1]])
    scores = np.array([[0.9, 0.5, 0.4, -np.inf]], dtype=np.float32)
    out, out_scores = rerank(idx, scores, _items(4, group=[0, 5, 5, 1]), RerankParams(n=4, **PLAIN))
    assert out.tolist() == [[3, 1, -1, -1]]
    assert out_scores[0, :2].tolist() == pytest.approx([0.9, 0.5])
    assert np.isneginf(out_scores[0, 2:]).all()


# candidate 0 and its near-duplicate 1 point the same way; 2 is orthogonal and less relevant.
# rel = [1, 0.8, 0]; second pick: 1 scores lambda*0.8 - (1-lambda)*1, 2 scores 0.
MMR_ITEMS = _items(3, vectors=[[1, 0], [1, 0], [0, 1]])


@pytest.mark.parametrize(("mmr_lambda", "second"), [(0.3, 2), (0.5, 2), (0.6, 1), (0.7, 1)])
def test_mmr_prefers_diverse_item_only_when_lambda_favours_diversity(
    mmr_lambda: float, second: int
) -> None:
    idx, scores = _one_user([1.0, 0.9, 0.5])
    params = RerankParams(n=3, mmr_lambda=mmr_lambda, novelty_weight=0.0)
    out, _ = rerank(idx, scores, MMR_ITEMS, params)
    assert out[0, :2].tolist() == [0, second]


def test_mmr_lambda_one_keeps_model_order() -> None:
    idx, scores = _one_user([1.0, 0.9, 0.5])
    out, _ = rerank(idx, scores, MMR_ITEMS, RerankParams(n=3, **PLAIN))
    assert out.tolist() == [[0, 1, 2]]


def test_novelty_boost_reorders_as_computed_by_hand() -> None:
    # rel = [1, 0.5, 0] from scores [1, .8, .6]; + 0.6 * novelty [0, 1, .25] = [1, 1.1, .15]
    idx, scores = _one_user([1.0, 0.8, 0.6])
    items = _items(3, novelty=[0.0, 1.0, 0.25])
    params = RerankParams(n=3, mmr_lambda=1.0, novelty_weight=0.6)
    assert rerank(idx, scores, items, params)[0].tolist() == [[1, 0, 2]]
    # with weight 0.4: [1, 0.9, 0.1] keeps the model's order
    params_small = RerankParams(n=3, mmr_lambda=1.0, novelty_weight=0.4)
    assert rerank(idx, scores, items, params_small)[0].tolist() == [[0, 1, 2]]


def test_novelty_scores_by_hand() -> None:
    got = novelty_scores(np.array([8, 1, 2, 0]), n_users=8)
    assert got.tolist() == pytest.approx([0.0, 1.0, 2 / 3, 1.0])


def test_block_of_users_equals_each_user_alone() -> None:
    rng = np.random.default_rng(42)
    n_items, c = 30, 12
    items = ItemAttributes(
        group=rng.integers(0, 20, n_items),
        artist=rng.integers(0, 6, n_items),
        novelty=rng.random(n_items).astype(np.float32),
        vectors=rng.normal(size=(n_items, 4)).astype(np.float32),
    )
    idx = np.stack([rng.permutation(n_items)[:c] for _ in range(5)])
    idx[2, 8:] = -1
    scores = -np.sort(-rng.random((5, c)), axis=1).astype(np.float32)
    scores[idx < 0] = -np.inf
    params = RerankParams(n=6, max_per_artist=2)
    together, _ = rerank(idx, scores, items, params)
    alone = np.concatenate(
        [rerank(idx[i : i + 1], scores[i : i + 1], items, params)[0] for i in range(5)]
    )
    np.testing.assert_array_equal(together, alone)
    for row, ids in zip(together, idx, strict=True):
        picked = row[row >= 0]
        assert set(picked) <= set(ids[ids >= 0])
        assert len(set(items.group[picked])) == len(picked)
        assert np.bincount(items.artist[picked]).max() <= 2


def test_lambda_zero_is_pure_diversity_after_the_first_pick() -> None:
    # after 0, candidate 1 (cos 1) scores -1 and candidate 2 (cos 0) scores 0
    idx, scores = _one_user([1.0, 0.9, 0.5])
    params = RerankParams(n=3, mmr_lambda=0.0, novelty_weight=0.0)
    assert rerank(idx, scores, MMR_ITEMS, params)[0].tolist() == [[0, 2, 1]]


def test_audio_matrix_z_scores_and_fills_missing() -> None:
    items = pl.DataFrame({"energy": [0.0, 1.0, None], "tempo": [100.0, 100.0, 100.0]})
    # energy: mean 0.5, population std 0.5 over the two known values, unknown -> 0;
    # tempo is constant -> 0 (stages.audio.standardise)
    got = audio_matrix(items)
    assert got is not None
    assert got.tolist() == [[-1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]
    assert audio_matrix(pl.DataFrame({"x": [1]})) is None
