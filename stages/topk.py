"""Exact top-k of scores without heard tracks: the selections behind `stages.predict.scorer`.

`top_n` ranks a dense (b, n_items) score block (any model); `topk_shared` ranks one score row
shared by every user (popularity); `FactorTopK` ranks queries @ items.T for factor models, on
every core, choosing per block of users between two exact selections by a cost estimate.

Over 300 lines on purpose: FactorTopK, its two selections (`_kth_of_first`, `_kth_of_candidates`)
and the estimate that picks one per block (`sample_size`, `choose_branch`) are one algorithm
whose parts share its constants and invariants (docs/predict.md); apart, neither half reads alone.
"""

from __future__ import annotations

import itertools
import math
import os
import queue
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from stages.interactions import entry_rows

# tracks of largest norm whose scores bound each user's k-th best from below
PROBE_TRACKS = 4096
# below this many probes' worth of tracks, probing costs about what pruning could save (the
# 10K-track ALS of the 1/80 run: 0.63 CPU s with the probe, 0.34 without, implicit 0.49)
PROBE_PAYS = 8
# users one thread scores at once, (rows, width) float32 in a reused buffer
SCORE_ROWS = 256
# "sampled" branch: tracks scored at once after the sample, (rows, this) float32 = 8 MiB
TILE_TRACKS = 8192
# FactorTopK: evenly spaced tracks (by norm) that estimate each row's candidates
ESTIMATE_TRACKS = 1024
# _bound_of_first: scores per group whose maximum stands for them (a partition of 1/GROUP as
# many values: 24 -> 6 us a row for the 4,096-track probe)
GROUP = 4
# a row with more candidates than this finds its k-th best in its own scores, not a padded copy
PAD_LIMIT = 1 << 16
# Cost estimate, ns per user on this machine kind (2 cores, float32, measured 2026-12-01 on
# 800K Gaussian tracks; see benchmarks/bench_predict.py): sorting one candidate by (score,
# track) with lexsort and its gathers; one element of np.partition; one padded candidate.
CANDIDATE_NS, PARTITION_NS, PAD_NS = 450.0, 6.0, 80.0

Branch = Literal["pruned", "sampled"]
TopK = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]
Buffers = tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]
# (row, sorted position, score) of the scores that may make a list
Candidates = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]


def top_n(scores: npt.NDArray[np.float32], user_items: sp.csr_matrix, *, n: int) -> TopK:
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


def topk_shared(item_scores: npt.NDArray[np.float32], user_items: sp.csr_matrix, k: int) -> TopK:
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


def sample_size(width: int, k: int) -> int:
    """Tracks whose k-th best score is the "sampled" branch's threshold, for rows of `width`.

    Partitioning s scores costs PARTITION_NS s; the threshold then lets about k width / s
    candidates through at PAD_NS each: s = sqrt(PAD_NS k width / PARTITION_NS) balances them.
    """
    best = int(math.sqrt(PAD_NS / PARTITION_NS * k * width))
    return max(min(PROBE_TRACKS, width), min(best, width))


def choose_branch(width: int, k: int, candidates: float) -> Branch:
    """The cheaper exact selection for rows that score `width` tracks (the cost estimate).

    Args:
        width: Tracks each row of the block scores.
        k: Tracks per list.
        candidates: Estimated scores per row at or above the probe's threshold (see
            FactorTopK._prefix): what "pruned" sorts. Skewed norms keep it near k even when
            `width` is the whole catalogue; unskewed ones make it about k width / PROBE_TRACKS.

    Returns:
        "pruned" (sort every candidate of the probe's threshold) or "sampled" (partition
        sample_size(width, k) scores for a tighter threshold, find each row's exact k-th best
        among its candidates, sort only those at or above it).
    """
    s = sample_size(width, k)
    pruned = CANDIDATE_NS * candidates
    sampled = PARTITION_NS * s + PAD_NS * min(candidates, k * width / s) + CANDIDATE_NS * k
    return "pruned" if pruned <= sampled else "sampled"


def _kth_of_first(scores: np.ndarray, k: int, size: int) -> npt.NDArray[np.float32]:
    """Each row's k-th best among its first `size` columns; float32 min if fewer than k."""
    size = min(size, scores.shape[1])
    if size < k:
        return np.full(len(scores), np.finfo(np.float32).min, dtype=np.float32)
    bound = np.partition(scores[:, :size], size - k, axis=1)[:, size - k]
    bound[np.isneginf(bound)] = np.finfo(np.float32).min  # heard tracks: every unheard one
    return bound


def _bound_of_first(scores: np.ndarray, k: int, size: int) -> npt.NDArray[np.float32]:
    """A lower bound of each row's k-th best among its first `size` columns, cheaper.

    The first columns are taken GROUP at a time and each group's maximum kept: k maxima are k
    distinct scores, so the k-th best of the maxima bounds the k-th best score from below, and
    it is found by partitioning a GROUP-th as many values. The k best rarely share a group, so
    the bound is barely weaker (the candidates it lets through are still sorted exactly).
    """
    size = min(size, scores.shape[1])
    groups = size // GROUP
    if groups < k:
        return _kth_of_first(scores, k, size)
    end = groups * GROUP
    maxima = scores[:, 0:end:GROUP].copy()
    for offset in range(1, GROUP):
        np.maximum(maxima, scores[:, offset:end:GROUP], out=maxima)
    bound = np.partition(maxima, groups - k, axis=1)[:, groups - k]
    bound[np.isneginf(bound)] = np.finfo(np.float32).min  # heard tracks: every unheard one
    return bound


def _kth_of_candidates(
    row: npt.NDArray[np.int64], slot: npt.NDArray[np.int64], value: np.ndarray, b: int, k: int
) -> npt.NDArray[np.float32]:
    """Each row's exact k-th best among its candidates; -inf if it has fewer than k.

    Args:
        row: (c,) row of each candidate.
        slot: (c,) its position among its row's candidates (0, 1, ... per row).
        value: (c,) its score.
        b: Rows.
        k: Rank wanted.

    Candidates are padded into a (b, most candidates) matrix for one partition; a row with
    more than PAD_LIMIT candidates (a weak threshold: it heard most of the sample) is
    partitioned on its own instead, so the padding never approaches (b, n_items).
    """
    counts = np.bincount(row, minlength=b)
    kth = np.full(b, -np.inf, dtype=np.float32)
    for heavy in np.flatnonzero(counts > PAD_LIMIT):  # rare: no loop over ordinary rows
        kth[heavy] = np.partition(value[row == heavy], counts[heavy] - k)[counts[heavy] - k]
    light = counts <= PAD_LIMIT
    width = int(counts[light].max(initial=0))
    if width >= k:
        pad = np.full((b, width), -np.inf, dtype=np.float32)
        mine = light[row]
        pad[row[mine], slot[mine]] = value[mine]
        kth[light] = np.partition(pad[light], width - k, axis=1)[:, width - k]
    return kth


def _by_row_score_track(
    row: npt.NDArray[np.int64], track: npt.NDArray[np.int64], value: np.ndarray
) -> npt.NDArray[np.int64]:
    """The order of candidates by (row, score descending, track), as np.lexsort gives it.

    One argsort of an int64 (row, score) key, the float's bits mapped to an int of the same
    order (-0.0 as 0.0), is exact when no two of a row's candidates score the same; if some
    do, the track breaks the tie by lexsort (3x slower: 5.7 against 1.7 ms for 256 rows).
    """
    bits = (value + np.float32(0)).view(np.int32).astype(np.int64)
    key = (row << 32) - np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    order: npt.NDArray[np.int64] = np.argsort(key)
    ordered = key[order]
    if (ordered[1:] == ordered[:-1]).any():
        order = np.lexsort((track, -value, row))
    return order


class FactorTopK:
    """Exact top-k of queries @ items.T without heard tracks, on every core.

    Tracks are kept sorted by norm, largest first. A user's k-th best unheard score among the
    first PROBE_TRACKS of them, t, bounds their k-th best overall from below, and a track can
    only reach t if |q| |v| >= t (Cauchy-Schwarz): when t > 0 only the prefix of tracks with
    |v| >= t / |q| is scored (about 2% of the catalogue for the median user of the 800M-event
    ALS model). Users are sorted by that prefix and scored SCORE_ROWS at a time per thread by one
    GEMM into reused buffers (a fresh array page-faults on every block); each such block then
    takes the branch `choose_branch` estimates cheaper for its width. Both keep every score at
    or above a lower bound of the row's k-th best and sort the survivors by (score descending,
    track index), so the two give the same lists, ties at the cut-off going to the lower index.
    With unskewed norms (plain Gaussian factors, unit vectors) nothing is pruned and the
    "sampled" branch is a blocked GEMM plus a partial sort. Catalogues under PROBE_PAYS x
    PROBE_TRACKS tracks are not probed at all: every user scores them whole.
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
        self.branches: Counter[Branch] = Counter()  # blocks per branch, over every call
        self._buffers: queue.SimpleQueue[tuple[np.ndarray, np.ndarray]] = queue.SimpleQueue()

    def __call__(self, queries: npt.NDArray[np.float32], heard: sp.csr_matrix, k: int) -> TopK:
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
        n = len(self.items)
        if n >= PROBE_PAYS * PROBE_TRACKS:
            prefix, candidates = self._prefix(queries, heard, k)
        else:  # every track, and the pruned branch's candidates if scores were exchangeable
            prefix = np.full(b, n, dtype=np.int64)
            candidates = np.full(b, k * n / min(PROBE_TRACKS, n))
        by_prefix = np.argsort(prefix, kind="stable")
        chunks = [by_prefix[i : i + SCORE_ROWS] for i in range(0, b, SCORE_ROWS)]

        def score(rows: npt.NDArray[np.int64]) -> Branch:
            width = int(prefix[rows].max())
            branch = choose_branch(width, k, float(candidates[rows].mean()))
            idx[rows], best[rows] = self._rows(queries[rows], heard[rows], width, k, branch)
            return branch

        # one BLAS thread per worker: a second pool under each thread only oversubscribes
        with threadpool_limits(1, "blas"), ThreadPoolExecutor(self.threads) as pool:
            self.branches.update(pool.map(score, chunks))
        return idx, best

    def _mask_heard(self, scores: np.ndarray, heard: sp.csr_matrix) -> None:
        rows = entry_rows(heard)
        cols = self.position[heard.indices]
        inside = cols < scores.shape[1]
        scores[rows[inside], cols[inside]] = -np.inf

    def _prefix(
        self, queries: np.ndarray, heard: sp.csr_matrix, k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Tracks (in norm order) each row must score, and its estimated candidates.

        The estimate counts, among every n / ESTIMATE_TRACKS-th sorted track inside the row's
        prefix, those at or above the probe's threshold, times the spacing.
        """
        n = len(self.items)
        probe = queries @ self.sorted_items[: min(PROBE_TRACKS, n)].T
        self._mask_heard(probe, heard)
        bound = _kth_of_first(probe, k, PROBE_TRACKS)
        norms = np.linalg.norm(queries, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            reach = bound * np.float32(1 - 1e-4) / norms  # margin for float rounding
        prefix: npt.NDArray[np.int64] = np.searchsorted(self.neg_norms, -reach, side="right")
        prefix[~(bound > 0)] = n  # no useful bound (also norms == 0)
        stride = max(1, n // ESTIMATE_TRACKS)
        spaced = np.arange(0, n, stride)
        passing = (queries @ self.sorted_items[spaced].T >= bound[:, None]) & (
            spaced < prefix[:, None]
        )
        return prefix, passing.sum(axis=1) * float(stride)

    def _rows(
        self, queries: np.ndarray, heard: sp.csr_matrix, width: int, k: int, branch: Branch
    ) -> TopK:
        try:
            score_buffer, above_buffer = self._buffers.get_nowait()
        except queue.Empty:
            score_buffer = np.empty(SCORE_ROWS * len(self.items), dtype=np.float32)
            above_buffer = np.empty(len(score_buffer), dtype=bool)
        try:
            select = self._pruned if branch == "pruned" else self._sampled
            row, col, value = select(queries, heard, width, k, (score_buffer, above_buffer))
        finally:
            self._buffers.put((score_buffer, above_buffer))
        b = len(queries)
        track = self.order[col]
        order = _by_row_score_track(row, track, value)
        row, track, value = row[order], track[order], value[order]
        rank = np.arange(len(row)) - np.searchsorted(row, row)
        keep = rank < k
        idx = np.full((b, k), -1, dtype=np.int64)
        best = np.full((b, k), -np.inf, dtype=np.float32)
        idx[row[keep], rank[keep]] = track[keep]
        best[row[keep], rank[keep]] = value[keep]
        return idx, best

    def _pruned(
        self, queries: np.ndarray, heard: sp.csr_matrix, width: int, k: int, buffers: Buffers
    ) -> Candidates:
        """(row, sorted position, score) of every score >= the probe's k-th best."""
        b = len(queries)
        scores = buffers[0][: b * width].reshape(b, width)
        above = buffers[1][: b * width].reshape(b, width)
        np.dot(queries, self.sorted_items[:width].T, out=scores)
        self._mask_heard(scores, heard)
        np.greater_equal(scores, _bound_of_first(scores, k, PROBE_TRACKS)[:, None], out=above)
        flat = np.flatnonzero(above)
        row, col = np.divmod(flat, width)
        return row, col, scores.ravel()[flat]

    def _sampled(
        self, queries: np.ndarray, heard: sp.csr_matrix, width: int, k: int, buffers: Buffers
    ) -> Candidates:
        """(row, sorted position, score) of each row's k best and ties, tile by tile.

        The first sample_size(width, k) tracks give the threshold; the rest are scored
        TILE_TRACKS at a time into a slice of the buffer that stays in cache, so each score is
        compared while still there instead of after a (b, width) matrix went through memory.
        """
        b, s = len(queries), sample_size(width, k)
        # heard (row, position) pairs by position, for each tile's slice: one sort of a key
        # (the order among equal positions does not matter for masking)
        key = np.sort(self.position[heard.indices] * b + entry_rows(heard))
        pos, rows = np.divmod(key, b)
        edges = [0, *range(s, width, TILE_TRACKS), width]
        filled = np.zeros(b, dtype=np.int64)
        parts: list[tuple[np.ndarray, ...]] = []
        bound = np.empty(0, dtype=np.float32)
        for start, stop in itertools.pairwise(edges):
            scores = buffers[0][: b * (stop - start)].reshape(b, stop - start)
            np.dot(queries, self.sorted_items[start:stop].T, out=scores)
            lo, hi = np.searchsorted(pos, [start, stop])
            scores[rows[lo:hi], pos[lo:hi] - start] = -np.inf
            if start == 0:
                bound = _bound_of_first(scores, k, s)
            flat = np.flatnonzero(scores >= bound[:, None])
            row, col = np.divmod(flat, stop - start)
            counts = np.bincount(row, minlength=b)
            slot = filled[row] + np.arange(len(row)) - (np.cumsum(counts) - counts)[row]
            filled += counts
            parts.append((row, col + start, scores.ravel()[flat], slot))
        row, col, value, slot = (np.concatenate(p) for p in zip(*parts, strict=True))
        keep = value >= _kth_of_candidates(row, slot, value, b, k)[row]
        return row[keep], col[keep], value[keep]
