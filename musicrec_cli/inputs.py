"""The raw input as a user downloaded it: a file, folder, glob or zip archive, and its format.

Every file is an `Entry` with its path relative to the input root, where a zip archive counts as
a folder (`bob/my_spotify_data.zip/Spotify Account Data/StreamingHistory_music_0.json`). Archives
are listed without unpacking; only the members a format reads are extracted, into the stage's
scratch folder, and deleted with it. `--format auto` is decided from the entries' names and the
first bytes of the first data file (`stages.preprocess.detect`).

A URI (hdfs://, s3a://, file://, ...) is listed and read by Spark (musicrec_cli.spark), never
as a local path here: `local_spec` gives the Polars engine a file:// URI's path and refuses the
others in one line.
"""

from __future__ import annotations

import fnmatch
import glob
import re
import urllib.parse
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import polars as pl

from musicrec_cli.sources import InputError, refuse_broken_links
from stages.preprocess.detect import AUTO, detect_format
from stages.preprocess.formats import Preset
from stages.schema import SchemaError

HEAD_BYTES = 1 << 16
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_DATA = (".parquet", ".csv", ".tsv", ".txt", ".dat", ".json", ".jsonl", ".ndjson", ".gz")


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One input file, on disk or inside a zip archive.

    Attributes:
        path: The file on disk, or the archive holding it (for a URI input: `rel`).
        member: The member's name inside the archive, or None.
        rel: Path relative to the input root ("/"-separated), an archive counting as a folder.
        uri: The file's URI as Spark names it, for a URI input (hdfs://, s3a://, file://).
    """

    path: Path
    member: str | None
    rel: str
    uri: str | None = None

    @property
    def name(self) -> str:
        """The file's own name."""
        return PurePosixPath(self.rel).name

    @property
    def shown(self) -> str:
        """The file as the user knows it, for messages and the quality report."""
        if self.uri is not None:
            return urllib.parse.unquote(self.uri)
        return f"{self.path}/{self.member}" if self.member else str(self.path)

    def head(self) -> bytes:
        """The first 64 KiB (decompressed for .gz), for format detection and header sniffing."""
        if self.member is not None:
            with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as handle:
                return handle.read(HEAD_BYTES)
        if self.name.lower().endswith(".gz"):
            import gzip  # noqa: PLC0415  (rare: only for gzip inputs)

            with gzip.open(self.path, "rb") as handle:
                return handle.read(HEAD_BYTES)
        with self.path.open("rb") as handle:
            return handle.read(HEAD_BYTES)


def _archive_entries(path: Path, rel: str) -> list[Entry]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        msg = f"{path}: not a readable zip archive: {exc}"
        raise InputError(msg) from exc
    return [
        Entry(path=path, member=m.filename, rel=f"{rel}/{m.filename}")
        for m in members
        if not any(part.startswith((".", "__MACOSX")) for part in m.filename.split("/"))
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Listing:
    """The input's files (`entries`, sorted), its own name, and whether it is one named file."""

    entries: list[Entry]
    root: str
    named_file: bool


def uri_scheme(spec: str) -> str | None:
    """The scheme of a URI input ("hdfs", "s3a", "file", ...); None for a local path."""
    found = _URI.match(spec)
    return found.group(1).lower() if found else None


def local_spec(spec: str) -> str:
    """The raw input as the Polars engine reads it: a local path, a file:// URI as its path.

    Raises:
        InputError: another URI (hdfs://, s3a://, ...): only the Spark engine reads those.
    """
    scheme = uri_scheme(spec)
    if scheme is None:
        return spec
    if scheme == "file":
        return urllib.parse.unquote(urllib.parse.urlparse(spec).path)
    msg = (
        f"{spec}: {scheme}:// inputs are read by the Spark engine only (--engine spark); the "
        "Polars engine reads local files, folders, globs and zip archives."
    )
    raise InputError(msg)


def list_entries(spec: str) -> Listing:
    """Every file of the input, sorted by relative path, archives' members included.

    Raises:
        InputError: nothing is there.
    """
    if any(ch in spec for ch in "*?["):
        root = Path(spec.split("*")[0].split("?")[0].split("[")[0] or ".")
        root = root if root.is_dir() else root.parent
        matched = sorted(Path(p) for p in glob.glob(spec, recursive=True))  # noqa: PTH207
        refuse_broken_links(matched, "listening log")
        paths = [p for p in matched if p.is_file()]
    elif (root := Path(spec)).is_dir():
        found = sorted(root.rglob("*"))
        refuse_broken_links(found, "listening log")
        paths = [p for p in found if p.is_file()]
        paths = [p for p in paths if not any(s.startswith(".") for s in p.relative_to(root).parts)]
    elif root.is_file():
        paths, root = [root], root.parent
    else:
        refuse_broken_links([root], "listening log")
        msg = f"{spec}: raw listening log not found; expected a file, folder, glob or zip archive."
        raise InputError(msg)
    entries: list[Entry] = []
    for path in paths:
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        if path.name.lower().endswith(".zip"):
            entries += _archive_entries(path, rel)
        else:
            entries.append(Entry(path=path, member=None, rel=rel))
    if not entries:
        msg = f"{spec}: no files found; expected a listening history export."
        raise InputError(msg)
    zipped = Path(spec).suffix.lower() == ".zip"
    return Listing(
        entries=sorted(entries, key=lambda e: e.rel),
        root=Path(spec).stem if zipped else root.resolve().name,
        named_file=len(paths) == 1 and not zipped and Path(spec).is_file(),
    )


def _matches(entry: Entry, pattern: str) -> bool:
    return fnmatch.fnmatch(entry.name.lower(), pattern.lower())


def select(listing: Listing, preset: Preset) -> tuple[list[Entry], list[tuple[str, str]]]:
    """The entries `preset` reads, and every other data file with the reason it is not read.

    A file named on its own is read whatever its name (the user chose it).

    Raises:
        InputError: no entry is readable in this format.
    """
    chosen, ignored = [], []
    entries, single = listing.entries, listing.named_file
    for entry in entries:
        reason = next((r for p, r in preset.ignore if _matches(entry, p)), None)
        if reason is None and (single or any(_matches(entry, p) for p in preset.include)):
            chosen.append(entry)
        elif reason is not None or entry.name.lower().endswith(_DATA):
            ignored.append((entry.shown, reason or f"not a file that format {preset.name!r} reads"))
    if not chosen:
        first = entries[0]
        parent = first.shown.rpartition("/")[0] if first.uri else f"{first.path.parent}"
        where = first.shown if len(entries) == 1 else parent
        msg = (
            f"{where}: no listening history files for format {preset.name!r} (expected "
            f"{', '.join(preset.include)}); {len(ignored)} other file(s). Check --format."
        )
        raise InputError(msg)
    return chosen, ignored


# an entry's first text and, for Parquet, its column names: how a URI input is peeked at
Peek = Callable[[Entry], tuple[str, list[str] | None]]


def _peek_local(entry: Entry) -> tuple[str, list[str] | None]:
    if entry.name.lower().endswith(".parquet") and entry.member is None:
        return "", list(pl.read_parquet_schema(entry.path))  # not pyarrow: ~0.08 s to import
    return entry.head().decode("utf-8", errors="replace"), None


def choose_format(listing: Listing, fmt: str, *, peek: Peek = _peek_local) -> tuple[str, str]:
    """`fmt`, or for "auto" the detected format; with the reason shown to the user.

    `peek` reads an entry's first text or Parquet column names (Spark's, for a URI input).
    """
    if fmt != AUTO:
        return fmt, "as set"
    entries = listing.entries
    data = [e for e in entries if e.name.lower().endswith(_DATA) and "/." not in e.rel]
    if not data:
        msg = f"{entries[0].shown}: no data files (expected {', '.join(_DATA)}); set --format."
        raise InputError(msg)
    names = [e.rel for e in data]
    for entry in data[:10]:  # an export archive starts with its profile or feedback files
        try:
            head, columns = peek(entry)
            return detect_format(names, head=head, columns=columns or ())
        except SchemaError as exc:
            problem = f"{entry.shown}: {str(exc).split(': ', 1)[-1]}"
    raise InputError(problem)


def materialise(entries: list[Entry], into: Path) -> list[Path]:
    """Paths to read: files on disk as they are, archive members extracted under `into`."""
    paths = []
    for entry in entries:
        if entry.member is None:
            paths.append(entry.path)
            continue
        target = into / entry.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(entry.path) as archive, archive.open(entry.member) as src:
            target.write_bytes(src.read())
        paths.append(target)
    return paths
