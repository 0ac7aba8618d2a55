"""The `musicrec` entry point (and `python -m musicrec_cli`).

A SIGTERM that arrives while the CLI is still importing (Polars, NumPy: about a second) would
otherwise end the process silently; `main` answers it with the same one line and exit code as
later on, before anything is imported. `signals.install` replaces this handler once the app runs.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

EXIT_TERMINATED = 143  # musicrec_cli.signals.EXIT_TERMINATED, not imported: it pulls in Polars


def _terminated_while_starting(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    os.write(2, b"error: terminated (SIGTERM) while starting; nothing was written.\n")
    os._exit(EXIT_TERMINATED)


def main() -> None:
    """Answer SIGTERM from the first instruction, then import and run the CLI."""
    signal.signal(signal.SIGTERM, _terminated_while_starting)
    from musicrec_cli.app import app  # noqa: PLC0415 - imported after the handler is in place

    app(prog_name="musicrec")


if __name__ == "__main__":
    main()
