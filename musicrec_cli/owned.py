"""Folders musicrec creates outside the stage folders, and the proof that it created them.

A command deletes or replaces only what it created itself. Every such folder (the report, the
generated data) gets a marker file first, naming the command that owns it; a folder without
that marker is the user's, and is refused in one line instead of being emptied. An absent
path or an empty directory holds nothing to lose and may be claimed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from musicrec_cli.artifacts import ArtifactError

MARKER = ".musicrec-owned"


class NotOwnedError(ArtifactError):
    """A path musicrec would replace holds something it did not create."""


def owner_of(folder: Path) -> str | None:
    """The command recorded in `folder`'s marker, or None (no marker, unreadable)."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    owner = data.get("owner") if isinstance(data, dict) else None
    return owner if isinstance(owner, str) else None


def _mark(folder: Path, owner: str) -> None:
    text = json.dumps({"owner": owner, "note": "created by musicrec; it may replace this folder"})
    (folder / MARKER).write_text(text + "\n", encoding="utf-8")


def check_claimable(target: Path, owner: str, *, what: str) -> None:
    """Refuse unless `target` is absent, an empty directory, or a folder `owner` created.

    Raises:
        NotOwnedError: `target` is a file, the working directory or one of its parents, or a
            folder with content and no marker of `owner`.
    """
    here = Path.cwd().resolve()
    if target.resolve() in (here, *here.parents):
        msg = (
            f"{target}: is the working directory or one of its parents; give {what} a folder "
            "of its own, e.g. a new folder name."
        )
        raise NotOwnedError(msg)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        msg = f"{target}: is a file, not a folder; give {what} a new folder name."
        raise NotOwnedError(msg)
    if target.is_dir() and any(target.iterdir()) and owner_of(target) != owner:
        msg = (
            f"{target}: is not empty and was not written by `musicrec {owner}` (no {MARKER} "
            f"marker); musicrec does not replace folders it did not create. Give {what} a new "
            "folder name, or empty this one."
        )
        raise NotOwnedError(msg)


def claim(folder: Path, owner: str, *, what: str) -> Path:
    """Make `folder` (absent or empty) owned by `owner`, or check that it already is."""
    check_claimable(folder, owner, what=what)
    folder.mkdir(parents=True, exist_ok=True)
    if owner_of(folder) != owner:
        _mark(folder, owner)
    return folder


@contextlib.contextmanager
def replacing(target: Path, owner: str, *, what: str) -> Iterator[Path]:
    """Yield a fresh owned folder beside `target`; on success it replaces `target` whole.

    `target` must pass `check_claimable`. The new folder is `.<name>.partial` next to it (marked
    before anything else is written) and is deleted if the block raises.
    """
    check_claimable(target, owner, what=what)
    partial, old = (target.with_name(f".{target.name}.{end}") for end in ("partial", "old"))
    for leftover in (partial, old):
        check_claimable(leftover, owner, what=what)
        shutil.rmtree(leftover, ignore_errors=True)
    partial.mkdir(parents=True)
    _mark(partial, owner)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.exists():
        target.replace(old)
    partial.replace(target)
    shutil.rmtree(old, ignore_errors=True)
