"""One run at a time per artifacts directory: `artifacts/.lock`, held with fcntl.flock.

The kernel releases a flock when its holder dies, however it dies (SIGKILL included), so a lock
left by a dead process is free: the next run takes it over and says so. The file itself is
never deleted (deleting a flocked file lets two runs lock two different inodes); it holds the
owner's pid, host, command and start time as JSON, for the message a second run prints.
flock is advisory and local: it does not protect an artifacts directory on NFS shared by hosts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from musicrec_cli.artifacts import ArtifactError, ResourceError

LOCK_NAME = ".lock"
POLL_SECONDS = 0.2

log = logging.getLogger(__name__)


class LockedError(ArtifactError):
    """Another run holds the artifacts directory."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Lock:
    """A held lock: its file, the open descriptor, and what was found there before."""

    path: Path
    fd: int
    previous: dict[str, object] | None


_held: dict[Path, Lock] = {}


def _read_owner(path: Path) -> dict[str, object] | None:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _describe(owner: dict[str, object] | None) -> str:
    if not owner:
        return "another process (owner not recorded yet)"
    return (
        f"pid {owner.get('pid')} on {owner.get('host')} (`{owner.get('command')}`, "
        f"started {owner.get('started_at')})"
    )


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if path.parent.exists() and not path.parent.is_dir():
            why = f"{path.parent} is a file"
        msg = (
            f"{path}: cannot create the lock file: {why}; expected "
            f"{path.parent} to be a writable directory (set [paths].artifacts)."
        )
        raise ResourceError(msg) from exc


def holds(root: Path) -> bool:
    """True if this process holds the lock of `root`."""
    return (root / LOCK_NAME).absolute() in _held


def acquire(root: Path, *, command: str, wait_seconds: float = 0.0) -> Lock:
    """Lock `root` for this process (re-entrant), waiting up to `wait_seconds` for the owner.

    Raises:
        LockedError: another live process holds the lock after `wait_seconds`.
        ResourceError: the lock file cannot be created (e.g. a read-only directory).
    """
    path = (root / LOCK_NAME).absolute()
    if path in _held:
        return _held[path]
    fd = _open(path)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                holder = _describe(_read_owner(path))
                msg = (
                    f"{path}: the artifacts directory is in use by {holder}; wait for it to "
                    "finish, or rerun with --wait SECONDS."
                )
                raise LockedError(msg) from None
            time.sleep(POLL_SECONDS)
    previous = _read_owner(path)
    if previous:
        # a clean release empties the file: an owner still recorded died holding the lock
        state = "still running?" if _pid_alive(previous.get("pid")) else "no longer running"
        log.warning(
            "taking over the stale lock %s left by %s, %s", path, _describe(previous), state
        )
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
    except OSError as exc:
        os.close(fd)
        msg = f"{path}: cannot record the lock owner: {exc.strerror or exc}; free space and rerun."
        raise ResourceError(msg) from exc
    lock = Lock(path=path, fd=fd, previous=previous)
    _held[path] = lock
    return lock


def release(lock: Lock) -> None:
    """Clear the owner record and unlock; the file stays (see the module docstring)."""
    if _held.pop(lock.path, None) is None:
        return
    with contextlib.suppress(OSError):
        os.ftruncate(lock.fd, 0)
    with contextlib.suppress(OSError):
        fcntl.flock(lock.fd, fcntl.LOCK_UN)
    os.close(lock.fd)


def release_all() -> None:
    """Release every lock this process holds."""
    for lock in list(_held.values()):
        release(lock)
