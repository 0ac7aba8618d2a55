import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musicrec_cli.app import app
from musicrec_cli.session import EXIT_RESOURCE
from tests.conftest import write_config

STAGES = ["preprocess", "split", "features", "train", "predict", "evaluate"]


def run(config: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(config), *args])


def plan_json(config: Path, *args: str) -> dict:
    result = run(config, "plan", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_plan_before_preprocess_counts_the_raw_parquet_rows_and_estimates_the_rest(
    tiny_project: Path,
):
    out = plan_json(tiny_project)
    assert out["sizes"]["raw_events"] == 12_000  # the Parquet footers: [generate].events
    assert out["sizes"]["tracks"] == 150  # the catalogue's rows
    assert {"raw_events", "tracks"} <= set(out["sizes"]["counted"])
    assert out["sizes"]["users"] == 120  # [generate].users: the folder is generate's
    assert "plays" not in out["sizes"]["counted"]
    assert [s["stage"] for s in out["stages"]] == STAGES
    assert all(s["peak_bytes"] > 0 and s["disk_bytes"] > 0 for s in out["stages"])
    assert out["machine"]["memory_bytes"] > 0


def test_plan_after_preprocess_uses_its_manifest(tiny_project: Path):
    assert run(tiny_project, "preprocess").exit_code == 0
    manifest = tiny_project.parent / "artifacts" / "01_preprocess" / "manifest.json"
    summary = json.loads(manifest.read_text())["summary"]
    sizes = plan_json(tiny_project, "--stage", "split")["sizes"]
    assert (sizes["plays"], sizes["pairs"]) == (summary["n_plays"], summary["n_pairs"])
    assert (sizes["users"], sizes["tracks"]) == (summary["n_users"], summary["n_tracks"])
    assert {"plays", "pairs", "users", "tracks", "spellings"} <= set(sizes["counted"])


def test_every_stage_dry_run_prints_its_plan_and_writes_nothing(tiny_project: Path):
    artifacts = tiny_project.parent / "artifacts"
    for stage in [*STAGES, "all"]:
        result = run(tiny_project, stage, "--dry-run")
        assert result.exit_code == 0, (stage, result.output)
        shown = STAGES if stage == "all" else [stage]
        assert all(f"│ {s}" in result.stdout for s in shown), result.stdout
        assert not artifacts.exists()  # no stage folder, not even the lock file


def test_strict_exits_4_when_ease_would_be_refused(tiny_project: Path):
    args = ["--set", 'train.models=["ease"]', "plan", "--events", "800000000"]
    result = run(tiny_project, *args, "--tracks", "800000", "--stage", "train", "--strict")
    assert result.exit_code == EXIT_RESOURCE, result.output
    assert "warning: train: EASE on 800,000 tracks needs" in result.stderr
    assert "2.6 TB" in result.stderr
    relaxed = run(tiny_project, *args, "--tracks", "800000", "--stage", "train")
    assert relaxed.exit_code == 0  # the same warning, without --strict


def test_unknown_stage_is_a_usage_error(tiny_project: Path):
    result = run(tiny_project, "plan", "--stage", "trian")
    assert result.exit_code == 2
    assert "'trian' is not a stage" in result.output


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _run_stage(cli: list[str], env: dict[str, str], root: Path, stage: str) -> tuple[Path, float]:
    """Run one stage in its own process: (its folder, its peak RSS in bytes from the manifest).

    Through sh, not forked from pytest: Linux keeps a forked child's RSS high-water mark across
    exec, so a stage started by a pytest process grown to 600 MiB (after the slow suite's other
    tests) reported 600 MiB of its own (split: ~300 MiB measured through sh).
    """
    shell = ["sh", "-c", '"$@"; status=$?; exit $status', "sh"]
    subprocess.run([*shell, *cli], check=True, env=env, capture_output=True)
    folder = next((root / "artifacts").glob(f"0?_{stage}"))
    return folder, json.loads((folder / "manifest.json").read_text())["peak_rss_mb"] * 2**20


@pytest.mark.slow
def test_plan_is_within_2x_of_each_stage_measured_on_the_default_data(tmp_path: Path):
    # make all's data and settings (write_config's small test values set back to the defaults);
    # each stage in its own process, so its manifest's peak RSS is its own
    config = write_config(
        tmp_path,
        generate={"users": 3000, "tracks": 4000, "events": 400_000, "genres": 20, "seed": 42},
        preprocess={"min_user_tracks": 5, "min_track_users": 3},
        train={"factors": 64, "iterations": 15},
        predict={"n": 50, "block_size": 1024},
        evaluate={"k": [5, 10, 20]},
    )
    assert run(config, "generate", "--out", str(tmp_path / "raw")).exit_code == 0
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1"}
    for stage in STAGES:
        planned = plan_json(config, "--stage", stage)["stages"][0]
        cli = [sys.executable, "-m", "musicrec_cli", "--config", str(config), "-q", stage]
        folder, peak = _run_stage(cli, env, tmp_path, stage)
        assert 0.5 <= planned["peak_bytes"] / peak <= 2, (stage, planned["peak_bytes"], peak)
        disk = _folder_bytes(folder)
        assert 0.5 <= planned["disk_bytes"] / disk <= 2, (stage, planned["disk_bytes"], disk)
