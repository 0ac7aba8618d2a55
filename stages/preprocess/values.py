"""Reading the raw values: every column of the raw log with its final dtype.

Timestamps of any dtype (ISO-8601 text, epochs in s, ms, us or ns, Datetime) as UTC microseconds,
booleans as written ("true", "1", "yes"...), MusicBrainz ids, play counts as weights. A value
that cannot be read becomes null; `parse.parse_raw` names the reason to drop its row.
"""

from __future__ import annotations

import polars as pl

from stages import schema
from stages.preprocess import columns, names, shows

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
        return zoned.dt.convert_time_zone("UTC").cast(schema.TIMESTAMP)
    if dtype.is_numeric():
        return _epoch(value)
    text = value.cast(pl.String).str.strip_chars()
    parsed = [text.str.strptime(schema.TIMESTAMP, f, strict=False) for f in _ISO_FORMATS]
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

    Also `_has_ms` / `_has_ts` / `_has_skipped` (a value was written, readable or not) and
    `weight`: the play count of a count-table row (null where unreadable), 1 for a row of a log.
    """
    dtypes = raw.collect_schema()

    def text(name: str) -> pl.Expr:
        return pl.col(name).cast(pl.String) if name in dtypes else pl.lit(None, pl.String)

    ms = pl.col(schema.MS_PLAYED) if schema.MS_PLAYED in dtypes else pl.lit(None, pl.Int64)
    skipped = (
        boolean(pl.col(schema.SKIPPED), dtypes[schema.SKIPPED])
        if schema.SKIPPED in dtypes
        else None
    )
    written = (  # text only where it can be blank: a cast of every row cost 0.4 CPU s per 10M
        pl.col(schema.SKIPPED).is_not_null()
        if schema.SKIPPED in dtypes
        and (dtypes[schema.SKIPPED] == pl.Boolean or dtypes[schema.SKIPPED].is_numeric())
        else text(schema.SKIPPED).str.strip_chars().replace("", None).is_not_null()
    )
    flags = [
        pl.col(c) if c in dtypes else pl.lit(value=False)
        for c in (columns.INVALID_LINE, columns.NON_MUSIC)
    ]
    weight = pl.lit(1, pl.Int64)
    if columns.RAW_PLAY_COUNT in dtypes:  # a count table: one row per pair, the count is its weight
        count = text(columns.RAW_PLAY_COUNT).str.strip_chars().cast(pl.Float64, strict=False)
        weight = pl.when(count == count.round(0)).then(count.cast(pl.Int64))
    played_at = (
        parse_timestamp(pl.col(schema.PLAYED_AT), dtypes[schema.PLAYED_AT])
        if schema.PLAYED_AT in dtypes
        else pl.lit(None, schema.TIMESTAMP)
    )
    # a time was written: what the bad_timestamp test reads, where the time as text (a cast
    # of every row, 2 CPU s per 10M events) is only for examples of unreadable rows
    has_time = (
        pl.col(schema.PLAYED_AT).is_not_null()
        if schema.PLAYED_AT in dtypes
        else pl.lit(value=False)
    )
    raw_value = [
        (pl.col(c).cast(pl.String), c)
        for c in (schema.SKIPPED, schema.MS_PLAYED, columns.RAW_PLAY_COUNT, schema.PLAYED_AT)
        if c in dtypes
    ]
    return raw.select(
        text(columns.SOURCE_FILE).alias(columns.SOURCE_FILE),
        text(schema.USER_ID).str.strip_chars().alias(schema.USER_ID),
        played_at.alias(schema.PLAYED_AT),
        *[v.alias(f"_raw_{c}") for v, c in raw_value],  # as written, for examples of bad rows
        text(schema.ARTIST_NAME).alias(schema.ARTIST_NAME),
        text(schema.TRACK_NAME).alias(schema.TRACK_NAME),
        names.first_mbid(text(columns.ARTIST_MBID)).alias(columns.ARTIST_MBID),
        names.first_mbid(text(columns.TRACK_MBID)).alias(columns.TRACK_MBID),
        text(schema.TRACK_URI).str.strip_chars().alias(schema.TRACK_URI),
        text(columns.ALBUM_NAME).alias(columns.ALBUM_NAME),
        ms.cast(pl.Int64, strict=False).alias(schema.MS_PLAYED),
        ms.is_not_null().alias("_has_ms"),
        has_time.alias("_has_ts"),
        (skipped if skipped is not None else pl.lit(None, pl.Boolean)).alias(schema.SKIPPED),
        (written if skipped is not None else pl.lit(value=False)).alias("_has_skipped"),
        weight.alias(WEIGHT),
        pl.lit(columns.RAW_PLAY_COUNT in dtypes).alias("_counted"),
        flags[0].fill_null(value=False).alias(columns.INVALID_LINE),
        flags[1].fill_null(value=False).alias(columns.NON_MUSIC),
        text(shows.SHOW).alias(shows.SHOW),
    )
