"""Catalogue rows that need a real process: SIGKILL, SIGTERM, Ctrl-C, two runs at once.

`faultkit.start_hanging` runs the real CLI in a subprocess and parks it right after the stage
under test has written its first output file into the partial folder, so "mid-run" is a fact
checked by the test (the partial folder exists, without a manifest), not a guess about timing.
Each test starts a Python process that imports musicrec (seconds of CPU on 2 cores), so the
module is slow: `pytest -m slow` (CI) and `make test-all` run it; `make test` keeps one real
SIGKILL (tests/cli/test_predict_cli.py) and the in-process rows of tests/test_faults.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from musicrec_cli.artifacts import STAGES
from tests.faultkit import (
    ROOT,
    copy_tree,
    invoke,
    leftovers,
    raw_events,
    run_module,
    snapshot,
    start_hanging,
    write_config,
    write_csv,
)

pytestmark = pytest.mark.slow

# predict has its own test below (the old predictions.parquet byte-identical)
FOLDERS = {"preprocess": "01_preprocess", "train": "04_train"}
# a setting that changes the stage's output, so the rerun has real work to redo
CHANGE = {
    "preprocess": "preprocess.min_ms_played=20000",
    "train": "train.iterations=3",
}


# Paths relative to the working directory, so that a copied folder is a complete pipeline
# (manifests record their inputs' paths as the config gives them).
RAW, ART = Path("raw/listens.csv"), Path("art")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("baseline")
    write_csv(raw_events(), folder / RAW)
    # block_size 4: predict writes its Parquet file block by block
    config = write_config(folder, raw=RAW, art=ART, block_size=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        outcome = invoke(config, "all")
    assert outcome.code == 0, outcome.stderr
    return folder


@pytest.fixture
def world(baseline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)
    copy_tree(baseline / "raw", tmp_path / "raw")
    art = copy_tree(baseline / ART, tmp_path / ART)
    return write_config(tmp_path, raw=RAW, art=ART, block_size=4), art


def finals(art: Path) -> dict[str, bytes]:
    """The complete stage folders' files (partial folders left aside)."""
    return {k: v for k, v in snapshot(art).items() if not k.startswith(".")}


@pytest.mark.parametrize("stage", list(FOLDERS))
def test_sigkill_mid_stage_keeps_previous_outputs_and_next_run_redoes_it(
    world: tuple[Path, Path], tmp_path: Path, stage: str
) -> None:
    config, art = world
    before = finals(art)
    proc, ready = start_hanging(tmp_path, config, "--set", CHANGE[stage], stage)
    partial = art / f".{FOLDERS[stage]}.partial"
    assert partial.is_dir()
    assert not (partial / "manifest.json").exists()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert finals(art) == before  # the old outputs, byte for byte
    # the next run cleans the stale partial folder and redoes only the changed stage onwards
    outcome = invoke(config, "--set", CHANGE[stage], "all")
    assert outcome.code == 0, outcome.stderr
    assert leftovers(art) == []
    upstream = STAGES[: STAGES.index(stage)]
    for name in upstream:
        assert f"{name}: up to date, skipped" in outcome.stderr
    assert f"{stage}: up to date" not in outcome.stderr


def test_killed_predict_leaves_old_predictions_byte_identical(
    world: tuple[Path, Path], tmp_path: Path
) -> None:
    config, art = world
    predictions = art / "05_predict" / "predictions.parquet"
    old = predictions.read_bytes()
    proc, ready = start_hanging(tmp_path, config, "--set", "predict.n=7", "predict")
    assert ready.read_text() == "predict predictions.parquet"
    proc.kill()
    proc.communicate(timeout=30)
    assert predictions.read_bytes() == old
    assert pl.read_parquet(predictions)["rank"].max() == 5
    done = run_module(tmp_path, config, "--set", "predict.n=7", "predict")
    assert done.returncode == 0, done.stderr
    assert leftovers(art) == []
    assert pl.read_parquet(predictions)["rank"].max() == 7


@pytest.mark.parametrize(
    ("signum", "code", "words"),
    [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")],
)
def test_sigterm_and_ctrl_c_exit_with_one_line_and_no_partial(
    world: tuple[Path, Path], tmp_path: Path, signum: int, code: int, words: str
) -> None:
    config, art = world
    before = finals(art)
    proc, _ = start_hanging(tmp_path, config, "--set", "predict.n=7", "predict")
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert words in errors[0]
    assert leftovers(art) == []
    assert finals(art) == before


def test_sigterm_during_native_code_is_forced_by_the_watchdog(
    world: tuple[Path, Path], tmp_path: Path
) -> None:
    """The main thread is stuck in C with signals blocked, as in one long Polars collect."""
    config, art = world
    before = finals(art)
    proc, _ = start_hanging(tmp_path, config, "--set", "train.iterations=3", "train", mode="native")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert "forced" in err
    assert leftovers(art) == []
    assert finals(art) == before


def test_two_concurrent_runs_of_all(world: tuple[Path, Path], tmp_path: Path) -> None:
    config, art = world
    before = finals(art)
    first, _ = start_hanging(tmp_path, config, "all", "--force")
    second = invoke(config, "all", "--force")  # this process is the second run
    assert second.code == 3, second.stderr
    assert len(second.error_lines) == 1
    assert f"pid {first.pid}" in second.error_lines[0]
    assert "Traceback" not in second.stderr
    assert (art / ".01_preprocess.partial").is_dir()  # the first run's work was not touched
    first.kill()
    first.communicate(timeout=30)
    assert finals(art) == before
    # the dead run's lock is taken over, its partial folder cleaned, and the work completes
    third = invoke(config, "all")
    assert third.code == 0, third.stderr
    assert f"pid {first.pid}" in third.stderr
    assert leftovers(art) == []
    assert finals(art).keys() == before.keys()


def test_real_predict_killed_by_timing_on_a_bigger_dataset(tmp_path: Path) -> None:
    """No hook: `python -m musicrec_cli predict` on 3,000 users, SIGKILLed once its Parquet
    file exists in the partial folder (about 20 s in all; `make test-all`)."""
    raw = tmp_path / "raw"
    config = write_config(tmp_path, raw=raw / "listens", art=ART, block_size=8)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        made = invoke(config, "generate", "--out", str(raw), "--events", "200000")
        assert made.code == 0, made.stderr
        assert invoke(config, "all").code == 0
    art = tmp_path / ART
    old = (art / "05_predict" / "predictions.parquet").read_bytes()
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "musicrec_cli",
            "-c",
            str(config),
            "--set",
            "predict.n=7",
            "predict",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial_file = art / ".05_predict.partial" / "predictions.parquet"
    deadline = time.monotonic() + 120
    while not partial_file.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.kill()
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
    assert (art / "05_predict" / "predictions.parquet").read_bytes() == old
    done = run_module(tmp_path, config, "--set", "predict.n=7", "predict")
    assert done.returncode == 0, done.stderr
    assert leftovers(art) == []
