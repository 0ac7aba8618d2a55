"""Raw listening log -> clean plays, canonical tracks, encoded ids and per-pair aggregates.

Every function takes and returns LazyFrames; the runner collects. Names are matched through
`normalise_name`, so that spellings of one artist or title share one canonical key.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from stages.schema import (
    ARTIST_NAME,
    MS_PLAYED,
    PLAY_COUNT,
    PLAYED_AT,
    SKIPPED,
    TRACK_ID,
    TRACK_NAME,
    USER_ID,
)

ARTIST_KEY = "artist_key"
TITLE_KEY = "title_key"


def normalise_name(name: pl.Expr) -> pl.Expr:
    """Matching key for a free-text name: NFKC, case-folded, quotes and spacing cleaned."""
    return (
        name.str.normalize("NFKC")
        .str.to_lowercase()
        .str.replace_all(r"[\u2018\u2019\u201c\u201d\"`]", "")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def clean_plays(
    raw: pl.LazyFrame, *, min_ms_played: int, ts_min: dt.datetime, ts_max: dt.datetime
) -> pl.LazyFrame:
    """Keep plays with a user, artist, title and an in-range timestamp, long enough to count.

    Args:
        raw: Schema RAW_LISTENS, optionally with ms_played (Int) and skipped (Boolean).
        min_ms_played: Plays shorter than this are dropped where ms_played is known.
        ts_min: Earliest valid timestamp (UTC).
        ts_max: Latest valid timestamp (UTC).

    Returns:
        The valid plays with artist_key and title_key added; ms_played as Int64, skipped filled.
    """
    schema = raw.collect_schema()
    ms = pl.col(MS_PLAYED).cast(pl.Int64) if MS_PLAYED in schema else pl.lit(None, pl.Int64)
    skipped = pl.col(SKIPPED) if SKIPPED in schema else pl.lit(None, pl.Boolean)
    return (
        raw.with_columns(ms.alias(MS_PLAYED), skipped.alias(SKIPPED))
        .with_columns(
            normalise_name(pl.col(ARTIST_NAME)).alias(ARTIST_KEY),
            normalise_name(pl.col(TRACK_NAME)).alias(TITLE_KEY),
        )
        .filter(valid_play_expr(ts_min=ts_min, ts_max=ts_max))
        .filter(pl.col(MS_PLAYED).is_null() | (pl.col(MS_PLAYED) >= min_ms_played))
        .with_columns(pl.col(SKIPPED).fill_null(pl.col(MS_PLAYED) < min_ms_played).fill_null(False))
    )


def valid_play_expr(*, ts_min: dt.datetime, ts_max: dt.datetime) -> pl.Expr:
    """True where a play has every key and a timestamp inside [ts_min, ts_max]."""
    return (
        pl.col(USER_ID).is_not_null()
        & (pl.col(USER_ID) != "")
        & (pl.col(ARTIST_KEY).is_not_null() & (pl.col(ARTIST_KEY) != ""))
        & (pl.col(TITLE_KEY).is_not_null() & (pl.col(TITLE_KEY) != ""))
        & pl.col(PLAYED_AT).is_between(ts_min, ts_max)
    )


def build_tracks(plays: pl.LazyFrame) -> pl.LazyFrame:
    """One row per canonical track: track_id, display names and raw play count.

    The track id is the readable key "artist_key - title_key"; the display names are the most
    frequent spellings seen.
    """
    return (
        plays.group_by(ARTIST_KEY, TITLE_KEY)
        .agg(
            pl.len().alias(PLAY_COUNT),
            pl.col(ARTIST_NAME).mode().first().str.strip_chars(),
            pl.col(TRACK_NAME).mode().first().str.strip_chars(),
        )
        .with_columns(pl.concat_str(ARTIST_KEY, pl.lit(" - "), TITLE_KEY).alias(TRACK_ID))
    )


def filter_min_counts(
    pairs: pl.DataFrame, *, min_user_tracks: int, min_track_users: int, max_rounds: int
) -> pl.DataFrame:
    """Drop users with fewer than `min_user_tracks` tracks and tracks with too few users.

    Repeats up to `max_rounds` times (a k-core when it converges); works on the aggregated pairs,
    which are small enough to hold in memory.
    """
    for _ in range(max_rounds):
        before = pairs.height
        pairs = pairs.filter(
            (pl.len().over(USER_ID) >= min_user_tracks)
            & (pl.len().over(TRACK_ID) >= min_track_users)
        )
        if pairs.height == before:
            break
    return pairs


def encode(values: pl.LazyFrame, *, key: str, index: str) -> pl.LazyFrame:
    """Map the distinct values of `key` (sorted) to contiguous UInt32 `index` values."""
    return (
        values.select(key)
        .unique()
        .sort(key)
        .with_row_index(index)
        .with_columns(pl.col(index).cast(pl.UInt32))
    )
