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
    """(n_users, n_tracks) float32 CSR with `value` at (user_idx, track_idx)."""
    return sp.csr_matrix(
        (
            pairs[value].to_numpy().astype(np.float32),
            (pairs[USER_IDX].to_numpy(), pairs[TRACK_IDX].to_numpy()),
        ),
        shape=(n_users, n_tracks),
        dtype=np.float32,
    )
