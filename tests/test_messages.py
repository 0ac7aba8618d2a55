"""Issue 16: messages and output. Results on stdout, names never markup, errors that say where.

Uses the small pipeline of tests/conftest.py (built once per session, copied per test).
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

import stages.split
from musicrec_cli import console
from musicrec_cli.app import app
from tests.faultkit import ROOT, invoke, raw_events, refused, write_config, write_csv

RUN = CliRunner()


def cli(config: Path, *args: str):
    return RUN.invoke(app, ["-c", str(config), *args])


def a_user(config: Path) -> str:
    return str(
        pl.read_parquet(config.parent / "art" / "01_preprocess" / "users.parquet")["user_id"][0]
    )


def test_results_go_to_stdout_and_logs_to_stderr_16(small_project: Path):
    result = cli(small_project, "recommend", a_user(small_project), "-m", "als", "-n", "3")
    assert result.exit_code == 0, result.output
    assert "rank" in result.stdout
    assert "rank" not in result.stderr
    evaluated = cli(small_project, "evaluate")
    assert "Ranking at K=" in evaluated.stdout
    assert "✓ evaluate" in evaluated.stderr
    as_json = cli(small_project, "evaluate", "--json")
    assert as_json.stdout.lstrip().startswith("{")
    assert "Ranking at K=" in as_json.stderr
    assert "models" in __import__("json").loads(as_json.stdout)


def test_names_are_printed_as_text_never_markup_16(capsys: pytest.CaptureFixture[str]):
    rows = [["1", "[dunkelbunt]", "Gold [/] Fire", "0.5"], ["2", "[bold]x", "y\n+5%", "0.1"]]
    console.table("Top for [user]", ["rank", "artist", "title", "score"], rows, bold={(0, 3)})
    console.summary("similar", "[dunkelbunt] - Gold [/] Fire")
    console.error("[train].factors = -3")
    out, err = capsys.readouterr()
    for text in ("[dunkelbunt]", "Gold [/] Fire", "[bold]x", "Top for [user]", "+5%"):
        assert text in out
    assert "[dunkelbunt] - Gold [/] Fire" in err
    assert "error: [train].factors = -3" in err


def _help_references(command: object) -> set[str]:
    texts = [getattr(command, "help", "") or ""]
    texts += [getattr(p, "help", "") or "" for p in getattr(command, "params", [])]
    return set(re.findall(r"\[[a-z_]+\](?:\.[a-z_]+)?", " ".join(texts)))


def test_help_keeps_every_table_key_reference_16():
    group = typer.main.get_command(app)
    checked = 0
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        wanted = _help_references(command)
        if not wanted:
            continue
        shown = " ".join(RUN.invoke(app, [name, "--help"], terminal_width=200).stdout.split())
        for ref in wanted:
            assert ref in shown, (name, ref)
            checked += 1
    assert checked >= 5  # generate's [generate].events, preprocess's [paths].raw, ...


def test_a_huge_bad_header_is_quoted_as_a_short_excerpt_16(tmp_path: Path):
    raw = tmp_path / "one_line.csv"
    raw.write_text("x" * 200_000 + "\n1\n")
    config = write_config(tmp_path, raw=raw, art=tmp_path / "art")
    line = refused(invoke(config, "preprocess"), str(raw))
    assert len(line) < 1000


def test_disk_full_in_preprocess_is_exit_4_naming_what_was_written_16(
    small_project: Path, monkeypatch: pytest.MonkeyPatch
):
    def full_disk(real: Any) -> Any:
        def full(self: pl.LazyFrame, path: object, *args: object, **kwargs: object) -> None:
            if ".partial" in str(path):
                msg = "I/O error: No space left on device (os error 28)"
                raise pl.exceptions.ComputeError(msg)
            real(self, path, *args, **kwargs)

        return full

    # the scratch files (IPC; two buckets, as one stays in memory) and the outputs (Parquet)
    for sink in ("sink_parquet", "sink_ipc"):
        monkeypatch.setattr(pl.LazyFrame, sink, full_disk(getattr(pl.LazyFrame, sink)))
    sets = ["--set", "preprocess.min_track_users=1", "--set", "preprocess.buckets=2"]
    outcome = invoke(small_project, *sets, "preprocess")
    assert outcome.code == 4, outcome.stderr
    assert ".01_preprocess.partial: I/O error: No space left on device" in outcome.stderr
    assert "cannot read the raw listening log" not in outcome.stderr


def test_disk_full_in_predict_is_exit_4_naming_the_file_16(
    small_project: Path, monkeypatch: pytest.MonkeyPatch
):
    def full(self: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    outcome = invoke(small_project, "predict")
    assert outcome.code == 4, outcome.stderr
    assert "predictions.parquet: No space left on device while writing" in outcome.stderr


def test_polars_errors_from_our_own_code_keep_their_traceback_16(
    small_project: Path, monkeypatch: pytest.MonkeyPatch
):
    def misspelt(*args: object, **kwargs: object) -> None:
        pl.DataFrame({"user_idx": [1]}).select("usr_idx")

    monkeypatch.setattr(stages.split, "period_pairs", misspelt)
    outcome = invoke(small_project, "split")
    assert isinstance(outcome.exception, pl.exceptions.ColumnNotFoundError)
    assert outcome.error_lines == []


def test_quiet_prints_no_success_lines_16(small_project: Path):
    outcome = invoke(small_project, "-q", "--set", "evaluate.k=[1]", "evaluate")
    assert outcome.code == 0, outcome.stderr
    assert "✓" not in outcome.stderr
    assert "INFO" not in outcome.stderr


def test_logs_are_not_wrapped_when_not_a_terminal_16(small_project: Path):
    outcome = invoke(small_project, "--set", "evaluate.k=[1]", "evaluate")
    summary = [line for line in outcome.stderr.splitlines() if line.startswith("✓ evaluate")]
    assert len(summary) == 1
    assert summary[0].endswith("06_evaluate")  # the folder is on the same line
    assert all(line == line.rstrip() for line in outcome.stderr.splitlines())


def test_a_byte_order_mark_in_the_users_file_is_not_part_of_the_first_id_16(small_project: Path):
    ids = small_project.parent / "ids.txt"
    ids.write_bytes(b"\xef\xbb\xbf" + a_user(small_project).encode() + b"\n")
    outcome = invoke(small_project, "predict", "--users", str(ids))
    assert outcome.code == 0, outcome.stderr
    assert "unknown" not in outcome.stderr


def test_a_dangling_symlink_in_the_raw_folder_is_refused_16(tmp_path: Path):
    folder = tmp_path / "listens"
    write_csv(raw_events(n_events=300), folder / "a.csv")
    (folder / "b.csv").symlink_to(tmp_path / "unmounted" / "b.csv")
    config = write_config(tmp_path, raw=folder, art=tmp_path / "art")
    refused(invoke(config, "preprocess"), "b.csv", "symbolic link")


def test_outside_a_project_it_refuses_instead_of_using_defaults_on_nothing_16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    result = RUN.invoke(app, ["preprocess"])
    assert result.exit_code == 1
    assert "no musicrec.toml here" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no ./artifacts/.lock


SLOW_START = """\
import builtins, pathlib, sys, time
ready = pathlib.Path(sys.argv.pop(1))
real = builtins.__import__
def slow(name, *args, **kwargs):
    if name == "musicrec_cli.app":
        ready.write_text("importing")
        time.sleep(30)
    return real(name, *args, **kwargs)
builtins.__import__ = slow
from musicrec_cli.__main__ import main
main()
"""


def test_sigterm_while_importing_says_so_and_exits_143_16(tmp_path: Path):
    script, ready = tmp_path / "slow.py", tmp_path / "ready"
    script.write_text(SLOW_START)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ready), "--help"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert err.strip() == "error: terminated (SIGTERM) while starting; nothing was written."
