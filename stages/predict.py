"""Top-N recommendations per user, already-heard tracks removed, one block of users at a time.

`scorer` chooses, once per model, one of three paths that give the same lists: a generic one for
any `Recommender` (dense scores, then argpartition, in sub-blocks of at most DENSE_CELLS scores);
one for `Factorised` models (AlsModel, BprModel: the score is user_factors @ item_factors.T),
`stages.topk.FactorTopK`: GEMMs into reused buffers on every core, pruned by norms where that
pays, then a score threshold instead of a full selection (or an approximate index built by the
caller); and one for
`SharedScores` models giving every user the same `item_scores` row (popularity): one sort of
the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeGuard

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from stages.models import Factorised, Recommender, SharedScores
from stages.schema import MODEL, RANK, SCORE, TRACK_IDX, USER_ID, USER_IDX

# FactorTopK is re-exported: the runner, Spark's predict and the benchmarks build it from here
from stages.topk import FactorTopK as FactorTopK
from stages.topk import top_n, topk_shared

SIMILAR_TRACK_IDX = "similar_track_idx"
SIMILARITY = "similarity"
# the generic scorer holds at most this many dense scores at once (64 MiB of float32)
DENSE_CELLS = 1 << 24


# (user_idx block, its (b, n_items) heard CSR, k) -> (b, k) track indexes and scores, best first
Scorer = Callable[
    [npt.NDArray[np.int64], sp.csr_matrix, int],
    tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]],
]
# (queries (b, f), heard (b, n_items) CSR, k) -> the same: FactorTopK, or an approximate index
FactorSearch = Callable[
    [npt.NDArray[np.float32], sp.csr_matrix, int],
    tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]],
]


def is_factorised(model: object) -> TypeGuard[Factorised]:
    """True if `model` has 2-D `user_factors` and `item_factors` of the same width."""
    if not isinstance(model, Factorised):
        return False
    users, items = model.user_factors, model.item_factors
    return (
        isinstance(users, np.ndarray)
        and isinstance(items, np.ndarray)
        and users.ndim == items.ndim == 2
        and users.shape[1] == items.shape[1]
    )


def _nothing_heard(heard: sp.csr_matrix) -> sp.csr_matrix:
    return sp.csr_matrix(heard.shape, dtype=heard.dtype)


def scorer(
    model: Recommender,
    *,
    factor_search: Callable[[Factorised], FactorSearch] | None = None,
    keep_heard: bool = False,
) -> Scorer:
    """How to rank `model`: the one place that chooses between the three paths.

    Args:
        model: A trained recommender.
        factor_search: For factorised models, builds the search over their item factors (an
            approximate index, say); None: the exact FactorTopK.
        keep_heard: Heard tracks stay in the lists (the history still feeds the scores): for a
            test of what a user plays again (one person's log, split test_view "replay").

    Returns:
        (user_idx block, its heard CSR, k) -> (b, min(k, n_items)) int64 track indexes and
        float32 scores, best first; index -1 and score -inf pad users with fewer than k
        unheard tracks.
    """
    masked = _nothing_heard if keep_heard else (lambda heard: heard)
    if is_factorised(model):
        search = factor_search(model) if factor_search else FactorTopK(model.item_factors)
        users = model.user_factors
        return lambda block, heard, k: search(users[block], masked(heard), k)
    if isinstance(model, SharedScores) and model.item_scores.shape == (model.n_items,):
        shared = np.asarray(model.item_scores, dtype=np.float32)
        return lambda _block, heard, k: topk_shared(shared, masked(heard), k)
    return lambda block, heard, k: _topk_dense(model, block, heard, k, exclude=masked(heard))


def candidates(
    model: Recommender, user_idx: npt.NDArray[np.int64], user_items: sp.csr_matrix, *, k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The `k` best unheard tracks for each user of one block, exactly (see `scorer`).

    Args:
        model: A trained recommender.
        user_idx: (b,) users of the block.
        user_items: (b, n_items) CSR of those users' training interactions (row i = user_idx[i]).
        k: Tracks per user.
    """
    return scorer(model)(user_idx, user_items, k)


def _topk_dense(
    model: Recommender,
    user_idx: npt.NDArray[np.int64],
    user_items: sp.csr_matrix,
    k: int,
    *,
    exclude: sp.csr_matrix,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Dense scores then `top_n` without `exclude`'s tracks, DENSE_CELLS scores at a time.

    `exclude` is `user_items` unless heard tracks are kept (`scorer`'s keep_heard); sorting
    needs twice the scores' memory.
    """
    step = max(1, DENSE_CELLS // max(model.n_items, 1))
    parts = [
        top_n(
            model.score(user_idx[i : i + step], user_items[i : i + step]),
            exclude[i : i + step],
            n=k,
        )
        for i in range(0, len(user_idx), step)
    ]
    if not parts:
        width = min(k, model.n_items)
        return np.empty((0, width), dtype=np.int64), np.empty((0, width), dtype=np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def ranked_frame(
    user_idx: npt.NDArray[np.int64],
    idx: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    *,
    model_name: str,
) -> pl.DataFrame:
    """Rows (user_idx, rank, track_idx, score, model) of a (b, n) block of ranked lists.

    Args:
        user_idx: (b,) users, row i of `idx` and `scores` belongs to user_idx[i].
        idx: (b, n) int64 track indexes, best first; -1 marks padding.
        scores: (b, n) float32 scores to write.
        model_name: Value of the `model` column.

    Returns:
        One row per (user_idx, rank) in that order, rank 1 = best; padding dropped, so a user
        with fewer tracks has ranks 1..m without gaps.
    """
    width = idx.shape[1]
    frame = pl.DataFrame(
        {
            USER_IDX: pl.Series(np.repeat(user_idx, width), dtype=pl.UInt32),
            RANK: pl.Series(np.tile(np.arange(1, width + 1), len(user_idx)), dtype=pl.UInt16),
            TRACK_IDX: pl.Series(idx.ravel(), dtype=pl.Int64),
            SCORE: pl.Series(scores.ravel(), dtype=pl.Float32),
        }
    )
    return frame.filter(pl.col(TRACK_IDX) >= 0).with_columns(
        pl.col(TRACK_IDX).cast(pl.UInt32), pl.lit(model_name).alias(MODEL)
    )


def unit_rows(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Rows scaled to length 1 (zero rows stay zero), for cosine similarity: (n, d) float32."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = np.divide(
        vectors, norms, out=np.zeros_like(vectors), where=norms > 0
    ).astype(np.float32)
    return unit


def similar_block(
    cosine: FactorTopK, track_idx: npt.NDArray[np.int64], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The `k` nearest tracks by cosine for a block of tracks, the track itself excluded.

    Args:
        cosine: A FactorTopK over item vectors of length 1 (see `unit_rows`).
        track_idx: (b,) tracks of the block.
        k: Neighbours per track.

    Returns:
        (b, k) int64 neighbours and float32 cosines, most similar first; -1 / -inf padding
        (`similar_frame` turns them into rows; `stages.songs.similar_lists` keeps one version
        per song).
    """
    self_rows = sp.csr_matrix(
        (np.ones(len(track_idx), dtype=np.float32), track_idx, np.arange(len(track_idx) + 1)),
        shape=(len(track_idx), cosine.items.shape[0]),
    )
    return cosine(cosine.items[track_idx], self_rows, k)


def similar_frame(
    track_idx: npt.NDArray[np.int64],
    idx: npt.NDArray[np.int64],
    similarity: npt.NDArray[np.float32],
) -> pl.DataFrame:
    """Rows (track_idx, rank, similar_track_idx, similarity) of (b, k) neighbour lists.

    Args:
        track_idx: (b,) tracks; row i of `idx` holds the neighbours of track_idx[i].
        idx: (b, k) int64 neighbours, most similar first; -1 marks padding (dropped).
        similarity: (b, k) float32 cosines.
    """
    frame = ranked_frame(track_idx, idx, similarity, model_name="")
    return frame.select(
        pl.col(USER_IDX).alias(TRACK_IDX),
        RANK,
        pl.col(TRACK_IDX).alias(SIMILAR_TRACK_IDX),
        pl.col(SCORE).alias(SIMILARITY),
    )


def select_users(
    user_ids: pl.Series, user_items: sp.csr_matrix, requested: pl.Series | None
) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Users to score (sorted user_idx) and the requested ids that are unknown.

    Without a request: every user with at least one training interaction. With one: every known
    requested user (a user without training history still gets the models' best guess).

    Args:
        user_ids: The user vocabulary, position = user_idx.
        user_items: (n_users, n_items) CSR of training interactions.
        requested: Ids asked for (unique), or None for everybody.

    Returns:
        Sorted user_idx to score, and the requested ids not in the vocabulary (in file order).
    """
    if requested is None:
        return np.flatnonzero(np.diff(user_items.indptr) > 0).astype(np.int64), []
    vocab = pl.DataFrame({USER_ID: user_ids, USER_IDX: np.arange(len(user_ids), dtype=np.int64)})
    found = pl.DataFrame({USER_ID: requested}).join(
        vocab, on=USER_ID, how="left", maintain_order="left"
    )
    unknown = found.filter(pl.col(USER_IDX).is_null())[USER_ID].to_list()
    return np.sort(found[USER_IDX].drop_nulls().to_numpy()).astype(np.int64), unknown
