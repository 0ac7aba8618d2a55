"""Confidence weights per interaction and descriptive features per user and per track."""

from __future__ import annotations

import datetime as dt

import polars as pl

from stages.schema import (
    AUDIO_FEATURES,
    FIRST_TS,
    LAST_TS,
    PLAY_COUNT,
    POPULARITY,
    SKIP_COUNT,
    TRACK_IDX,
    USER_IDX,
    WEIGHT,
)

_DAY_US = 86_400_000_000


def _days_before(cutoff: dt.datetime | None, column: str) -> pl.Expr:
    """Days from `column` to `cutoff`; null without a cutoff (plays without timestamps)."""
    if cutoff is None:
        return pl.lit(None, pl.Float64)
    return (pl.lit(cutoff) - pl.col(column)).dt.total_microseconds() / _DAY_US


def confidence_weights(
    interactions: pl.LazyFrame,
    *,
    cutoff: dt.datetime | None,
    half_life_days: float,
    recency_floor: float,
) -> pl.LazyFrame:
    """Add `weight`: log1p(plays) scaled by how recently the pair was last played.

    weight = log1p(play_count) * (floor + (1 - floor) * 2 ** (-days_since_last_play / half_life))
    so a pair played long ago keeps at least `floor` of its weight. Float32, > 0. Without
    timestamps (a play-count table: `cutoff` or last_ts null) the recency factor is 1.
    """
    decay = pl.lit(2.0).pow(-_days_before(cutoff, LAST_TS) / half_life_days).fill_null(1.0)
    recency = recency_floor + (1.0 - recency_floor) * decay
    return interactions.with_columns(
        (pl.col(PLAY_COUNT).cast(pl.Float64).log1p() * recency).cast(pl.Float32).alias(WEIGHT)
    )


def item_features(train: pl.LazyFrame, items: pl.LazyFrame, *, n_users: int) -> pl.LazyFrame:
    """One row per track of `items`: train plays, listeners, popularity and audio features.

    popularity is `stages.interactions.listener_share`'s: listeners (distinct users) over
    `n_users`, train's distinct users (`stages.interactions.count_users`). train holds one row
    per (user, track), so a track's listeners are its rows, counted in the one group-by that
    sums its plays (a distinct count per track and a join took 3x as long). Tracks unheard in
    train get zero counts; audio features are copied where `items` has them.
    """
    counts = train.group_by(TRACK_IDX).agg(
        pl.col(PLAY_COUNT).sum().cast(pl.UInt64).alias("train_plays"),
        pl.col(SKIP_COUNT).sum().cast(pl.UInt64).alias("train_skips"),
        pl.col(LAST_TS).max().alias(LAST_TS),
        pl.len().cast(pl.UInt32).alias("train_listeners"),
    )
    audio = [c for c in AUDIO_FEATURES if c in items.collect_schema()]
    return (
        items.select(TRACK_IDX, *audio)
        .join(counts, on=TRACK_IDX, how="left")
        .select(
            TRACK_IDX,
            *audio,
            pl.col("train_plays").fill_null(0),
            pl.col("train_listeners").fill_null(0),
            pl.col("train_skips").fill_null(0),
            LAST_TS,
            (pl.col("train_listeners") / max(n_users, 1)).fill_null(0.0).alias(POPULARITY),
        )
        .sort(TRACK_IDX)
    )


def user_features(train: pl.LazyFrame, *, cutoff: dt.datetime | None) -> pl.LazyFrame:
    """One row per user in train: plays, distinct tracks, skip share, first/last play, recency."""
    return (
        train.group_by(USER_IDX)
        .agg(
            pl.col(PLAY_COUNT).sum().cast(pl.UInt64).alias("n_plays"),
            pl.len().cast(pl.UInt32).alias("n_tracks"),
            pl.col(SKIP_COUNT).sum().cast(pl.UInt64).alias("n_skips"),
            pl.col(FIRST_TS).min().alias(FIRST_TS),
            pl.col(LAST_TS).max().alias(LAST_TS),
        )
        .with_columns(
            (pl.col("n_skips") / pl.col("n_plays")).alias("skip_share"),
            _days_before(cutoff, LAST_TS).alias("days_since_last_play"),
            ((pl.col(LAST_TS) - pl.col(FIRST_TS)).dt.total_microseconds() / _DAY_US).alias(
                "active_days"
            ),
        )
        .sort(USER_IDX)
    )
