"""Finding and scanning raw input files: one file, a directory or a glob.

Parquet, CSV/TSV (optionally gzip-compressed), JSON (one array or document per file) and JSON
lines are read lazily where the format allows it; a JSON array has to be parsed whole, which is
fine for the personal exports that use it. Each scan carries a `source_file` column.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import gzip
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from musicrec_cli.config import PathsConfig
from stages.preprocess.columns import INVALID_LINE, SOURCE_FILE
from stages.preprocess.formats import Preset

# the folder that belongs to `musicrec generate`; the user's own data goes in data/raw/
GENERATED = Path("data/generated")
log = logging.getLogger(__name__)

SUFFIXES = (".parquet", ".csv", ".tsv", ".csv.gz", ".tsv.gz", ".json", ".jsonl", ".ndjson")
_ANY = Preset(name="any", include=tuple(f"*{s}" for s in SUFFIXES))


class InputError(ValueError):
    """Raw input files are missing, empty or unreadable."""


def _has_data(spec: str) -> bool:
    path = Path(spec)
    if path.is_dir():
        return any(p.name[0] != "." for p in path.iterdir())
    return path.exists() or path.is_symlink()


def resolve_raw(paths: PathsConfig) -> PathsConfig:
    """[paths] with the generated data in place of the default raw location, when that is empty.

    The generated data (GENERATED, written by `musicrec generate`) is used only if [paths].raw
    is the default and nothing is there: a user who sets [paths].raw, or puts an export in
    data/raw/listens/, gets their own data (and only their own catalogue: the default
    catalogue path is optional, "" when absent).
    """
    default = PathsConfig()
    generated = GENERATED / "listens"
    if paths.raw != default.raw or _has_data(paths.raw) or not generated.is_dir():
        if paths.catalog == default.catalog and not Path(paths.catalog).exists():
            log.info("no track catalogue at %s: audio features left empty", paths.catalog)
            return dataclasses.replace(paths, catalog="")
        return paths
    catalog = paths.catalog
    if catalog == default.catalog:
        catalog = str(GENERATED / "tracks.parquet")
    log.info("%s is empty: using the generated data in %s", paths.raw, GENERATED)
    return dataclasses.replace(paths, raw=str(generated), catalog=catalog)


def _matches(path: Path, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(path.name.lower(), p.lower()) for p in patterns)


def refuse_broken_links(paths: list[Path], what: str) -> None:
    """A symbolic link to nothing (an unmounted disk, a moved export) is refused, not skipped."""
    broken = [p for p in paths if p.is_symlink() and not p.exists()]
    if broken:
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        msg = (
            f"{broken[0]}: a symbolic link to {broken[0].readlink()}, which does not exist{more}; "
            f"expected a readable {what} file. Mount or restore the target, or remove the link."
        )
        raise InputError(msg)


def find_files(spec: str, *, what: str, preset: Preset = _ANY) -> tuple[list[Path], list[Path]]:
    """The files named by `spec` (a file, a directory or a glob), sorted, and those ignored.

    In a directory only files matching `preset.include` are read; files matching
    `preset.ignore` (e.g. Spotify's video history) are returned second, to be reported.

    Raises:
        InputError: nothing matches, or a directory holds no data files.
    """
    if any(ch in spec for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=True))  # noqa: PTH207
        refuse_broken_links(matches, what)
        candidates = [p for p in matches if p.is_file()]
        if not candidates:
            found = "only directories" if matches else "nothing"
            msg = f"{spec}: the {what} glob matched {found}; expected {', '.join(SUFFIXES)} files."
            raise InputError(msg)
    elif (path := Path(spec)).is_dir():
        refuse_broken_links(sorted(path.rglob("*")), what)
        candidates = sorted(p for p in path.rglob("*") if p.is_file() and p.name[0] != ".")
        ignore = tuple(pattern for pattern, _ in preset.ignore)
        candidates = [p for p in candidates if _matches(p, preset.include + ignore)]
    elif path.is_file():
        return [path], []
    else:
        refuse_broken_links([path], what)
        msg = f"{path}: {what} not found; run `musicrec generate` or set [paths] in musicrec.toml."
        raise InputError(msg)
    ignored = [p for p in candidates if _matches(p, tuple(pattern for pattern, _ in preset.ignore))]
    files = [p for p in candidates if p not in ignored]
    if not files:
        msg = (
            f"{spec}: no {what} files for format {preset.name!r} (expected "
            f"{', '.join(preset.include)}); ignored {len(ignored)}. Check [preprocess].format."
        )
        raise InputError(msg)
    return files, ignored


def file_kind(path: Path) -> str:
    """The kind of file: parquet, json, jsonl or csv (any other text), from its name."""
    name = path.name.lower().removesuffix(".gz")
    for kind in ("parquet", "json", "jsonl", "ndjson"):
        if name.endswith(f".{kind}"):
            return "jsonl" if kind == "ndjson" else kind
    return "csv"


@dataclass(frozen=True, slots=True)
class CsvOptions:
    """How to read one delimited file (`csv_options`)."""

    has_header: bool
    separator: str
    quote_char: str | None


def _first_line(path: Path) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        return handle.readline(1 << 16).decode("utf-8", errors="replace").lstrip("\ufeff").rstrip()


def _csv_options(path: Path, preset: Preset) -> CsvOptions:
    return csv_options(_first_line(path), name=path.name, preset=preset)


def csv_options(line: str, *, name: str, preset: Preset) -> CsvOptions:
    """Separator, header and quoting of a delimited file named `name`, from its first line.

    A format without a header (Last.fm 1K) still gets one skipped when the first line names
    its columns; a play-count table has a header unless its first line ends in a number.
    """
    line = line.lstrip("\ufeff").rstrip()
    tsv = preset.separator == "\t" or ".tsv" in name.lower() or "\t" in line
    separator = "\t" if tsv else preset.separator
    fields = [f.strip().strip('"').lower() for f in line.split(separator)]
    if preset.columns:
        names = {c.lower() for c in preset.columns}
        header = sum(f.lstrip("#") in names for f in fields) >= 2
    elif preset.name == "counts":
        header = not fields[-1].replace(".", "", 1).isdigit()
    else:
        header = True
    # tab-separated names hold stray quotes (Last.fm, Taste Profile): quote only comma files
    quote = preset.quote_char if separator != "\t" or line.startswith('"') else None
    return CsvOptions(has_header=header, separator=separator, quote_char=quote)


def _scan_csv(files: list[Path], preset: Preset, options: CsvOptions) -> pl.LazyFrame:
    return pl.scan_csv(
        files,
        separator=options.separator,
        has_header=options.has_header,
        new_columns=list(preset.columns) or None,
        quote_char=options.quote_char,
        infer_schema=False,  # every column as text: preprocess parses and counts bad values
        truncate_ragged_lines=True,
        include_file_paths=SOURCE_FILE,
    )


def _scan_json_lines(files: list[Path], preset: Preset) -> pl.LazyFrame:
    if preset.json_line is None:
        return pl.scan_ndjson(files, include_file_paths=SOURCE_FILE, infer_schema_length=1000)
    line = pl.col("line").str.strip_chars()
    looks_valid = line.str.starts_with("{") & line.str.ends_with("}")
    return (
        pl.scan_csv(
            files,
            has_header=False,
            separator="\x1f",
            quote_char=None,
            new_columns=["line"],
            infer_schema=False,
            include_file_paths=SOURCE_FILE,
        )
        .filter(line != "")
        .with_columns(
            pl.when(looks_valid).then(line).str.json_decode(preset.json_line).alias("decoded"),
            (~looks_valid).alias(INVALID_LINE),
        )
        .unnest("decoded")
        .drop("line")
    )


def _read_json(path: Path) -> pl.LazyFrame:
    try:
        frame = pl.read_json(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        msg = f"{path}: not a readable JSON array or document: {str(exc).splitlines()[0]}"
        raise InputError(msg) from exc
    return frame.lazy().with_columns(pl.lit(str(path)).alias(SOURCE_FILE))


def _label(paths: list[Path]) -> str:
    return str(paths[0]) + (f" (+{len(paths) - 1} more)" if len(paths) > 1 else "")


def scan_groups(files: list[Path], *, preset: Preset) -> list[tuple[str, pl.LazyFrame]]:
    """Lazy scans of `files`, one per kind of file (one per file for JSON documents).

    Returns:
        (label, frame) pairs: the label names the files for error messages; each frame has
        the file's native columns (text for CSV) plus `source_file`.
    """
    by_kind: dict[str, list[Path]] = {}
    for path in files:
        by_kind.setdefault(file_kind(path), []).append(path)
    groups: list[tuple[str, pl.LazyFrame]] = []
    for kind, paths in sorted(by_kind.items()):
        label = _label(paths)
        if kind == "parquet":
            for path in paths:
                _check_parquet(path)
            groups.append((label, pl.scan_parquet(paths, include_file_paths=SOURCE_FILE)))
        elif kind == "csv":
            by_options: dict[CsvOptions, list[Path]] = {}
            for path in paths:
                by_options.setdefault(_csv_options(path, preset), []).append(path)
            groups += [(_label(same), _scan_csv(same, preset, o)) for o, same in by_options.items()]
        elif kind == "jsonl":
            groups.append((label, _scan_json_lines(paths, preset)))
        else:
            groups += [(str(p), _read_json(p)) for p in paths]
    return groups


def _check_parquet(path: Path) -> None:
    try:
        pl.read_parquet_schema(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        msg = f"{path}: not a readable Parquet file (truncated or corrupt?): {exc}"
        raise InputError(msg.splitlines()[0]) from exc


def find_damaged(files: list[Path]) -> Path | None:
    """The first gzip file that does not decompress to its end (called after a read failed)."""
    for path in files:
        if path.name.lower().endswith(".gz"):
            try:
                with gzip.open(path, "rb") as handle:
                    while handle.read(1 << 24):
                        pass
            except (OSError, EOFError, zlib.error):
                return path
    return None


def scan_table(files: list[Path]) -> pl.LazyFrame:
    """Lazily scan Parquet or CSV files of one kind, with inferred types (e.g. a catalog)."""
    first = files[0].name.lower()
    if first.endswith(".parquet"):
        _check_parquet(files[0])
        return pl.scan_parquet(files)
    separator = "\t" if ".tsv" in first else ","
    return pl.scan_csv(files, separator=separator, infer_schema_length=10_000)
