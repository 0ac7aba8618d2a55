"""Formats read through a column mapping: `generic` logs and `counts` (play-count tables).

`generic` maps each raw column from `[preprocess].columns` ("raw=source"). `counts` reads the
shape of the best-known public music datasets (user, item, count; Taste Profile, Last.fm 360K,
HetRec): with a header its columns are found by name, without one by position (`column_1`,
`column_2`, ... as Polars names them): the first is the user, the last the count, and the item
between them is an artist, a title or an id (an id is its own track of an unknown artist).
`[preprocess].columns` overrides any of these. Counts stay counts: one row per pair, the
count in `play_count`, no time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import polars as pl

from stages.preprocess.columns import RAW_PLAY_COUNT, SOURCE_FILE, UNKNOWN_ARTIST
from stages.preprocess.detect import COUNT_NAMES
from stages.schema import ARTIST_NAME, PLAYED_AT, TRACK_NAME, TRACK_URI, USER_ID, SchemaError

_USER_NAMES = ("user", "user_id", "userid", "username", "user_name", "uid")
_ARTIST_NAMES = ("artist", "artist_name", "artistname", "artname", "artists")
_TITLE_NAMES = ("title", "track", "track_name", "trackname", "song", "song_title", "traname")


def _named(column: str) -> str:
    return re.sub(r"[^a-z0-9_]", "", column.lower().replace("-", "_").replace(" ", "_"))


def generic_to_raw(native: pl.LazyFrame, mapping: Mapping[str, str], source: str) -> pl.LazyFrame:
    """Map columns by `mapping` (raw column -> native column); errors name the file.

    A log needs user_id, played_at and the names (or track_uri); a count table (play_count
    mapped) needs no played_at.
    """
    schema = native.collect_schema()
    has_names = ARTIST_NAME in mapping and TRACK_NAME in mapping
    timed = () if RAW_PLAY_COUNT in mapping and PLAYED_AT not in mapping else (PLAYED_AT,)
    needed = [USER_ID, *timed, *((ARTIST_NAME, TRACK_NAME) if has_names else (TRACK_URI,))]
    missing = [f"{k}={mapping[k]}" for k in mapping if mapping[k] not in schema]
    unmapped = [k for k in needed if k not in mapping]
    if missing or unmapped:
        msg = (
            f"{source}: column(s) {', '.join(missing or unmapped)} "
            f"{'not in the file' if missing else 'not mapped'}; found "
            f"{', '.join(repr(c) for c in schema if c != SOURCE_FILE)}; expected "
            f'[preprocess].columns to map {", ".join(needed)} (e.g. "user_id=userid"; '
            "track_uri may replace the names; play_count without played_at for a count table)."
        )
        raise SchemaError(msg)
    exprs = [pl.col(src).alias(dst) for dst, src in mapping.items()]
    if not has_names:  # track ids only: each id is its own track of an unknown artist
        item = pl.col(mapping[TRACK_URI]).cast(pl.String)
        exprs += [pl.lit(UNKNOWN_ARTIST).alias(ARTIST_NAME), item.alias(TRACK_NAME)]
    return native.select(SOURCE_FILE, *exprs)


def count_columns(columns: list[str]) -> dict[str, str]:
    """The mapping `counts` uses for a table with these columns (source_file excluded).

    Raises:
        SchemaError: fewer than three columns (user, item, count).
    """
    if len(columns) < 3:
        msg = (
            f"a play-count table needs at least 3 columns (user, item, count); found "
            f"{', '.join(map(repr, columns))}."
        )
        raise SchemaError(msg)
    named = {_named(c): c for c in columns}

    def find(options: tuple[str, ...]) -> str | None:
        return next((named[o] for o in options if o in named), None)

    user = find(_USER_NAMES) or columns[0]
    count = find(COUNT_NAMES) or columns[-1]
    artist, title = find(_ARTIST_NAMES), find(_TITLE_NAMES)
    mapping = {USER_ID: user, RAW_PLAY_COUNT: count}
    if artist and title:
        return mapping | {ARTIST_NAME: artist, TRACK_NAME: title}
    if artist:  # an artist-level table: each artist is the item
        return mapping | {ARTIST_NAME: artist, TRACK_NAME: artist}
    middle = [c for c in columns if c not in (user, count)]
    return mapping | {TRACK_URI: title or middle[-1]}  # an id (or a bare title) per track


def counts_to_raw(native: pl.LazyFrame, mapping: Mapping[str, str], source: str) -> pl.LazyFrame:
    """Map a play-count table to raw columns: user_id, artist_name, track_name, play_count.

    `mapping` (from `[preprocess].columns`) replaces the guessed mapping of the keys it names.
    """
    columns = [c for c in native.collect_schema() if c != SOURCE_FILE]
    try:
        guessed = count_columns(columns)
    except SchemaError as exc:
        msg = f"{source}: {exc} Set [preprocess].columns or --format."
        raise SchemaError(msg) from exc
    return generic_to_raw(native, guessed | dict(mapping), source)
