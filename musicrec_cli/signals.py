"""SIGINT and SIGTERM: a one-line message, exit 130 or 143, partial folders removed.

SIGINT raises KeyboardInterrupt and SIGTERM raises `Terminated` (a KeyboardInterrupt), so the
stage's `open_stage` block deletes its partial folder on the way out and `Session.guard` prints the
line. Python runs signal handlers only between bytecodes, so a signal arriving during one long
Polars collect or ALS iteration would wait for it; a watchdog thread, woken through
`signal.set_wakeup_fd`, therefore deletes the partial folders and exits on its own if the main
thread has not finished within `GRACE_SECONDS`. It waits for an in-progress folder swap first.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import sys
import threading
from types import FrameType

from musicrec_cli import atomic, lock

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
GRACE_SECONDS = 5.0
MESSAGES = {
    signal.SIGINT: "interrupted (Ctrl-C)",
    signal.SIGTERM: "terminated (SIGTERM)",
}
KEPT = "finished stages are kept, the current one was discarded."


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives."""


class _State:
    installed = False
    guarded = 0  # > 0 while Session.guard runs work that cleans up after itself
    sockets: tuple[socket.socket, socket.socket] | None = None  # the wakeup pair, kept open


state = _State()


def exit_code(exc: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def message(exc: KeyboardInterrupt) -> str:
    """The one line printed for an interrupt."""
    signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
    return f"{MESSAGES[signum]}; {KEPT}"


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGINT -> KeyboardInterrupt, SIGTERM -> Terminated; deferred during a folder swap."""
    del frame
    if atomic.SWAP.active:
        atomic.SWAP.pending.append(signum)
        return
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    if state.guarded:
        raise Terminated
    sys.stderr.write(f"error: {MESSAGES[signal.SIGTERM]}\n")
    raise SystemExit(EXIT_TERMINATED)


def _hard_exit(signum: int) -> None:
    """Delete the partial folders and exit without waiting for the main thread."""
    with atomic.COMMIT_LOCK:
        for partial in list(atomic.ACTIVE_PARTIALS):
            shutil.rmtree(partial, ignore_errors=True)
        lock.release_all()
        text = f"error: {MESSAGES[signal.Signals(signum)]} (forced after {GRACE_SECONDS:g} s); "
        os.write(2, (text + KEPT + "\n").encode())
        os._exit(EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED)


def _watch(reader: socket.socket) -> None:
    while True:
        data = reader.recv(16)
        if not data:  # the writer was closed at exit
            reader.close()
            return
        wanted = [b for b in data if b in (signal.SIGINT, signal.SIGTERM)]
        if not wanted:
            continue
        if not state.guarded:
            continue  # no command running (e.g. CliRunner tests): nothing to force
        # give the main thread the grace period to clean up and exit normally
        threading.Event().wait(GRACE_SECONDS)
        if state.guarded:
            _hard_exit(wanted[-1])


def install() -> None:
    """Install the SIGTERM handler and the watchdog (once per process, main thread only)."""
    if state.installed or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(reader,), name="musicrec-signals", daemon=True).start()
    state.sockets = (reader, writer)
    state.installed = True
    atexit.register(_uninstall)


def _uninstall() -> None:
    """At exit: stop the wakeup fd and close its writer; the watchdog then closes the reader."""
    if state.sockets is not None:
        signal.set_wakeup_fd(-1)
        state.sockets[1].close()
