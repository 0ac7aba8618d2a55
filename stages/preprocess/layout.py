"""User ids of per-person exports, from where each file sits (`[preprocess].user_id`).

A Spotify or ListenBrainz export of one person names no user, or names it only in a folder:
three people's exports each in Spotify's default `MyData` folder must still be three users. So
the user of a file is derived from its path relative to the input root, where an archive counts
as a folder (`bob/my_spotify_data.zip/Spotify Account Data/StreamingHistory_music_0.json`):

- `auto` (default): the user column of the data where the export has one (Last.fm, ListenBrainz,
  Spotify's old `username`), else `path`;
- `path`: the folders above the file, without the names Spotify gives every export (`MyData`,
  `my_spotify_data.zip`, `Spotify Account Data`, ...) -> `bob`; the input's own name when
  nothing is left (one export given directly);
- `folder`: the file's own folder name (before issue 17 the only rule);
- `file`: the file name without its extension;
- `fixed:<id>`: one user for everything;
- `regex:<pattern>`: the first group (or the match) of the pattern searched in the path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

import polars as pl

from stages.preprocess.columns import SOURCE_FILE
from stages.schema import USER_ID, SchemaError

AUTO = "auto"
RULES = ("auto", "path", "folder", "file", "fixed:<id>", "regex:<pattern>")
FILE_USER = "file_user"
_EXPORT_FOLDERS = {
    "mydata", "my_spotify_data", "spotify account data", "spotify extended streaming history",
    "spotify technical log information", "listens",
}  # fmt: skip
_YEAR = re.compile(r"^\d{4}$")


def check_rule(rule: str) -> str | None:
    """What is wrong with a `[preprocess].user_id` value, or None."""
    if rule in RULES[:4] or (rule.startswith("fixed:") and rule[6:].strip()):
        return None
    if rule.startswith("regex:"):
        try:
            re.compile(rule[6:])
        except re.error as exc:
            return f"not a valid regular expression ({exc})"
        return None
    return f"expected one of {', '.join(RULES)}"


def _folders(rel: str) -> list[str]:
    """The folders above a file, an archive as its name without .zip."""
    return [p.removesuffix(".zip").removesuffix(".ZIP") for p in PurePosixPath(rel).parts[:-1]]


def file_user_ids(rels: Sequence[str], *, rule: str, root: str) -> list[str]:
    """The user id of each file (`rels`: paths relative to the input root, "/"-separated).

    Args:
        rels: The files' relative paths.
        rule: A `[preprocess].user_id` value ("auto" is "path" here).
        root: The input's own name (its folder, or an archive's name without .zip).

    Raises:
        SchemaError: a regex rule that matches no path (the message names it).
    """
    ids = []
    for rel in rels:
        folders = _folders(rel)
        if rule.startswith("fixed:"):
            ids.append(rule[6:].strip())
        elif rule == "file":
            ids.append(PurePosixPath(rel).name.split(".")[0])
        elif rule == "folder":
            ids.append(folders[-1] if folders else root)
        elif rule.startswith("regex:"):
            found = re.search(rule[6:], rel)
            if found is None:
                msg = f"{rel}: [preprocess].user_id = {rule!r} does not match this path."
                raise SchemaError(msg)
            ids.append(found.group(1) if found.groups() else found.group(0))
        else:
            kept = [f for f in folders if f.lower() not in _EXPORT_FOLDERS and not _YEAR.match(f)]
            ids.append("/".join(kept) or root)
    return ids


_FROM_FILE = "_file_user"


def assign_users(raw: pl.LazyFrame, files: pl.DataFrame, *, rule: str) -> pl.LazyFrame:
    """Fill (`auto`) or replace (any other rule) user_id from each row's file.

    Args:
        raw: Raw columns with user_id (null where the export names no user) and source_file.
        files: One row per file: source_file (as the reader wrote it) and file_user.
        rule: The `[preprocess].user_id` value.
    """

    def filled(from_file: pl.Expr) -> pl.Expr:
        written = pl.col(USER_ID).cast(pl.String)
        return (pl.coalesce(written, from_file) if rule == AUTO else from_file).alias(USER_ID)

    users = files[FILE_USER].cast(pl.String).unique()
    if files.height > 0 and users.len() == 1:
        # one user for every file (a log in one folder): a literal, not a join on each row's
        # file path, which hashed the path and gathered every column of every row
        return raw.with_columns(filled(pl.lit(users[0], pl.String)))
    # a join, not `replace_strict`: the streaming engine held every row of a scan that used
    # replace_strict (1.16 GB against 0.5 GB for four columns of 10M events; 17.9 GB at 100M)
    by_file = files.lazy().select(
        pl.col(SOURCE_FILE).cast(pl.String), pl.col(FILE_USER).cast(pl.String).alias(_FROM_FILE)
    )
    return (
        raw.join(by_file, on=SOURCE_FILE, how="left", maintain_order="left")
        .with_columns(filled(pl.col(_FROM_FILE)))
        .drop(_FROM_FILE)
    )
