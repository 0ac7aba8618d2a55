"""Reading the raw values: every column of the raw log with its final dtype.

Timestamps of any dtype (ISO-8601 text, epochs in s, ms, us or ns, Datetime) as UTC microseconds,
booleans as written ("true", "1", "yes"...), MusicBrainz ids, play counts as weights. A value
that cannot be read becomes null; `parse.parse_raw` names the reason to drop its row.
"""

from __future__ import annotations

import polars as pl

from stages.preprocess import names, shows
from stages.preprocess.columns import (
    ALBUM_NAME,
    ARTIST_MBID,
    INVALID_LINE,
    NON_MUSIC,
    RAW_PLAY_COUNT,
    SOURCE_FILE,
    TRACK_MBID,
)
from stages.schema import (
    ARTIST_NAME,
    MS_PLAYED,
    PLAYED_AT,
    SKIPPED,
    TIMESTAMP,
    TRACK_NAME,
    TRACK_URI,
    USER_ID,
)

WEIGHT = "weight"  # plays a raw row stands for: 1 in a log, its count in a count table
_ISO_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
)


def _epoch(seconds_or_finer: pl.Expr) -> pl.Expr:
    """Epoch number -> timestamp, the unit guessed from the magnitude (s, ms, us or ns).

    Up to 1e11 is seconds (until year 5138), up to 1e14 ms, up to 1e17 us, beyond that ns.
    """
    v = seconds_or_finer.cast(pl.Float64)
    us = (
        pl.when(v.abs() < 1e11)
        .then(v * 1e6)
        .when(v.abs() < 1e14)
        .then(v * 1e3)
        .when(v.abs() < 1e17)
        .then(v)
        .otherwise(v / 1e3)
    )
    return us.round(0).cast(pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def parse_timestamp(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A timestamp column of any raw dtype as Datetime("us", "UTC"); null where unreadable.

    Strings may be ISO-8601 (with Z, an offset or no zone, read as UTC), "YYYY-MM-DD HH:MM" or
    digits (epoch); numbers are epochs in s, ms, us or ns.
    """
    if isinstance(dtype, pl.Datetime):
        zoned = value.dt.replace_time_zone("UTC") if dtype.time_zone is None else value
        return zoned.dt.convert_time_zone("UTC").cast(TIMESTAMP)
    if dtype.is_numeric():
        return _epoch(value)
    text = value.cast(pl.String).str.strip_chars()
    parsed = [text.str.strptime(TIMESTAMP, f, strict=False) for f in _ISO_FORMATS]
    digits = text.str.replace(r"\.\d*$", "").cast(pl.Int64, strict=False)
    return pl.coalesce(*parsed, _epoch(digits))


def boolean(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """True/False from a Boolean or text ("True", "false", "1", "0", "yes", "no"); else null."""
    if dtype == pl.Boolean:
        return value
    text = value.cast(pl.String).str.to_lowercase().str.strip_chars()
    return pl.when(text.is_in(["true", "1", "yes"])).then(True).when(
        text.is_in(["false", "0", "no"])).then(False)  # fmt: skip


def typed_columns(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Every raw column with its final dtype (absent optional ones as nulls).

    Also `_has_ms` / `_has_skipped` (a value was written, readable or not) and `weight`: the
    play count of a count-table row (null where unreadable), 1 for a row of a log.
    """
    schema = raw.collect_schema()

    def text(name: str) -> pl.Expr:
        return pl.col(name).cast(pl.String) if name in schema else pl.lit(None, pl.String)

    ms = pl.col(MS_PLAYED) if MS_PLAYED in schema else pl.lit(None, pl.Int64)
    skipped = boolean(pl.col(SKIPPED), schema[SKIPPED]) if SKIPPED in schema else None
    written = text(SKIPPED).str.strip_chars().replace("", None).is_not_null()
    flags = [pl.col(c) if c in schema else pl.lit(value=False) for c in (INVALID_LINE, NON_MUSIC)]
    weight = pl.lit(1, pl.Int64)
    if RAW_PLAY_COUNT in schema:  # a count table: one row per pair, the count is its weight
        count = text(RAW_PLAY_COUNT).str.strip_chars().cast(pl.Float64, strict=False)
        weight = pl.when(count == count.round(0)).then(count.cast(pl.Int64))
    played_at = (
        parse_timestamp(pl.col(PLAYED_AT), schema[PLAYED_AT])
        if PLAYED_AT in schema
        else pl.lit(None, TIMESTAMP)
    )
    raw_value = [
        (pl.col(c).cast(pl.String), c)
        for c in (SKIPPED, MS_PLAYED, RAW_PLAY_COUNT, PLAYED_AT)
        if c in schema
    ]
    return raw.select(
        text(SOURCE_FILE).alias(SOURCE_FILE),
        text(USER_ID).str.strip_chars().alias(USER_ID),
        played_at.alias(PLAYED_AT),
        *[v.alias(f"_raw_{c}") for v, c in raw_value],  # as written, for examples of bad rows
        text(ARTIST_NAME).alias(ARTIST_NAME),
        text(TRACK_NAME).alias(TRACK_NAME),
        names.first_mbid(text(ARTIST_MBID)).alias(ARTIST_MBID),
        names.first_mbid(text(TRACK_MBID)).alias(TRACK_MBID),
        text(TRACK_URI).str.strip_chars().alias(TRACK_URI),
        text(ALBUM_NAME).alias(ALBUM_NAME),
        ms.cast(pl.Int64, strict=False).alias(MS_PLAYED),
        ms.is_not_null().alias("_has_ms"),
        (skipped if skipped is not None else pl.lit(None, pl.Boolean)).alias(SKIPPED),
        (written if skipped is not None else pl.lit(value=False)).alias("_has_skipped"),
        weight.alias(WEIGHT),
        pl.lit(RAW_PLAY_COUNT in schema).alias("_counted"),
        flags[0].fill_null(value=False).alias(INVALID_LINE),
        flags[1].fill_null(value=False).alias(NON_MUSIC),
        text(shows.SHOW).alias(shows.SHOW),
    )
