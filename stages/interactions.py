"""Aggregated (user, track) interactions and their sparse-matrix form, shared by several stages."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from stages.schema import (
    FIRST_TS,
    LAST_TS,
    LISTENERS,
    MS_PLAYED,
    PLAY_COUNT,
    PLAYED_AT,
    POPULARITY,
    SKIP_COUNT,
    SKIPPED,
    TOTAL_MS_PLAYED,
    TRACK_IDX,
    USER_IDX,
)


def aggregate_pairs(
    plays: pl.LazyFrame, *, keys: tuple[str, ...], maintain_order: bool = False
) -> pl.LazyFrame:
    """One row per (user, track): play_count, total_ms_played, first_ts, last_ts, skip_count.

    `maintain_order` keeps the groups in the order of the plays (fast on a sorted key). Plays
    from a count table carry their count in a play_count column, which is summed; otherwise
    each row is one play.
    """
    counted = PLAY_COUNT in plays.collect_schema()
    plays_of = pl.col(PLAY_COUNT).sum() if counted else pl.len()
    return plays.group_by(*keys, maintain_order=maintain_order).agg(
        plays_of.cast(pl.UInt32).alias(PLAY_COUNT),
        pl.col(MS_PLAYED).cast(pl.Int64).sum().alias(TOTAL_MS_PLAYED),
        pl.col(PLAYED_AT).min().alias(FIRST_TS),
        pl.col(PLAYED_AT).max().alias(LAST_TS),
        pl.col(SKIPPED).sum().cast(pl.UInt32).alias(SKIP_COUNT),
    )


def build_matrix(
    pairs: pl.LazyFrame | pl.DataFrame, *, value: str, n_users: int, n_tracks: int
) -> sp.csr_matrix:
    """(n_users, n_tracks) float32 CSR with `value` at (user_idx, track_idx).

    Pairs sorted by (user_idx, track_idx) without repeats, as events.parquet is, are written
    batch by batch straight into the CSR arrays (int32 indexes below 2^31 pairs): the peak is
    the CSR itself, 8 bytes per pair, plus one batch. Collecting the key columns and copying
    them into the arrays held about 36 bytes per pair (307M pairs at full scale). Pairs found
    out of order, or repeated, go through COO (which sums repeats) at about twice the memory.
    """
    pairs = pairs.lazy()
    nnz = int(pairs.select(pl.len()).collect().item())  # Parquet metadata for a scan
    index = np.int32 if nnz < 2**31 else np.int64
    indices: npt.NDArray[np.integer[Any]] = np.empty(nnz, dtype=index)
    data = np.empty(nnz, dtype=np.float32)
    per_user = np.zeros(n_users + 1, dtype=np.int64)
    filled, last = 0, (-1, -1)
    columns = pairs.select(USER_IDX, TRACK_IDX, pl.col(value).cast(pl.Float32))
    for batch in columns.collect_batches(chunk_size=_BATCH_ROWS):
        if batch.height == 0:
            continue
        users, tracks = batch[USER_IDX].to_numpy(), batch[TRACK_IDX].to_numpy()
        end = filled + batch.height
        first = (int(users[0]), int(tracks[0]))
        if first <= last or end > nnz or not pairs_are_sorted(users, tracks):
            return _coo_matrix(pairs, value=value, n_users=n_users, n_tracks=n_tracks)
        low, high = int(users[0]), int(users[-1])  # sorted: the batch's users are low .. high
        per_user[low + 1 : high + 2] += np.bincount(users - low)
        indices[filled:end] = tracks
        data[filled:end] = batch[value].to_numpy()
        filled, last = end, (high, int(tracks[-1]))
    if filled != nnz:
        return _coo_matrix(pairs, value=value, n_users=n_users, n_tracks=n_tracks)
    indptr: npt.NDArray[np.integer[Any]] = np.cumsum(per_user).astype(index)
    return sp.csr_matrix((data, indices, indptr), shape=(n_users, n_tracks), copy=False)


_BATCH_ROWS = 1 << 20


def _coo_matrix(pairs: pl.LazyFrame, *, value: str, n_users: int, n_tracks: int) -> sp.csr_matrix:
    """`build_matrix` of pairs in any order, repeats summed (through scipy's COO)."""
    keys = pairs.select(USER_IDX, TRACK_IDX).collect()
    users, tracks = keys[USER_IDX].to_numpy(), keys[TRACK_IDX].to_numpy()
    data = pairs.select(pl.col(value).cast(pl.Float32)).collect().to_series().to_numpy()
    return sp.csr_matrix((data, (users, tracks)), shape=(n_users, n_tracks), dtype=np.float32)


def pairs_are_sorted(users: np.ndarray, tracks: np.ndarray, *, block: int = 1 << 24) -> bool:
    """Whether (users, tracks) increase strictly, checked in blocks (no full-size copies).

    Each pair is one uint64, the user in the high 32 bits (indexes are below 2^32 and not
    negative): one comparison a pair, where a test on both differences took ~5x the time.
    """
    for start in range(0, max(len(users) - 1, 0), block):
        key = users[start : start + block + 1].astype(np.uint64)
        key <<= np.uint64(32)
        key |= tracks[start : start + block + 1].astype(np.uint64)
        if not np.all(key[1:] > key[:-1]):
            return False
    return True


def entry_rows(matrix: sp.csr_matrix) -> npt.NDArray[np.int64]:
    """Row of each stored entry of a CSR, aligned with `matrix.indices`: (nnz,) int64.

    For a user x track matrix, (entry_rows(m), m.indices) are the heard (user, track) pairs,
    which is how every top-k masks heard tracks.
    """
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))


def listener_share(pairs: pl.LazyFrame, *, n_users: int) -> pl.LazyFrame:
    """Popularity, the one definition: the share of training users who played the track.

    Used by features (item_features), evaluate (popularity@K, novelty) and, on the same pairs
    as a CSR, the popularity model (`stages.models.popularity.fit_popularity`).

    Args:
        pairs: Columns user_idx, track_idx (training pairs; repeats are counted once).
        n_users: The training users: distinct users of `pairs` (see `count_users`); > 0.

    Returns:
        One row per track in `pairs`: track_idx, listeners (UInt32, distinct users) and
        popularity (Float64, listeners / n_users). Unordered.
    """
    return (
        pairs.group_by(TRACK_IDX)
        .agg(pl.col(USER_IDX).n_unique().cast(pl.UInt32).alias(LISTENERS))
        .with_columns((pl.col(LISTENERS) / n_users).alias(POPULARITY))
    )


def count_users(pairs: pl.LazyFrame) -> pl.LazyFrame:
    """One row, one column `n_users`: the distinct users of `pairs` (collect it in the runner)."""
    return pairs.select(pl.col(USER_IDX).n_unique().alias("n_users"))
