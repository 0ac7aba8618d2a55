"""Issue 16: files musicrec did not create are never deleted (report --out, generate, raw data).

The data-loss cases run the CLI in a project folder laid out as the README says, and compare
every byte of the user's files before and after: in this process (CliRunner, the working
directory changed), and once more as a real `python -m musicrec_cli` process (slow: each start
imports musicrec).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from musicrec_cli import owned
from musicrec_cli.app import app
from tests.cli.test_evaluate_cli import write_upstream
from tests.faultkit import ROOT, raw_events, snapshot, write_csv

K = "evaluate.k=[1, 2]"


def musicrec(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m musicrec_cli ARGS` as a real process in `cwd`."""
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "musicrec_cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# in this process, or as a real process (what `make all` and a user's shell start)
HOW = [
    pytest.param(False, id="in-process"),
    pytest.param(True, id="process", marks=pytest.mark.slow),
]


def run_in(cwd: Path, *args: str, real: bool) -> tuple[int, str]:
    """Exit code and stderr of `musicrec ARGS` run in `cwd`."""
    if real:
        done = musicrec(cwd, *args)
        return done.returncode, done.stderr
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project: musicrec.toml, the user's raw log in data/raw/listens, evaluated artifacts."""
    (tmp_path / "musicrec.toml").write_text(
        f'[evaluate]\nk = [1, 2]\n[paths]\nartifacts = "{tmp_path / "artifacts"}"\n'
    )
    write_csv(raw_events(n_events=200), tmp_path / "data" / "raw" / "listens" / "mine.csv")
    write_upstream(tmp_path / "artifacts")
    result = CliRunner().invoke(app, ["-c", str(tmp_path / "musicrec.toml"), "evaluate"])
    assert result.exit_code == 0, result.output
    return tmp_path


def user_files(project: Path) -> dict[str, bytes]:
    return {k: v for k, v in snapshot(project).items() if not k.startswith("artifacts/")}


@pytest.mark.parametrize("real", HOW)
@pytest.mark.parametrize("out", ["data/raw", "data/raw/listens", ".", "{cwd}", "musicrec.toml"])
def test_report_out_never_replaces_what_musicrec_did_not_write_16(
    project: Path, out: str, real: bool
):
    before = user_files(project)
    code, stderr = run_in(project, "report", "--out", out.format(cwd=project), real=real)
    assert code == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    assert user_files(project) == before
    assert not list(project.rglob("*.partial"))


@pytest.mark.slow  # over 2 s: a whole pipeline or a live server
def test_report_out_writes_a_new_folder_then_replaces_its_own_report_16(project: Path):
    folder = project / "reports" / "nightly"
    args = ["-c", str(project / "musicrec.toml"), "report", "--out", str(folder)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert owned.owner_of(folder) == "report"
    (folder / "stale.png").write_bytes(b"old")
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert not (folder / "stale.png").exists()
    assert (folder / "index.html").is_file()


@pytest.mark.slow  # over 2 s: a whole pipeline or a live server
def test_report_out_into_an_empty_folder_is_fine_16(project: Path):
    (project / "empty").mkdir()
    result = CliRunner().invoke(
        app, ["-c", str(project / "musicrec.toml"), "report", "--out", str(project / "empty")]
    )
    assert result.exit_code == 0, result.output
    assert (project / "empty" / "index.html").is_file()


@pytest.mark.parametrize("real", HOW)
def test_generate_never_touches_the_default_raw_folder_16(tmp_path: Path, real: bool):
    """`make all` runs generate: a user's export in data/raw/listens must survive and be used."""
    listens = tmp_path / "data" / "raw" / "listens"
    listens.mkdir(parents=True)
    raw_events(n_events=3000).write_parquet(listens / "mine.parquet")  # no catalogue
    (tmp_path / "musicrec.toml").write_text(
        "[generate]\nusers = 30\ntracks = 40\nevents = 2000\ngenres = 2\n"
        "[preprocess]\nmin_user_tracks = 3\nmin_track_users = 2\n"
    )
    before = user_files(tmp_path)
    code, stderr = run_in(tmp_path, "generate", real=real)
    assert code == 0, stderr
    assert owned.owner_of(tmp_path / "data" / "generated") == "generate"
    assert user_files(tmp_path) == {**before, **user_files(tmp_path)}
    assert all(user_files(tmp_path)[k] == v for k, v in before.items())
    code, stderr = run_in(tmp_path, "preprocess", real=real)
    assert code == 0, stderr
    quality = (tmp_path / "artifacts" / "01_preprocess" / "quality_report.json").read_text()
    assert "mine.parquet" in quality
    assert "generated" not in quality


def test_default_raw_falls_back_to_generated_data_only_when_empty_16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "musicrec.toml").write_text(
        "[generate]\nusers = 30\ntracks = 40\nevents = 2000\ngenres = 2\n"
        "[preprocess]\nmin_user_tracks = 3\nmin_track_users = 2\n"
    )
    (tmp_path / "data" / "raw" / "listens").mkdir(parents=True)  # empty: nothing of the user's
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(app, ["generate"]).exit_code == 0
    pre = CliRunner().invoke(app, ["preprocess"])
    assert pre.exit_code == 0, pre.output
    quality = (tmp_path / "artifacts" / "01_preprocess" / "quality_report.json").read_text()
    assert "data/generated/listens" in quality


def test_generate_out_refuses_a_folder_it_did_not_write_16(tmp_path: Path):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "cat.jpg").write_bytes(b"meow")
    result = CliRunner().invoke(app, ["generate", "--events", "100", "--out", str(mine)])
    assert result.exit_code == 1
    assert "musicrec does not replace folders it did not create" in result.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["cat.jpg"]


@pytest.mark.parametrize(
    "chunk_events",
    [
        pytest.param(5_000_000, id="one-chunk"),
        # two chunks: two spawned worker processes, each importing musicrec
        pytest.param(300, id="two-workers", marks=pytest.mark.slow),
    ],
)
def test_second_generate_in_one_process_uses_its_own_catalogue_16(
    tmp_path: Path, chunk_events: int
):
    """The module global of runner/generate.py once kept the first call's world."""
    runner = CliRunner()
    small = ["--set", "generate.users=20", "--set", "generate.genres=2"]
    first = runner.invoke(
        app,
        [
            *small,
            "--set",
            "generate.tracks=60",
            "generate",
            "--events",
            "500",
            "--out",
            str(tmp_path / "a"),
        ],
    )
    assert first.exit_code == 0, first.output
    second = runner.invoke(
        app,
        [
            *small,
            "--set",
            "generate.tracks=80",
            "--set",
            f"generate.chunk_events={chunk_events}",
            "generate",
            "--events",
            "600",
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert second.exit_code == 0, second.output
    assert pl.read_parquet(tmp_path / "b" / "tracks.parquet").height == 80
