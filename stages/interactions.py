"""Aggregated (user, track) interactions and their sparse-matrix form, shared by several stages."""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from stages.schema import (
    FIRST_TS,
    LAST_TS,
    MS_PLAYED,
    PLAY_COUNT,
    PLAYED_AT,
    SKIP_COUNT,
    SKIPPED,
    TOTAL_MS_PLAYED,
    TRACK_IDX,
    USER_IDX,
)


def aggregate_pairs(plays: pl.LazyFrame, *, keys: tuple[str, str]) -> pl.LazyFrame:
    """One row per (user, track): play_count, total_ms_played, first_ts, last_ts, skip_count."""
    return plays.group_by(*keys).agg(
        pl.len().cast(pl.UInt32).alias(PLAY_COUNT),
        pl.col(MS_PLAYED).cast(pl.Int64).sum().alias(TOTAL_MS_PLAYED),
        pl.col(PLAYED_AT).min().alias(FIRST_TS),
        pl.col(PLAYED_AT).max().alias(LAST_TS),
        pl.col(SKIPPED).sum().cast(pl.UInt32).alias(SKIP_COUNT),
    )


def build_matrix(pairs: pl.DataFrame, *, value: str, n_users: int, n_tracks: int) -> sp.csr_matrix:
    """(n_users, n_tracks) float32 CSR with `value` at (user_idx, track_idx).

    Pairs sorted by (user_idx, track_idx) without repeats, as events.parquet is, become the CSR
    arrays directly; anything else goes through COO (which sums repeats) at about twice the
    memory, which matters at 200M pairs.
    """
    users = pairs[USER_IDX].to_numpy()
    tracks = pairs[TRACK_IDX].to_numpy()
    data = pairs[value].to_numpy().astype(np.float32)
    user_step = np.diff(users.astype(np.int64))
    track_step = np.diff(tracks.astype(np.int64))
    if np.all((user_step > 0) | ((user_step == 0) & (track_step > 0))):
        counts = np.bincount(users, minlength=n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return sp.csr_matrix(
            (data, tracks.astype(np.int32), indptr), shape=(n_users, n_tracks), dtype=np.float32
        )
    return sp.csr_matrix((data, (users, tracks)), shape=(n_users, n_tracks), dtype=np.float32)
