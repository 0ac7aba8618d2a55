"""Contracts between stages: column names, dtypes and the schema check.

`*_id` columns hold external keys (the user name from the log, the canonical track key);
`*_idx` columns hold the contiguous 0-based index used as the sparse-matrix row or column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import polars as pl

# raw listening log (after a format preset has mapped its columns)
USER_ID = "user_id"
PLAYED_AT = "played_at"
ARTIST_NAME = "artist_name"
TRACK_NAME = "track_name"
TRACK_URI = "track_uri"
MS_PLAYED = "ms_played"
SKIPPED = "skipped"

# canonical catalogue
TRACK_ID = "track_id"
ARTIST_ID = "artist_id"
TRACK_GROUP_ID = "track_group_id"
GENRE = "genre"

# encoded indexes
USER_IDX = "user_idx"
TRACK_IDX = "track_idx"

# aggregated interactions
PLAY_COUNT = "play_count"
TOTAL_MS_PLAYED = "total_ms_played"
FIRST_TS = "first_ts"
LAST_TS = "last_ts"
SKIP_COUNT = "skip_count"
WEIGHT = "weight"
# per track, over the training pairs (stages.interactions.listener_share)
LISTENERS = "listeners"
POPULARITY = "popularity"

# predictions
RANK = "rank"
SCORE = "score"
MODEL = "model"
GENERATED_AT = "generated_at"

AUDIO_FEATURES = (
    "danceability",
    "energy",
    "valence",
    "tempo",
    "acousticness",
    "instrumentalness",
    "liveness",
    "speechiness",
)

TIMESTAMP = pl.Datetime("us", "UTC")

PLAYS: dict[str, pl.DataType] = {
    USER_IDX: pl.UInt32(),
    TRACK_IDX: pl.UInt32(),
    PLAYED_AT: TIMESTAMP,
    MS_PLAYED: pl.Int64(),
    SKIPPED: pl.Boolean(),
}

INTERACTIONS: dict[str, pl.DataType] = {
    USER_IDX: pl.UInt32(),
    TRACK_IDX: pl.UInt32(),
    PLAY_COUNT: pl.UInt32(),
    TOTAL_MS_PLAYED: pl.Int64(),
    FIRST_TS: TIMESTAMP,
    LAST_TS: TIMESTAMP,
    SKIP_COUNT: pl.UInt32(),
}

PREDICTIONS: dict[str, pl.DataType] = {
    USER_ID: pl.String(),
    USER_IDX: pl.UInt32(),
    RANK: pl.UInt16(),
    TRACK_ID: pl.String(),
    TRACK_IDX: pl.UInt32(),
    TRACK_GROUP_ID: pl.String(),
    SCORE: pl.Float32(),
    MODEL: pl.String(),
    GENERATED_AT: TIMESTAMP,
}


class SchemaError(ValueError):
    """Data does not have the columns or types a stage needs."""


def quote_names(names: Iterable[str], *, limit: int = 12, width: int = 40) -> str:
    """Column names for an error message, at most `limit` of them and `width` characters each.

    A file read with the wrong separator has one "column" holding the whole header (a 150 MB
    single-line CSV once gave a 150 MB error line); the message quotes a short excerpt.
    """
    found = list(names)
    shown = [repr(n if len(n) <= width else n[:width] + "...") for n in found[:limit]]
    more = f", ... ({len(found)} columns)" if len(found) > limit else ""
    return ", ".join(shown) + more


def check_schema(
    schema: Mapping[str, pl.DataType], required: Mapping[str, pl.DataType], *, source: str
) -> None:
    """Raise SchemaError unless every required column is present with the required dtype.

    Args:
        schema: What the data has, e.g. `lazy_frame.collect_schema()`.
        required: Column name -> dtype expected.
        source: Where the data came from (a path), named in the message.
    """
    missing = [name for name in required if name not in schema]
    if missing:
        msg = (
            f"{source}: missing column(s) {', '.join(map(repr, missing))}; "
            f"found {quote_names(schema)}; expected {', '.join(map(repr, required))}."
        )
        raise SchemaError(msg)
    for name, want in required.items():
        got = schema[name]
        if got != want:
            msg = f"{source}: column {name!r} has dtype {got}, expected {want}."
            raise SchemaError(msg)
