"""benchmarks/full_scale.py at a tiny scale, so that the headline run's script cannot rot."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["generate", "preprocess", "split", "features", "train", "predict", "evaluate"]


def _run(tmp_path: Path) -> str:
    args = [
        sys.executable,
        str(ROOT / "benchmarks" / "full_scale.py"),
        "--scale",
        "10000",
        "--events",
        "15000",
        "--work",
        str(tmp_path / "work"),
        "--results",
        str(tmp_path / "r.json"),
        "--set",
        'train.models=["popularity","als"]',
        "--duckdb",
        "--als-repeats",
        "2",
    ]
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _parquet_rows(folder: Path) -> dict[str, int]:
    return {p.name: pq.ParquetFile(p).metadata.num_rows for p in sorted(folder.glob("*.parquet"))}


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow  # a dozen musicrec processes (about 40 s); CI runs the slow tests too
def test_full_scale_script_measures_every_stage_and_resumes(tmp_path: Path):
    _run(tmp_path)
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["sizes"] == {"events": 15000, "users": 137, "tracks": 80}
    assert list(results["stages"]) == STAGES
    work = tmp_path / "work"
    for i, stage in enumerate(STAGES):
        measured = results["stages"][stage]
        folder = work / "raw" if i == 0 else work / "artifacts" / f"{i:02d}_{stage}"
        assert measured["bytes_on_disk"] == _bytes(folder), stage
        assert 0 < measured["system_seconds"] < measured["cpu_seconds"]
        assert measured["peak_rss_gib"] > 0.01
        if i == 0:
            continue
        manifest = json.loads((folder / "manifest.json").read_text())
        # the stage's process runs longer than the stage it times itself
        assert measured["wall_seconds"] >= manifest["wall_seconds"] - 0.01, stage
        assert measured["summary"] == manifest["summary"]
        assert measured["rows_out"] == _parquet_rows(folder), stage
    assert results["stages"]["train"]["summary"]["models"] == ["popularity", "als"]
    # the machine's speed, timed before the first stage run and after the last
    speed = results["machine_speed"]
    assert [c["when"] for c in speed] == ["before generate", "after evaluate"]
    for check in speed:  # the reference fit at 1/10000: 1000 x 2000, 410 random cells
        assert (check["users"], check["items"], check["nnz"]) == (1000, 2000, 410)
        assert check["vs_reference"] is None  # not the reference's sizes: no ratio
        assert check["wall_ns_per_nnz_iteration"] == pytest.approx(
            check["wall_seconds"] / (410 * 15) * 1e9, rel=0.01
        )
    # musicrec's ALS and implicit's own fit on the matrix train fitted, interleaved, medians
    reference = results["als_reference"]
    runs = reference["runs"]
    assert [len(runs["musicrec"]), len(runs["implicit"])] == [2, 2]
    n_train = results["stages"]["split"]["summary"]["n_train"]
    assert {r["nnz"] for r in runs["musicrec"] + runs["implicit"]} == {n_train}
    for run in runs["musicrec"]:
        assert min(run[k] for k in ("load_weights_seconds", "fit_seconds", "save_seconds")) > 0
    fits = reference["median_fit_seconds"]
    assert fits["implicit"] == pytest.approx(
        sum(r["fit_seconds"] for r in runs["implicit"]) / 2, abs=1e-3
    )  # the median of two
    assert reference["ratio_fit_musicrec_vs_implicit"] == pytest.approx(
        fits["musicrec"] / fits["implicit"], abs=1e-3
    )
    train = json.loads((work / "artifacts" / "04_train" / "metrics.json").read_text())
    assert reference["train_stage_als_seconds"] == train["models"]["als"]["train_seconds"]
    # DuckDB aggregates the same raw files without our k-core: its pairs are ours before it
    # (the generated log at this size has no bots and no duplicate plays to tell them apart)
    duckdb = results["preprocess_reference"]
    quality = json.loads((work / "artifacts" / "01_preprocess" / "quality_report.json").read_text())
    steps = {step["step"]: step for step in quality["steps"]}
    assert steps["bots"]["dropped"] == {"users": 0, "plays": 0}
    assert steps["dedupe"]["dropped"] == {"duplicate_plays": 0}
    assert duckdb["pairs"] == steps["min_counts"]["rows_in"]
    assert steps["min_counts"]["rows_out"] == results["stages"]["preprocess"]["summary"]["n_pairs"]
    assert duckdb["ratio_musicrec_vs_duckdb"] == pytest.approx(
        results["stages"]["preprocess"]["wall_seconds"] / duckdb["wall_seconds"], abs=1e-3
    )
    pre = results["stages"]["preprocess"]
    assert pre["rows_out"]["plays.parquet"] == pre["summary"]["n_plays"] <= 15000

    # interrupted after predict: the next run redoes predict and evaluate only
    (tmp_path / "work" / "artifacts" / "05_predict" / "manifest.json").unlink()
    stdout = _run(tmp_path)
    assert stdout.count("done earlier") == 5
    assert "predict ..." in stdout
    assert "evaluate ..." in stdout
    speed = json.loads((tmp_path / "r.json").read_text())["machine_speed"]
    assert [c["when"] for c in speed[2:]] == ["before predict", "after evaluate"]

    args = [sys.executable, "benchmarks/full_scale.py", "--results", str(tmp_path / "r.json")]
    shown = subprocess.run([*args, "--table"], capture_output=True, text=True, cwd=ROOT, check=True)
    table = [line for line in shown.stdout.splitlines() if line.startswith("|")]
    rows = [line.split(" | ")[0].strip("| ") for line in table[2:]]
    assert rows == [*STAGES, "**preprocess to evaluate**"]
    assert shown.stdout.count(" ns before ") == 2
