"""The `musicrec` entry point (and `python -m musicrec_cli`).

A SIGTERM that arrives while the CLI is still importing (Polars, NumPy: about a second) would
otherwise end the process silently; `main` answers it with the same one line and exit code as
later on, before anything is imported. `signals.install` replaces this handler once the app runs.

It also sets how Polars' allocator (jemalloc) returns memory, which it reads once, when Polars
is first imported.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

EXIT_TERMINATED = 143  # musicrec_cli.signals.EXIT_TERMINATED, not imported: it pulls in Polars
# Polars' jemalloc gives freed pages back to the OS after 0.5 s, and the next query of a stage
# faults them in again, zeroed: at 100M events preprocess spent 50 of 258 CPU s in the kernel.
# Kept 10 s, they are reused (docs/preprocess.md, "the allocator"). `import polars` writes its
# own setting into the environment, followed by any the user set, and jemalloc reads the last
# value of an option: ours goes before the user's, and Polars' own, passed on by a parent
# process that imported Polars (a script running musicrec), is not taken for the user's.
ALLOCATOR_ENV = "_RJEM_MALLOC_CONF"
ALLOCATOR_CONF = "dirty_decay_ms:10000"
POLARS_ALLOCATOR_CONF = "dirty_decay_ms:500,muzzy_decay_ms:1000"  # polars/__init__.py, 2.1


def allocator_conf(inherited: str) -> str:
    """The allocator setting for this process, given the environment's `inherited` one."""
    users = inherited.removeprefix(POLARS_ALLOCATOR_CONF).lstrip(",")
    return f"{ALLOCATOR_CONF},{users}" if users else ALLOCATOR_CONF


def _terminated_while_starting(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    os.write(2, b"error: terminated (SIGTERM) while starting; nothing was written.\n")
    os._exit(EXIT_TERMINATED)


def main() -> None:
    """Answer SIGTERM from the first instruction, set the allocator, import and run the CLI."""
    signal.signal(signal.SIGTERM, _terminated_while_starting)
    os.environ[ALLOCATOR_ENV] = allocator_conf(os.environ.get(ALLOCATOR_ENV, ""))  # before Polars
    from musicrec_cli.app import app  # noqa: PLC0415 - imported after the handler is in place

    app(prog_name="musicrec")


if __name__ == "__main__":
    main()
