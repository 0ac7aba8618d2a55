"""Format presets: each maps one real export's columns to the raw listening-log columns.

A preset is the few options a reader needs (header, separator, which files of an export folder
to read) plus a pure `LazyFrame -> LazyFrame` mapping (stages.preprocess.exports); `to_raw`
applies it. The output has the REQUIRED columns
(`user_id`, `played_at`, `artist_name`, `track_name`), where `played_at` may still be an ISO
string or an epoch number in any unit (preprocess parses it), and any of the OPTIONAL columns.

Single-user exports (Spotify) carry no user id: their user_id is null here, and
`stages.preprocess.layout.assign_users` derives it from where the file sits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from stages.preprocess import exports
from stages.preprocess.columns import REQUIRED
from stages.preprocess.mapped import counts_to_raw, generic_to_raw
from stages.schema import SchemaError

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
        json_line=exports.LISTENBRAINZ_LINE,
    ),
    "counts": Preset(
        name="counts",
        include=(*_TABLES, "*.txt", "*.dat"),
    ),
}
KNOWN_FORMATS = tuple(PRESETS)


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
        exports.require_columns(schema, preset.name, preset.native)
    except SchemaError as exc:
        msg = f"{source}: {exc}"
        raise SchemaError(msg) from exc
    return exports.MAPPERS[fmt](native, schema)
