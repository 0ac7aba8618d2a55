"""Finding and scanning raw input files: one file, a directory or a glob of Parquet or CSV."""

from __future__ import annotations

import glob
from pathlib import Path

import polars as pl

SUFFIXES = (".parquet", ".csv", ".tsv", ".csv.gz", ".tsv.gz")


class InputError(ValueError):
    """Raw input files are missing, empty or unreadable."""


def _has_suffix(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def find_files(spec: str, *, what: str) -> list[Path]:
    """The files named by `spec` (a file, a directory of data files, or a glob), sorted.

    Raises:
        InputError: nothing matches, or a directory holds no data files.
    """
    if any(ch in spec for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=True))  # noqa: PTH207
        files = [p for p in matches if p.is_file()]
        if not files:
            found = "only directories" if matches else "nothing"
            msg = f"{spec}: the {what} glob matched {found}; expected {', '.join(SUFFIXES)} files."
            raise InputError(msg)
        return files
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _has_suffix(p))
        if not files:
            msg = f"{path}: no {', '.join(SUFFIXES)} files in the {what} directory."
            raise InputError(msg)
        return files
    if not path.is_file():
        msg = f"{path}: {what} not found; run `musicrec generate` or set [paths] in musicrec.toml."
        raise InputError(msg)
    return [path]


def scan_table(files: list[Path]) -> pl.LazyFrame:
    """Lazily scan Parquet or CSV files of one kind (decided by the first file's suffix)."""
    first = files[0].name.lower()
    if first.endswith(".parquet"):
        return pl.scan_parquet(files)
    separator = "\t" if ".tsv" in first else ","
    return pl.scan_csv(files, separator=separator, try_parse_dates=True)
