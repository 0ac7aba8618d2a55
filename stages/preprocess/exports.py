"""Each known export's column mapping: its native columns -> the raw listening-log columns.

One function per format (`MAPPERS`, keyed by the `[preprocess].format` name); the formats
without a fixed layout ("generic", "counts") map by the user's column list in
stages.preprocess.mapped. What a reader needs to find and decode the files is the format's
`Preset` (stages.preprocess.formats).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import polars as pl
from polars.datatypes import DataTypeClass

from stages.preprocess.columns import (
    ALBUM_NAME,
    ARTIST_MBID,
    INVALID_LINE,
    NON_MUSIC,
    OPTIONAL,
    REQUIRED,
    SOURCE_FILE,
    TRACK_MBID,
)
from stages.schema import (
    ARTIST_NAME,
    MS_PLAYED,
    PLAYED_AT,
    SKIPPED,
    TRACK_NAME,
    TRACK_URI,
    USER_ID,
    SchemaError,
    quote_names,
)

_LISTENBRAINZ_META = pl.Struct(
    {
        "artist_name": pl.String,
        "track_name": pl.String,
        "release_name": pl.String,
        "artist_mbid": pl.String,
        "additional_info": pl.Struct(
            {"recording_mbid": pl.String, "artist_mbids": pl.List(pl.String)}
        ),
        "mbid_mapping": pl.Struct(
            {"recording_mbid": pl.String, "artist_mbids": pl.List(pl.String)}
        ),
    }
)
LISTENBRAINZ_LINE = pl.Struct(
    {"listened_at": pl.Int64, "user_name": pl.String, "track_metadata": _LISTENBRAINZ_META}
)


def _col(schema: Mapping[str, pl.DataType], *path: str, dtype: pl.DataType) -> pl.Expr:
    """Column or nested struct field at `path`, or a typed null if the file does not have it."""
    # a Struct declared with dtype classes (pl.String, not pl.String()) lists classes as fields
    kind: pl.DataType | DataTypeClass | None = schema.get(path[0])
    expr = pl.col(path[0])
    for name in path[1:]:
        if not isinstance(kind, pl.Struct) or name not in kind.to_schema():
            return pl.lit(None, dtype)
        expr, kind = expr.struct.field(name), kind.to_schema()[name]
    if kind is None:
        return pl.lit(None, dtype)
    if isinstance(kind, pl.List):
        expr = expr.list.first()
    return expr.cast(dtype, strict=False) if kind != dtype else expr


def require_columns(schema: Mapping[str, pl.DataType], fmt: str, native: tuple[str, ...]) -> None:
    """SchemaError naming the columns of `native` that format `fmt`'s file lacks."""
    missing = [c for c in native if c not in schema]
    if missing:
        msg = (
            f"format {fmt!r}: missing column(s) {', '.join(map(repr, missing))}; "
            f"found {quote_names(schema)}; expected {', '.join(map(repr, native))}."
            f" Check [preprocess].format."
        )
        raise SchemaError(msg)


def generate(native: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """Musicrec's own generated log: already raw columns."""
    keep = [c for c in (*REQUIRED, *OPTIONAL, SOURCE_FILE) if c in schema]
    return native.select(keep)


def lastfm1k(native: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """Last.fm 1K: userid, timestamp, artist and track names and MBIDs."""
    return native.select(
        SOURCE_FILE,
        pl.col("userid").alias(USER_ID),
        pl.col("timestamp").alias(PLAYED_AT),
        pl.col("artname").alias(ARTIST_NAME),
        pl.col("traname").alias(TRACK_NAME),
        _col(schema, "artid", dtype=pl.String()).alias(ARTIST_MBID),
        _col(schema, "traid", dtype=pl.String()).alias(TRACK_MBID),
    )


def spotify(native: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """Spotify extended streaming history (JSON, or its CSV conversion)."""

    def col(name: str, dtype: pl.DataType) -> pl.Expr:
        return _col(schema, name, dtype=dtype)

    track = col("master_metadata_track_name", pl.String())
    # the old endsong format stores offline_timestamp in ms, the new one in s: `ts` is used
    # when present (both have it) and the epoch (any unit) only as a fallback
    ts = col("ts", pl.String()).fill_null(col("offline_timestamp", pl.Int64()).cast(pl.String))
    other = [
        col(c, pl.String()).is_not_null()
        for c in ("episode_name", "spotify_episode_uri", "audiobook_title", "audiobook_uri")
    ]
    return native.select(
        SOURCE_FILE,
        col("username", pl.String()).alias(USER_ID),
        ts.alias(PLAYED_AT),
        col("master_metadata_album_artist_name", pl.String()).alias(ARTIST_NAME),
        track.alias(TRACK_NAME),
        col("master_metadata_album_album_name", pl.String()).alias(ALBUM_NAME),
        col("spotify_track_uri", pl.String()).alias(TRACK_URI),
        col("ms_played", pl.Int64()).alias(MS_PLAYED),
        col("skipped", pl.String()).alias(SKIPPED),  # CSV conversions write "True"/"false"
        (track.is_null() & pl.any_horizontal(other)).alias(NON_MUSIC),
    )


def spotify_account(native: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """Spotify account data (StreamingHistory*.json): one user, no user id."""
    # endTime is "YYYY-MM-DD HH:MM" in the account's local time with no zone: read as UTC
    return native.select(
        SOURCE_FILE,
        pl.lit(None, pl.String).alias(USER_ID),
        pl.col("endTime").alias(PLAYED_AT),
        pl.col("artistName").alias(ARTIST_NAME),
        pl.col("trackName").alias(TRACK_NAME),
        _col(schema, "msPlayed", dtype=pl.Int64()).alias(MS_PLAYED),
    )


def _unwrap_listens(
    native: pl.LazyFrame, schema: Mapping[str, pl.DataType]
) -> tuple[pl.LazyFrame, Mapping[str, pl.DataType]]:
    """One row per listen from the wrapped documents ListenBrainz writes.

    `{"listen_type": ..., "payload": [listens]}` (import), `{"payload": {"listens": [...]}}`
    (API responses) and `{"listens": [...]}`; JSON lines pass through.
    """
    payload = schema.get("payload")
    if isinstance(payload, pl.Struct) and "listens" in payload.to_schema():
        native = native.select(SOURCE_FILE, pl.col("payload").struct.field("listens"))
    elif "payload" in schema:
        native = native.select(SOURCE_FILE, pl.col("payload").alias("listens"))
    elif "listens" not in schema:
        return native, schema
    native = native.select(SOURCE_FILE, "listens").explode("listens").unnest("listens")
    return native, native.collect_schema()


def listenbrainz(native: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """ListenBrainz listens: JSON lines or the wrapped documents of `_unwrap_listens`."""
    native, schema = _unwrap_listens(native, schema)
    require_columns(schema, "listenbrainz", ("listened_at", "track_metadata"))

    def meta(*path: str) -> pl.Expr:
        return _col(schema, "track_metadata", *path, dtype=pl.String())

    invalid = pl.col(INVALID_LINE) if INVALID_LINE in schema else pl.lit(value=False)
    return native.select(
        SOURCE_FILE,
        _col(schema, "user_name", dtype=pl.String()).alias(USER_ID),
        pl.col("listened_at").alias(PLAYED_AT),
        meta("artist_name").alias(ARTIST_NAME),
        meta("track_name").alias(TRACK_NAME),
        meta("release_name").alias(ALBUM_NAME),
        pl.coalesce(
            meta("mbid_mapping", "artist_mbids"),
            meta("additional_info", "artist_mbids"),
            meta("artist_mbid"),
        ).alias(ARTIST_MBID),
        pl.coalesce(
            meta("mbid_mapping", "recording_mbid"), meta("additional_info", "recording_mbid")
        ).alias(TRACK_MBID),
        invalid.alias(INVALID_LINE),
    )


MAPPERS: dict[str, Callable[[pl.LazyFrame, Mapping[str, pl.DataType]], pl.LazyFrame]] = {
    "generate": generate,
    "lastfm1k": lastfm1k,
    "spotify": spotify,
    "spotify-account": spotify_account,
    "listenbrainz": listenbrainz,
}
