"""Shared helpers of the fault catalogue: a tiny pipeline on disk and checks on what a run left.

Not a test module: tests/test_faults.py and tests/test_faults_process.py import it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from musicrec_cli.app import app
from stages.generate import make_events, make_world

ROOT = Path(__file__).resolve().parent.parent
RUNNER = CliRunner()
CONFIG = """\
[paths]
raw = "{raw}"
catalog = ""
artifacts = "{art}"

[preprocess]
min_user_tracks = 3
min_track_users = 2

[train]
factors = 4
iterations = 2

[predict]
n = 5
block_size = {block_size}

[evaluate]
k = [1, 5]
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one `musicrec` run did: exit code and its stderr."""

    code: int
    stderr: str
    exception: BaseException | None

    @property
    def error_lines(self) -> list[str]:
        """The lines printed as errors."""
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def raw_events(*, n_events: int = 2000, seed: int = 1) -> pl.DataFrame:
    """A small listening log with the generator's columns (user_id, played_at, ...)."""
    world = make_world(n_users=30, n_tracks=50, n_genres=3, seed=seed)
    return make_events(world, n_events=n_events, seed=seed)


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    """Write `frame` as CSV (timestamps as ISO 8601 with Z)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ")).write_csv(path)
    return path


def write_config(folder: Path, *, raw: Path, art: Path, block_size: int = 1024) -> Path:
    """A musicrec.toml for the tiny pipeline; returns its path."""
    path = folder / "musicrec.toml"
    path.write_text(CONFIG.format(raw=raw, art=art, block_size=block_size), encoding="utf-8")
    return path


def invoke(config: Path, *args: str) -> Outcome:
    """Run `musicrec -c CONFIG ARGS...` in this process."""
    result = RUNNER.invoke(app, ["-c", str(config), *args])
    return Outcome(result.exit_code, result.stderr, result.exception)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` (the lock file aside) by relative path, with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def leftovers(root: Path) -> list[str]:
    """Partial or old stage folders left beside the final ones."""
    return sorted(p.name for p in root.iterdir() if p.name.endswith((".partial", ".old")))


def copy_tree(src: Path, dst: Path) -> Path:
    """Copy an artifacts tree, keeping modification times (manifests record them)."""
    shutil.copytree(src, dst, copy_function=shutil.copy2)
    return dst


# A `musicrec` process that stops for good right after it records its first output file of
# the stage being run (the partial folder then holds one complete file and no manifest), and
# writes that file's name to READY so the test knows it is mid-run. Then the test signals it.
HANG = """\
import pathlib, sys, time
from musicrec_cli import artifacts as art, signals
ready = pathlib.Path(sys.argv.pop(1))
mode = sys.argv.pop(1)
signals.GRACE_SECONDS = 0.5
original = art.StageWriter._record
def syscall(tid):
    return pathlib.Path(f"/proc/self/task/{tid}/syscall").read_text().split()[0]
def announce(main, sleep):
    # READY only once the main thread is inside the C sleep: until then it still runs Python
    # bytecode, which would run the signal handler itself and leave the watchdog untested
    import threading
    reference = threading.Thread(target=sleep, args=(60,), daemon=True)
    reference.start()
    seen = []  # the reference's system call, once it has stayed the same for 50 ms
    while len(seen) < 5 or len(set(seen[-5:])) > 1 or seen[-1] == "running":
        seen.append(syscall(reference.native_id))
        time.sleep(0.01)
    while syscall(main) != seen[-1]:
        time.sleep(0.005)
    ready.write_text("native " + seen[-1])
def hang(self, name, **extra):
    original(self, name, **extra)
    if mode == "native":
        # stuck in native code with the signals blocked in the main thread, as in a long
        # Polars collect: only the watchdog thread can react
        import ctypes, signal, threading
        sleep = ctypes.CDLL(None).sleep
        main = threading.get_native_id()
        threading.Thread(target=announce, args=(main, sleep), daemon=True).start()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        sleep(60)
    ready.write_text(self.stage + " " + name)
    while True:
        time.sleep(0.02)
art.StageWriter._record = hang
from musicrec_cli.app import app
sys.argv[0] = "musicrec"
app()
"""


def start_hanging(
    tmp: Path, config: Path, *args: str, mode: str = "python"
) -> tuple[subprocess.Popen[str], Path]:
    """Start `musicrec -c CONFIG ARGS` as a subprocess and wait until it is mid-stage."""
    script, ready = tmp / "hang.py", tmp / "ready.txt"
    script.write_text(HANG, encoding="utf-8")
    ready.unlink(missing_ok=True)
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ready), mode, "-c", str(config), *args],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not ready.exists() or not ready.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = proc.communicate(timeout=5)
            msg = f"musicrec {args} did not reach its first output: {proc.returncode}\n{err}"
            raise AssertionError(msg)
        time.sleep(0.02)
    return proc, ready


def run_module(tmp: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m musicrec_cli -c CONFIG ARGS` as a subprocess."""
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "musicrec_cli", "-c", str(config), *args],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def refused(outcome: Outcome, *names: str) -> str:
    """One error line naming `names`, exit 1, no traceback."""
    assert outcome.code == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, outcome.stderr
    for name in names:
        assert name in errors[0], errors[0]
    return errors[0]
