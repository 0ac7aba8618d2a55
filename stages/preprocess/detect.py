"""`--format auto`: which export a set of files is, from their names and first bytes.

Pure: the runner passes the file names (relative to the input) and the start of the first data
file as text (or a Parquet file's column names); this module decides and says why. File names
decide first (the exports have fixed names), then the fields (JSON keys, a CSV header), then the
shape of a header-less line (six tab-separated fields with an ISO time is Last.fm 1K; user,
item, integer is a play-count table).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from stages.schema import AUDIO_FEATURES, SchemaError

AUTO = "auto"
_NAMES = (  # (pattern on a file's name, format, what it is)
    ("streaming_history_audio_*.json", "spotify", "Spotify extended streaming history"),
    ("endsong*.json", "spotify", "Spotify extended streaming history (older names)"),
    ("streaminghistory*.json", "spotify-account", "Spotify account data"),
    ("userid-timestamp-artid-artname-traid-traname.tsv*", "lastfm1k", "Last.fm 1K"),
)
_FIELDS = (  # (every field named, format, what it is)
    (("master_metadata_track_name",), "spotify", "Spotify extended history fields"),
    (("endtime", "artistname", "trackname"), "spotify-account", "Spotify account data fields"),
    (("listened_at",), "listenbrainz", "ListenBrainz listen fields"),
    (("track_metadata",), "listenbrainz", "ListenBrainz listen fields"),
    (("user_id", "played_at", "artist_name", "track_name"), "generate", "musicrec's raw columns"),
)
COUNT_NAMES = (
    "count", "counts", "plays", "play_count", "playcount", "listen_count", "listens", "weight",
    "n_plays", "scrobbles",
)  # fmt: skip
_ISO = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d")
_INTEGER = re.compile(r"^\d+(?:\.0+)?$")


def _first_line(head: str) -> str:
    return head.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")


def _fields(line: str) -> list[str]:
    separator = "\t" if "\t" in line else ","
    return [f.strip().strip('"').strip() for f in line.split(separator)]


def header_fields(head: str) -> list[str]:
    """The fields of the first line of a delimited text file (tab- or comma-separated)."""
    return _fields(_first_line(head))


def _named(field: str) -> str:
    return re.sub(r"[^a-z0-9_]", "", field.lower().replace("-", "_"))


def _by_shape(line: str) -> tuple[str, str] | None:
    fields = _fields(line)
    named = [_named(f) for f in fields]
    if len(fields) == 6 and _ISO.match(fields[1]):
        return "lastfm1k", "six tab-separated fields with an ISO time in the second (Last.fm 1K)"
    if len(fields) == 6 and named[:2] == ["userid", "timestamp"]:
        return "lastfm1k", "a Last.fm 1K header line"
    if len(fields) >= 3 and _INTEGER.match(fields[-1]) and not any(_ISO.match(f) for f in fields):
        return "counts", f"{len(fields)} fields ending in an integer, no time (a play-count table)"
    if len(fields) >= 3 and named[-1] in COUNT_NAMES:
        return "counts", f"a header ending in {fields[-1]!r} and no time (a play-count table)"
    return None


def detect_format(
    names: Sequence[str], *, head: str, columns: Sequence[str] = ()
) -> tuple[str, str]:
    """The format of an input and the reason, for `--format auto`.

    Args:
        names: The data files' paths relative to the input (any order).
        head: The first few KiB of the first data file, as text ("" for Parquet).
        columns: The column names of the first data file when it is Parquet.

    Returns:
        (format, reason): a name from `stages.preprocess.formats.KNOWN_FORMATS`, and what
        decided it, to be shown to the user.

    Raises:
        SchemaError: Nothing matched; the message says what was seen and what to set.
    """
    for pattern, fmt, what in _NAMES:
        if any(fnmatch.fnmatch(n.rsplit("/", 1)[-1].lower(), pattern) for n in names):
            return fmt, f"file names of {what}"
    keys = {_named(c) for c in columns} | {
        _named(k) for k in re.findall(r'"([A-Za-z_][\w-]*)"\s*:', head)
    }
    keys |= {_named(f) for f in _fields(_first_line(head))} if head else set()
    for needed, fmt, what in _FIELDS:
        if set(needed) <= keys:
            return fmt, what
    shape = _by_shape(_first_line(head)) if head.strip() else None
    if shape:
        return shape
    first = sorted(names)[0] if names else "input"
    seen = _first_line(head)[:80] if head else ", ".join(columns)[:80]
    msg = (
        f"{first}: cannot tell which export this is (it starts with {seen!r}); set --format "
        "(spotify, spotify-account, listenbrainz, lastfm1k, counts or generic with "
        "[preprocess].columns)."
    )
    if len(keys & set(AUDIO_FEATURES)) >= 3:  # a catalogue of tracks, not a log of plays
        msg += (
            " Its audio-feature columns make it look like a track catalogue, not listening "
            "history: give it to preprocess with --catalog."
        )
    raise SchemaError(msg)
