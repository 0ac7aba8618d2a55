"""Top-N recommendations per user, already-heard tracks removed, one block of users at a time.

`scorer` chooses, once per model, one of three paths that give the same lists: a generic one for
any `Recommender` (dense scores, then argpartition, in sub-blocks of at most DENSE_CELLS scores);
one for `Factorised` models (AlsModel, BprModel: the score is user_factors @ item_factors.T),
FactorTopK: a GEMM per 256 users into reused buffers on every core, then a score threshold
instead of a full selection (or an approximate index built by the caller); and one for
`SharedScores` models giving every user the same `item_scores` row (popularity): one sort of
the catalogue.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeGuard

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from stages.interactions import entry_rows
from stages.models import Factorised, Recommender, SharedScores
from stages.schema import MODEL, RANK, SCORE, TRACK_IDX, USER_ID, USER_IDX

SIMILAR_TRACK_IDX = "similar_track_idx"
SIMILARITY = "similarity"
# the generic scorer holds at most this many dense scores at once (64 MiB of float32)
DENSE_CELLS = 1 << 24
# FactorTopK: tracks of largest norm whose scores bound each user's k-th best from below
PROBE_TRACKS = 4096
# FactorTopK: users one thread scores at once, (rows, n_items) float32 in a reused buffer
SCORE_ROWS = 256


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


def top_n(
    scores: npt.NDArray[np.float32], user_items: sp.csr_matrix, *, n: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Best `n` unheard tracks per row of `scores`.

    Args:
        scores: (b, n_items) float32, modified in place (heard tracks set to -inf).
        user_items: (b, n_items) CSR; its non-zeros are the tracks to leave out.
        n: How many to keep; rows with fewer unheard tracks are padded with index -1.

    Returns:
        (b, min(n, n_items)) int64 track indexes and float32 scores, best first; padding has
        index -1 and score -inf. Ties inside the list keep the lower track index first; which of
        several tracks tied at the cut-off makes the list is left to argpartition.
    """
    scores[entry_rows(user_items), user_items.indices] = -np.inf
    n_keep = min(n, scores.shape[1])
    part = np.argpartition(-scores, n_keep - 1, axis=1)[:, :n_keep]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    best = np.take_along_axis(part_scores, order, axis=1)
    idx = np.where(np.isneginf(best), -1, idx)
    return idx, best


class FactorTopK:
    """Exact top-k of queries @ items.T without heard tracks, pruned by norms, on every core.

    Tracks are kept sorted by norm, largest first. A user's k-th best unheard score among the
    first PROBE_TRACKS of them, t, bounds their k-th best overall from below, and a track can
    only reach t if |q| |v| >= t (Cauchy-Schwarz): when t > 0 only the prefix of tracks with
    |v| >= t / |q| is scored (about 2% of the catalogue for the median user of the 800M-event ALS
    model, 8% at the 99th percentile). Users are sorted by that prefix and scored SCORE_ROWS at a
    time per thread by one GEMM into reused buffers (a fresh array page-faults on every block);
    the scores >= t are the candidates, sorted by (score descending, track index), so ties at the
    cut-off go to the lower index. Users with t <= 0, or fewer than k unheard probe tracks, are
    scored over the whole catalogue.
    """

    def __init__(self, items: npt.NDArray[np.float32], *, threads: int | None = None) -> None:
        self.items = np.asarray(items, dtype=np.float32)
        norms = np.linalg.norm(self.items, axis=1)
        self.order = np.argsort(-norms, kind="stable")  # sorted position -> track index
        self.position = np.empty_like(self.order)
        self.position[self.order] = np.arange(len(self.order))
        self.sorted_items = np.ascontiguousarray(self.items[self.order])
        self.neg_norms = -norms[self.order]  # ascending, for searchsorted
        self.threads = threads or len(os.sched_getaffinity(0))
        self._buffers: queue.SimpleQueue[tuple[np.ndarray, np.ndarray]] = queue.SimpleQueue()

    def __call__(
        self, queries: npt.NDArray[np.float32], heard: sp.csr_matrix, k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(b, min(k, n_items)) track indexes and scores, best first; -1 and -inf pad.

        Args:
            queries: (b, f) user (or item) vectors.
            heard: (b, n_items) CSR; its non-zeros are left out of row i's list.
            k: Tracks per row.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        b, k = len(queries), min(k, len(self.items))
        idx = np.full((b, k), -1, dtype=np.int64)
        best = np.full((b, k), -np.inf, dtype=np.float32)
        if b == 0 or k == 0:
            return idx, best
        heard = sp.csr_matrix(heard)
        prefix = self._prefix(queries, heard, k)
        by_prefix = np.argsort(prefix, kind="stable")
        chunks = [by_prefix[i : i + SCORE_ROWS] for i in range(0, b, SCORE_ROWS)]

        def score(rows: npt.NDArray[np.int64]) -> None:
            width = int(prefix[rows].max())
            idx[rows], best[rows] = self._rows(queries[rows], heard[rows], width, k)

        # one BLAS thread per worker: a second pool under each thread only oversubscribes
        with threadpool_limits(1, "blas"), ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(score, chunks))
        return idx, best

    def _probe_bound(self, scores: np.ndarray, k: int) -> npt.NDArray[np.float32]:
        """Each row's k-th best among the probe columns of masked `scores`; -inf if none."""
        size = min(PROBE_TRACKS, scores.shape[1])
        if size < k:
            return np.full(len(scores), -np.inf, dtype=np.float32)
        return np.partition(scores[:, :size], size - k, axis=1)[:, size - k]

    def _mask_heard(self, scores: np.ndarray, heard: sp.csr_matrix) -> None:
        rows = entry_rows(heard)
        cols = self.position[heard.indices]
        inside = cols < scores.shape[1]
        scores[rows[inside], cols[inside]] = -np.inf

    def _prefix(self, queries: np.ndarray, heard: sp.csr_matrix, k: int) -> npt.NDArray[np.int64]:
        """How many of the sorted tracks each row must score to find its top k."""
        n = len(self.items)
        probe = queries @ self.sorted_items[: min(PROBE_TRACKS, n)].T
        self._mask_heard(probe, heard)
        bound = self._probe_bound(probe, k)
        norms = np.linalg.norm(queries, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            reach = bound * np.float32(1 - 1e-4) / norms  # margin for float rounding
        prefix: npt.NDArray[np.int64] = np.searchsorted(self.neg_norms, -reach, side="right")
        prefix[~(bound > 0)] = n  # no useful bound (also norms == 0)
        return prefix

    def _rows(
        self, queries: np.ndarray, heard: sp.csr_matrix, width: int, k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        try:
            score_buffer, above_buffer = self._buffers.get_nowait()
        except queue.Empty:
            score_buffer = np.empty(SCORE_ROWS * len(self.items), dtype=np.float32)
            above_buffer = np.empty(len(score_buffer), dtype=bool)
        try:
            b = len(queries)
            scores = score_buffer[: b * width].reshape(b, width)
            above = above_buffer[: b * width].reshape(b, width)
            np.dot(queries, self.sorted_items[:width].T, out=scores)
            self._mask_heard(scores, heard)
            bound = self._probe_bound(scores, k)
            bound[np.isneginf(bound)] = np.finfo(np.float32).min  # every unheard track
            np.greater_equal(scores, bound[:, None], out=above)
            flat = np.flatnonzero(above)
            row, col = np.divmod(flat, width)
            value, track = scores.ravel()[flat], self.order[col]
        finally:
            self._buffers.put((score_buffer, above_buffer))
        order = np.lexsort((track, -value, row))
        row, track, value = row[order], track[order], value[order]
        rank = np.arange(len(row)) - np.searchsorted(row, row)
        keep = rank < k
        idx = np.full((b, k), -1, dtype=np.int64)
        best = np.full((b, k), -np.inf, dtype=np.float32)
        idx[row[keep], rank[keep]] = track[keep]
        best[row[keep], rank[keep]] = value[keep]
        return idx, best


def _topk_shared(
    item_scores: npt.NDArray[np.float32], user_items: sp.csr_matrix, k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Top-k for models that give every user the same scores (popularity); ties: lower index.

    Only the k + (most tracks any user of the block heard) best tracks can make a list, so the
    work is one partial sort of the catalogue plus a (b, that many) mask, not (b, n_items).
    """
    n_items, b = len(item_scores), user_items.shape[0]
    k = min(k, n_items)
    width = min(n_items, k + int(np.diff(user_items.indptr).max(initial=0)))
    # every track scoring at least the width-th best, so ties at the cut are all kept
    cut = -np.partition(-item_scores, width - 1)[width - 1]
    top = np.flatnonzero(item_scores >= cut)
    top = top[np.lexsort((top, -item_scores[top]))][:width]  # best first, ties: lower index
    column = np.full(n_items, -1, dtype=np.int64)
    column[top] = np.arange(width)
    rows = entry_rows(user_items)
    cols = column[user_items.indices]
    heard = np.zeros((b, width), dtype=bool)
    heard[rows[cols >= 0], cols[cols >= 0]] = True
    order = np.argsort(heard, axis=1, kind="stable")[:, :k]  # unheard first, in global order
    missing = np.take_along_axis(heard, order, axis=1)
    idx = np.where(missing, -1, top[order])
    return idx, np.where(missing, -np.inf, item_scores[top[order]]).astype(np.float32)


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
        return lambda _block, heard, k: _topk_shared(shared, masked(heard), k)
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
