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


_ID_NAMES = (
    "song_id", "songid", "track_id", "trackid", "recording_id", "recording_mbid", "track_uri",
    "spotify_track_uri", "item_id", "itemid", "id",
)  # fmt: skip


def names_columns(columns: list[str]) -> dict[str, str] | None:
    """Raw column -> source column of a names table (an id, an artist and a title), or None.

    A names table gives the artist and title of the ids a play-count table lists (the Taste
    Profile's `song_data.csv` beside `10000.txt`); found by its column names.
    """
    named = {_named(c): c for c in columns}

    def find(options: tuple[str, ...]) -> str | None:
        return next((named[o] for o in options if o in named), None)

    found = {TRACK_URI: find(_ID_NAMES), ARTIST_NAME: find(_ARTIST_NAMES),
             TRACK_NAME: find(_TITLE_NAMES)}  # fmt: skip
    return None if None in found.values() else {k: v for k, v in found.items() if v}


def names_table(native: pl.LazyFrame, source: str) -> pl.LazyFrame:
    """track_uri, artist_name, track_name (String) of a names table, one row per id.

    Raises:
        SchemaError: the table has no id, artist and title columns (the message names them).
    """
    columns = [c for c in native.collect_schema() if c != SOURCE_FILE]
    found = names_columns(columns)
    if found is None:
        msg = (
            f"{source}: a names table needs an id, an artist and a title column (e.g. song_id, "
            f"artist_name, title); found {', '.join(map(repr, columns))}."
        )
        raise SchemaError(msg)
    return (
        native.select(pl.col(src).cast(pl.String).alias(dst) for dst, src in found.items())
        .with_columns(pl.col(TRACK_URI).str.strip_chars())
        .filter(pl.col(TRACK_URI).is_not_null() & (pl.col(TRACK_URI) != ""))
        .unique(TRACK_URI, keep="first", maintain_order=True)
    )


def names_files(first_lines: dict[str, list[str]]) -> list[str]:
    """The files of a play-count input that are names tables, not plays (auto-detected).

    Args:
        first_lines: Each file's first line, split into fields (a header, or the first row).

    Returns:
        The files whose header names an id, an artist and a title, when some other file is
        not one (the id table they name); else none: a lone count table with names is plays.
    """
    found = [f for f, fields in first_lines.items() if names_columns(fields) is not None]
    return found if len(found) < len(first_lines) else []


def attach_names(raw: pl.LazyFrame, names: pl.LazyFrame) -> pl.LazyFrame:
    """Rows that name only an id (artist UNKNOWN_ARTIST) get its artist and title from `names`.

    The id stays in track_uri, so two ids with the same names are one track only by the name
    rules. Rows whose id is not in `names`, and rows that had names, are unchanged.

    Args:
        raw: Raw columns of a count table (`counts_to_raw` output).
        names: `names_table` output (one row per id).
    """
    if TRACK_URI not in raw.collect_schema():
        return raw
    found = names.select(
        TRACK_URI, pl.col(ARTIST_NAME).alias("_artist"), pl.col(TRACK_NAME).alias("_title")
    )
    named = (pl.col(ARTIST_NAME) == UNKNOWN_ARTIST) & pl.col("_artist").is_not_null()
    named = named & pl.col("_title").is_not_null()
    return (
        raw.with_columns(pl.col(TRACK_URI).cast(pl.String))
        .join(found, on=TRACK_URI, how="left", maintain_order="left")
        .with_columns(
            pl.when(named)
            .then(pl.col("_artist"))
            .otherwise(pl.col(ARTIST_NAME))
            .alias(ARTIST_NAME),
            pl.when(named).then(pl.col("_title")).otherwise(pl.col(TRACK_NAME)).alias(TRACK_NAME),
        )
        .drop("_artist", "_title")
    )
