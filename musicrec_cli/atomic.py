"""Crash-safe replacement of a stage folder: fsync, the two-rename swap, signals held back.

`swap_into_place` renames the final folder to `.old`, the complete partial folder to the final
name, and deletes `.old`, under COMMIT_LOCK and with SIGINT/SIGTERM deferred, so neither a signal
handler nor the watchdog of musicrec_cli.signals deletes a folder half-way. ACTIVE_PARTIALS lists
the partial folders this process is writing, for that watchdog to delete before a hard exit.
What a swap cut by SIGKILL leaves behind is cleaned up by `artifacts.recover`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

# partial folders this process is writing; a signal watchdog deletes them before a hard exit
ACTIVE_PARTIALS: set[Path] = set()
# held while a stage folder is being swapped into place, so nothing deletes it half-way
COMMIT_LOCK = threading.Lock()


def fsync(path: Path) -> None:
    """Flush a file's or a directory's entry to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Swap:
    """Whether a folder swap is under way, and the signals that arrived meanwhile."""

    active = False
    pending: list[int] = []  # noqa: RUF012


SWAP = _Swap()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back until the swap is done, then deliver the first one again.

    musicrec's handlers (musicrec_cli.signals) record a signal in SWAP.pending while
    SWAP.active instead of raising. Blocking with pthread_sigmask would not do: Polars' worker
    threads would still take the signal and Python would run the handler in the main thread.
    """
    SWAP.active = True
    try:
        yield
    finally:
        SWAP.active = False
        pending, SWAP.pending = SWAP.pending, []
        if pending:
            signal.raise_signal(pending[0])


def swap_into_place(partial: Path, final: Path, old: Path) -> None:
    """Rename final to old and partial to final, delete old; fsync the directory entry."""
    with COMMIT_LOCK, signals_deferred():
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.replace(old)
        partial.replace(final)
        fsync(final.parent)
        shutil.rmtree(old, ignore_errors=True)
