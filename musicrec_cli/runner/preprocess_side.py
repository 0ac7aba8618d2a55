"""Side inputs of preprocess: listing, names tables, podcast shows, catalog, fingerprints.

The input's listing and format, the names table of a play-count table, the podcast shows, the
track catalog and the manifest's input fingerprints.

Kept apart from `preprocess.py` (the two passes over the log): these only decide which files
are read, which name the ids and which artists are shows, before the passes start.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.config import PreprocessConfig
from musicrec_cli.inputs import Entry, Listing, Peek, choose_format, list_entries, materialise
from musicrec_cli.sources import InputError, find_files, scan_groups, scan_table
from stages.preprocess import formats, mapped, shows
from stages.preprocess.columns import TRACK_MBID
from stages.preprocess.detect import header_fields
from stages.preprocess.formats import PRESETS
from stages.schema import ARTIST_NAME, TRACK_NAME, TRACK_URI, SchemaError, quote_names

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


def scan_catalog(spec: str, mapping: tuple[str, ...]) -> pl.LazyFrame | None:
    """The track catalog with `[preprocess].catalog_columns` applied, or None."""
    if not spec:
        return None
    files, _ = find_files(spec, what="track catalog")
    catalog = scan_table(files)
    schema = catalog.collect_schema()
    renames = formats.parse_mapping(mapping)
    missing = [f"{k}={v}" for k, v in renames.items() if v not in schema]
    if missing:
        msg = (
            f"{spec}: [preprocess].catalog_columns maps {', '.join(missing)}, not in the catalog;"
            f" found {quote_names(schema)}."
        )
        raise SchemaError(msg)
    catalog = catalog.with_columns(pl.col(v).alias(k) for k, v in renames.items())
    schema = catalog.collect_schema()
    if not (
        {ARTIST_NAME, TRACK_NAME} <= set(schema) or {TRACK_URI, "id", TRACK_MBID} & set(schema)
    ):
        msg = (
            f"{spec}: the track catalog needs artist_name and track_name, or track_uri, id or "
            f"track_mbid; "
            f"found {quote_names(schema)}. Map its columns with "
            '[preprocess].catalog_columns (e.g. ["track_uri=uri", "track_name=name"]).'
        )
        raise SchemaError(msg)
    return catalog


def shows_report(
    p: PreprocessConfig, report: dict[str, Any], found: pl.DataFrame, *, fmt: str
) -> dict[str, Any]:
    """quality_report.json `shows`: the podcast rules, the shows found, the rows each dropped."""
    parse_step = report["steps"][0]["dropped"]
    return {
        "listed": list(p.drop_shows),
        "long_plays": {
            "minutes": p.show_minutes,
            "applies": fmt == "spotify-account" and p.show_minutes > 0,
            "found": found.to_dicts(),
        },
        "rows_dropped": {rule: parse_step.get(r, 0) for rule, r in shows.REASONS.items()},
    }


def fingerprints(
    chosen: list[Entry], names_set: list[Path], catalog: str, *, stop: threading.Event | None
) -> dict[str, Any]:
    """The inputs for the manifest: local files' fingerprints; a URI input's files by URI.

    Spark's file systems give no content hash, so a URI input is always read again. Runs on
    the stage writer's background thread; `stop` set gives up (art.HashStopped).
    """
    remote = {e.uri: {"remote": True} for e in chosen if e.uri is not None}
    on_disk = sorted({e.path for e in chosen if e.uri is None})
    local = on_disk + names_set + [Path(f) for f in [catalog] if f and Path(f).is_file()]
    return art.fingerprint_inputs(local, stop) | remote


def listing(spec: str, fmt: str, session: Any) -> tuple[Listing, str, str, Peek | None]:
    """(files, format, why, peek) of the input; `session` lists and peeks at a URI input."""
    if session is None:
        listing = list_entries(spec)
        return listing, *choose_format(listing, fmt), None
    from musicrec_cli.spark import list_uri, uri_peek

    listing, peek = list_uri(session, spec), uri_peek(session)
    return listing, *choose_format(listing, fmt, peek=peek), peek


def names(
    session: Any, names_set: list[Path], found: list[Entry], *, remote: bool, into: Path
) -> pl.LazyFrame | None:
    """The names table of a count table: local files by Polars, a URI input's by Spark."""
    if not remote:
        return scan_names(names_set + materialise(found, into))
    from musicrec_cli.runner.preprocess_spark import read_names

    tables = [t for t in (scan_names(names_set), read_names(session, found)) if t is not None]
    if not tables:
        return None
    return pl.concat(tables).unique(TRACK_URI, keep="first", maintain_order=True)
