"""Side inputs of preprocess: the names table of a play-count table and the podcast shows.

Kept apart from `preprocess.py` (the two passes over the log): these only decide which files
name the ids and which artists are shows, before the passes start.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from musicrec_cli.inputs import Entry, Peek
from musicrec_cli.sources import InputError, find_files, scan_groups
from stages.preprocess import mapped, shows
from stages.preprocess.detect import header_fields
from stages.preprocess.formats import PRESETS
from stages.schema import TRACK_URI

NAMES_REASON = "names of the ids in the play counts (a names table), joined to them by id"


def names_entries(
    chosen: list[Entry], *, fmt: str, setting: str, peek: Peek | None = None
) -> tuple[list[Entry], list[Entry], list[Path]]:
    """(play files, names tables found among `chosen`, names tables from `setting`).

    A count-table folder holding an id table (`10000.txt`) and tables with an id, an artist
    and a title (`song_data.csv`) reads the latter as names, not plays; `[preprocess].names`
    names such a table anywhere (then nothing is auto-detected). `peek` reads a URI input's
    first lines (`musicrec_cli.spark.uri_peek`); local files are read directly.
    """
    if setting:
        files, _ = find_files(setting, what="names table ([preprocess].names)")
        return chosen, [], files
    if fmt != "counts" or len(chosen) < 2:
        return chosen, [], []
    heads = {
        e.rel: header_fields(
            peek(e)[0] if peek is not None else e.head().decode("utf-8", errors="replace")
        )
        for e in chosen
        if not e.name.lower().endswith(".parquet")
    }
    found = set(mapped.names_files(heads))
    return [e for e in chosen if e.rel not in found], [e for e in chosen if e.rel in found], []


def scan_names(files: list[Path]) -> pl.LazyFrame | None:
    """One names table (track_uri, artist_name, track_name) of `files`, or None without files.

    The first row of an id wins; each file is read on its own (their columns differ).
    """
    if not files:
        return None
    tables = []
    for path in files:
        for label, native in scan_groups([path], preset=PRESETS["counts"]):
            try:
                tables.append(mapped.names_table(native, label))
            except pl.exceptions.PolarsError as exc:
                msg = f"{label}: cannot read as a names table: {str(exc).splitlines()[0]}"
                raise InputError(msg) from exc
    return pl.concat(tables).unique(TRACK_URI, keep="first", maintain_order=True)


def long_play_shows(raw: pl.LazyFrame | None, *, fmt: str, minutes: float) -> pl.DataFrame:
    """The `long_plays` shows of a Spotify account export (none for other formats).

    `raw` is None for a URI input: Spark reads no JSON exports, so there are none to find.
    """
    if raw is None or fmt != "spotify-account" or minutes <= 0:
        return pl.DataFrame(schema={"artist_name": pl.String, "plays": pl.UInt32})
    return shows.long_play_shows(raw, minutes=minutes).collect()
