"""Format presets: each maps one real export's columns to the raw listening-log columns.

A preset is a pure `LazyFrame -> LazyFrame` mapping plus the few options a reader needs (header,
separator, which files of an export folder to read). The output has the REQUIRED columns
(`user_id`, `played_at`, `artist_name`, `track_name`), where `played_at` may still be an ISO
string or an epoch number in any unit (preprocess parses it), and any of the OPTIONAL columns.

Single-user exports (Spotify) carry no user id: their user_id is null here, and
`stages.preprocess.layout.assign_users` derives it from where the file sits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

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
from stages.preprocess.mapped import counts_to_raw, generic_to_raw
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


_TABLES = ("*.parquet", "*.csv", "*.tsv", "*.csv.gz", "*.tsv.gz")


@dataclass(frozen=True, slots=True, kw_only=True)
class Preset:
    """How to read one export format and map it to raw columns.

    Attributes:
        name: The `[preprocess].format` value.
        columns: Native column names in file order, for files without a header (else empty).
        separator: Field separator of delimited text files.
        quote_char: CSV quote character; None where names hold stray quotes (Last.fm).
        include: Glob patterns (on the file name) of the files to read in a directory.
        ignore: (glob pattern, reason) of files in the export that are not listening history
            (reported as ignored with the reason).
        json_line: Struct type of one JSON line, for line-by-line decoding with invalid lines
            counted instead of failing the whole file.
        native: Columns the mapping needs, named in the error when a file lacks them.
    """

    name: str
    columns: tuple[str, ...] = ()
    separator: str = ","
    quote_char: str | None = '"'
    include: tuple[str, ...] = _TABLES
    ignore: tuple[tuple[str, str], ...] = ()
    json_line: pl.Struct | None = None
    native: tuple[str, ...] = ()


PRESETS: dict[str, Preset] = {
    "generate": Preset(name="generate", native=REQUIRED),
    "generic": Preset(name="generic", include=(*_TABLES, "*.json", "*.jsonl", "*.ndjson")),
    "lastfm1k": Preset(
        name="lastfm1k",
        columns=("userid", "timestamp", "artid", "artname", "traid", "traname"),
        separator="\t",
        quote_char=None,
        include=("*.tsv", "*.tsv.gz", "*.txt"),
        ignore=(("userid-profile.tsv", "user profiles, not a listening log"),),
        native=("userid", "timestamp", "artname", "traname"),
    ),
    "spotify": Preset(
        name="spotify",
        # the CSV is a common conversion of the same history (same column names)
        include=("Streaming_History_Audio_*.json", "endsong_*.json", "endsong.json", "*.csv"),
        ignore=(("Streaming_History_Video_*.json", "video history, not music"),),
        native=("ms_played", "master_metadata_track_name", "master_metadata_album_artist_name"),
    ),
    "spotify-account": Preset(
        name="spotify-account",
        include=("StreamingHistory*.json", "StreamingHistory_music_*.json"),
        ignore=(("StreamingHistory_podcast_*.json", "podcast history, not music"),),
        native=("endTime", "artistName", "trackName", "msPlayed"),
    ),
    "listenbrainz": Preset(
        name="listenbrainz",
        include=("*.jsonl", "*.ndjson", "*.json"),
        # the export archive holds these beside listens/YYYY/MM.jsonl
        ignore=(
            ("feedback.jsonl", "loved/hated feedback, not listens"),
            ("pinned_recording*.jsonl", "pinned recordings, not listens"),
            ("user.json", "the account's profile, not listens"),
        ),
        json_line=LISTENBRAINZ_LINE,
    ),
    "counts": Preset(
        name="counts",
        include=(*_TABLES, "*.txt", "*.dat"),
    ),
}
KNOWN_FORMATS = tuple(PRESETS)


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


def _require(schema: Mapping[str, pl.DataType], preset: Preset) -> None:
    missing = [c for c in preset.native if c not in schema]
    if missing:
        msg = (
            f"format {preset.name!r}: missing column(s) {', '.join(map(repr, missing))}; "
            f"found {quote_names(schema)}; expected {', '.join(map(repr, preset.native))}."
            f" Check [preprocess].format."
        )
        raise SchemaError(msg)


def _generate(native: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    keep = [c for c in (*REQUIRED, *OPTIONAL, SOURCE_FILE) if c in schema]
    return native.select(keep)


def _lastfm(native: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    return native.select(
        SOURCE_FILE,
        pl.col("userid").alias(USER_ID),
        pl.col("timestamp").alias(PLAYED_AT),
        pl.col("artname").alias(ARTIST_NAME),
        pl.col("traname").alias(TRACK_NAME),
        _col(schema, "artid", dtype=pl.String()).alias(ARTIST_MBID),
        _col(schema, "traid", dtype=pl.String()).alias(TRACK_MBID),
    )


def _spotify(native: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
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


def _spotify_account(native: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
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


def _listenbrainz(native: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    native, schema = _unwrap_listens(native, schema)
    _require(schema, Preset(name="listenbrainz", native=("listened_at", "track_metadata")))

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


_MAPPERS: dict[str, Callable[[pl.LazyFrame, Mapping[str, pl.DataType]], pl.LazyFrame]] = {
    "generate": _generate,
    "lastfm1k": _lastfm,
    "spotify": _spotify,
    "spotify-account": _spotify_account,
    "listenbrainz": _listenbrainz,
}


def parse_mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    """`("user_id=uid", ...)` -> `{"user_id": "uid"}`; keys are raw column names."""
    return dict(p.split("=", 1) for p in pairs)


def to_raw(
    native: pl.LazyFrame, *, fmt: str, mapping: Mapping[str, str], source: str
) -> pl.LazyFrame:
    """Map a file's native columns to the raw listening-log columns of `fmt`.

    Args:
        native: What a reader scanned, with `source_file` (the file path, String) added.
        fmt: A name from KNOWN_FORMATS.
        mapping: Raw column -> native column, for the "generic" and "counts" formats.
        source: Where the data came from, named in errors.

    Returns:
        The REQUIRED columns plus whichever OPTIONAL ones the format has, plus `non_music`
        and `invalid_line` (Boolean) where the format can tell.

    Raises:
        SchemaError: the file lacks a column the format needs.
    """
    schema = native.collect_schema()
    if fmt == "generic":
        return generic_to_raw(native, mapping, source)
    if fmt == "counts":
        return counts_to_raw(native, mapping, source)
    preset = PRESETS[fmt]
    try:
        _require(schema, preset)
    except SchemaError as exc:
        msg = f"{source}: {exc}"
        raise SchemaError(msg) from exc
    return _MAPPERS[fmt](native, schema)
