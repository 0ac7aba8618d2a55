"""One version per song: at most one track per track group in a list, none of a song already heard.

A song (track_group_id) can have many versions (live, remaster, radio edit). A list holding two of
them, or a version of a song the user already plays, wastes a slot. These functions work on the
(b, k) candidate arrays every scorer returns (track indexes best first, -1 padding), so they apply
to every model alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from stages.interactions import entry_rows

# drop_heard_songs marks a block's heard songs in a dense (rows, songs) bool table up to this
# many cells (16 MiB), else searches sorted keys (np.isin sorted the candidates as well: 2.7 of
# 6.3 CPU s of predict on the 1/80 model)
DENSE_HEARD = 1 << 24
Candidates = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]
# (positions of the rows to fetch, k) -> their (len(rows), k) candidates, best first
Fetch = Callable[[npt.NDArray[np.int64], int], Candidates]


def block_fetch(
    score: Callable[[npt.NDArray[Any], sp.csr_matrix, int], Candidates],
    queries: npt.NDArray[Any],
    heard: sp.csr_matrix,
) -> Fetch:
    """The Fetch of one block: `score` on the chosen rows' queries and heard tracks.

    `queries` are what the scorer takes per row: user indexes (predict's scorers) or vectors
    (FactorTopK); `heard` is the block's (b, n_items) CSR.
    """

    def fetch(rows: npt.NDArray[np.int64], k: int) -> Candidates:
        return score(queries[rows], heard[rows], k)

    return fetch


def reuse_first(fetch: Fetch, k: int, got: Candidates) -> Fetch:
    """`fetch`, except that depth `k` answers `got`, the block's candidates already scored.

    Predict scores a block's re-ranking candidates once and hands them to `plain_lists` as its
    first fetch (every row, depth k); its deeper fetches (2k, 4k, ...) still call `fetch`. The
    arrays are only read, never modified.
    """

    def reused(rows: npt.NDArray[np.int64], depth: int) -> Candidates:
        return got if depth == k else fetch(rows, depth)

    return reused


def heard_groups(user_items: sp.csr_matrix, group: npt.NDArray[np.int64]) -> sp.csr_matrix:
    """(b, n_groups) bool CSR: the groups of the tracks each row has heard.

    Args:
        user_items: (b, n_items) CSR; non-zeros are heard tracks.
        group: (n_items,) int64 group code of every track.
    """
    n_groups = int(group.max(initial=-1)) + 1
    rows = entry_rows(user_items)
    ones = np.ones(rows.size, dtype=bool)
    heard = sp.csr_matrix(
        (ones, (rows, group[user_items.indices])), shape=(user_items.shape[0], n_groups)
    )
    heard.sum_duplicates()
    return heard


def drop_heard_songs(
    idx: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    group: npt.NDArray[np.int64],
    heard: sp.csr_matrix,
) -> Candidates:
    """Candidates whose group row i has heard become padding (-1, -inf); order is kept.

    Args:
        idx: (b, k) int64 track indexes, -1 padding.
        scores: (b, k) float32 scores.
        group: (n_items,) int64 group codes.
        heard: (b, n_groups) bool CSR from `heard_groups` (row i for row i of idx).
    """
    b, n_groups = heard.shape
    valid = idx >= 0
    cand_group = group[np.where(valid, idx, 0)]
    if b * n_groups <= DENSE_HEARD:  # a (b, n_groups) table: one lookup per candidate
        table = np.zeros((b, n_groups), dtype=bool)
        table[entry_rows(heard), heard.indices] = True
        drop = valid & table[np.arange(b)[:, None], cand_group]
    else:  # each candidate searched in the sorted heard keys, the last a sentinel past all
        cand = np.arange(b)[:, None] * n_groups + cand_group
        keys = np.append(np.sort(entry_rows(heard) * n_groups + heard.indices), b * n_groups)
        drop = valid & (keys[np.searchsorted(keys, cand)] == cand)
    return np.where(drop, -1, idx), np.where(drop, -np.inf, scores).astype(np.float32)


def first_per_song(
    idx: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    group: npt.NDArray[np.int64],
    *,
    n: int,
) -> Candidates:
    """Each row's first (best-scored) track of every group, in order, the first `n` of them.

    Args:
        idx: (b, k) int64 track indexes best first; -1 padding (anywhere).
        scores: (b, k) float32 scores.
        group: (n_items,) int64 group codes.
        n: Tracks per row to return.

    Returns:
        (b, n) int64 and float32, compacted to the left; -1 and -inf pad rows with fewer groups.
    """
    return _compact(idx, scores, _first_of_each_group(idx, group), n=n)


def _first_of_each_group(
    idx: npt.NDArray[np.int64], group: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """(b, k) mask of each row's first candidate of every group (padding never kept)."""
    b, k = idx.shape
    valid = idx >= 0
    g = np.where(valid, group[np.where(valid, idx, 0)], -1)
    keep = valid.copy()
    # only rows holding two versions of one song need the first of each: a per-row sort of
    # the (b, k) groups finds them, and only they are ordered by (row, group, position)
    ordered = np.sort(g, axis=1)
    repeats = np.flatnonzero(((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any(1))
    if repeats.size:
        sub = g[repeats].ravel()
        row = np.repeat(np.arange(repeats.size), k)
        order = np.lexsort((np.tile(np.arange(k), repeats.size), sub, row))
        first_sorted = np.ones(sub.size, dtype=bool)
        first_sorted[1:] = (row[order][1:] != row[order][:-1]) | (sub[order][1:] != sub[order][:-1])
        first = np.empty(sub.size, dtype=bool)
        first[order] = first_sorted
        keep[repeats] &= first.reshape(repeats.size, k)
    return keep


def _compact(
    idx: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    keep: npt.NDArray[np.bool_],
    *,
    n: int,
) -> Candidates:
    """The first `n` kept candidates of each row, moved to the left; -1 / -inf padding."""
    b = idx.shape[0]
    slot = np.cumsum(keep, axis=1) - 1
    take = keep & (slot < n)
    out_idx = np.full((b, n), -1, dtype=np.int64)
    out_scores = np.full((b, n), -np.inf, dtype=np.float32)
    rows, cols = np.nonzero(take)
    out_idx[rows, slot[rows, cols]] = idx[rows, cols]
    out_scores[rows, slot[rows, cols]] = scores[rows, cols]
    return out_idx, out_scores


def plain_lists(
    fetch: Fetch,
    n_rows: int,
    group: npt.NDArray[np.int64],
    *,
    n: int,
    heard: sp.csr_matrix | None,
    depth: int | None = None,
    one_per_group: bool = True,
    needed: npt.NDArray[np.int64] | None = None,
) -> Candidates:
    """A block's top-n lists: one version per song unless `one_per_group` is off.

    Rows are first fetched `depth` deep; a row left with fewer than n tracks (after dropping
    heard songs and repeated versions) whose candidates were all real tracks (so more exist) is
    fetched again twice as deep, until it is full or the catalogue is exhausted: the result
    equals deduplicating the full ranking, whatever the depth (which only sets the cost).

    Args:
        fetch: (row positions, k) -> their candidates, best first (any scorer).
        n_rows: Rows in the block.
        group: (n_items,) int64 group codes.
        n: Tracks per list.
        heard: (n_rows, n_groups) bool CSR of heard groups to leave out, or None to allow them.
        depth: Depth of the first fetch (default 2n; HNSW recalls better from a deeper search).
        one_per_group: At most one track per group; off: the first n unheard-song tracks.
        needed: Optional (n_rows,) out array: the depth of the ranking each row's list came
            from (position of its n-th track + 1; the depth fetched for rows left short), what
            `next_depth` learns the next block's depth from.
    """
    depth = 2 * n if depth is None else depth
    n_items = group.size
    # off: several versions of a song may stay, but heard songs still go (and are refilled)
    keep_by = group if one_per_group else np.arange(n_items, dtype=np.int64)
    idx = np.full((n_rows, n), -1, dtype=np.int64)
    best = np.full((n_rows, n), -np.inf, dtype=np.float32)
    rows = np.arange(n_rows, dtype=np.int64)
    k = min(max(depth, n), n_items)
    while rows.size:
        cand_idx, cand_scores = fetch(rows, k)
        full = (cand_idx >= 0).all(axis=1) & (k < n_items)
        if heard is not None:
            cand_idx, cand_scores = drop_heard_songs(cand_idx, cand_scores, group, heard[rows])
        keep = _first_of_each_group(cand_idx, keep_by)
        got_idx, got_scores = _compact(cand_idx, cand_scores, keep, n=n)
        idx[rows], best[rows] = got_idx, got_scores
        if needed is not None:
            filled = np.cumsum(keep, axis=1) >= n
            needed[rows] = np.where(filled[:, -1], filled.argmax(axis=1) + 1, k)
        rows = rows[full & (got_idx < 0).any(axis=1)]
        k = min(2 * k, n_items)
    return idx, best


def next_depth(needed: npt.NDArray[np.int64], *, n: int, cap: int) -> int:
    """The first fetch's depth for the next block: what filled 99% of this block's rows.

    A shallower fetch is cheaper to select (the 800M ALS: k = 110 costs 0.43x of k = 300);
    the 1% of rows it leaves short are fetched again twice as deep by `plain_lists`.
    """
    if not needed.size:
        return cap
    return int(np.clip(np.quantile(needed, 0.99, method="inverted_cdf"), n, cap))


def own_groups(track_idx: npt.NDArray[np.int64], group: npt.NDArray[np.int64]) -> sp.csr_matrix:
    """(b, n_groups) bool CSR marking each track's own group: what a similar list leaves out.

    Args:
        track_idx: (b,) query tracks.
        group: (n_items,) int64 group codes.
    """
    n_groups = int(group.max(initial=-1)) + 1
    b = len(track_idx)
    return sp.csr_matrix(
        (np.ones(b, dtype=bool), group[track_idx], np.arange(b + 1)), shape=(b, n_groups)
    )


def similar_lists(
    fetch: Fetch,
    track_idx: npt.NDArray[np.int64],
    group: npt.NDArray[np.int64],
    *,
    n: int,
    depth: int,
    one_per_group: bool,
    needed: npt.NDArray[np.int64] | None = None,
) -> Candidates:
    """The `n` tracks most similar to each of `track_idx`: never a version of the query's song.

    The query's own group plays the part of a heard song (left out always: another version of
    the query is not a recommendation), and, as in `plain_lists`, one version per song.

    Args:
        fetch: (row positions, k) -> candidates of those queries, best first, the query itself
            already left out.
        track_idx: (b,) query tracks.
        group: (n_items,) int64 group codes.
        n: Tracks per list.
        depth: Depth of the first fetch.
        one_per_group: At most one track per group; off: only the query's song left out.
        needed: Optional (b,) out array, as for `plain_lists`.
    """
    own = own_groups(track_idx, group)
    return plain_lists(
        fetch,
        len(track_idx),
        group,
        n=n,
        heard=own,
        depth=depth,
        one_per_group=one_per_group,
        needed=needed,
    )
