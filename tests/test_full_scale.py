"""benchmarks/full_scale.py at a tiny scale, so that the headline run's script cannot rot."""

import json
import subprocess
import sys
from pathlib import Path

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
    ]
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_full_scale_script_measures_every_stage_and_resumes(tmp_path: Path):
    _run(tmp_path)
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["sizes"] == {"events": 15000, "users": 137, "tracks": 80}
    assert list(results["stages"]) == STAGES
    for stage in STAGES:
        measured = results["stages"][stage]
        assert measured["wall_seconds"] > 0
        assert measured["peak_rss_gib"] > 0.01
        assert measured["bytes_on_disk"] > 0
    assert results["stages"]["train"]["summary"]["models"] == ["popularity", "als"]
    reference = results["als_reference"]  # implicit's own fit on the matrix train fitted
    assert reference["nnz"] == results["stages"]["split"]["summary"]["n_train"]
    assert reference["fit_seconds"] > 0
    assert reference["ratio_musicrec_vs_implicit"] > 0
    duckdb = results["preprocess_reference"]  # DuckDB's aggregation of the same raw files
    assert duckdb["pairs"] >= results["stages"]["preprocess"]["summary"]["n_pairs"] > 0
    assert duckdb["ratio_musicrec_vs_duckdb"] > 0
    pre = results["stages"]["preprocess"]
    assert pre["rows_out"]["plays.parquet"] == pre["summary"]["n_plays"] <= 15000

    # interrupted after predict: the next run redoes predict and evaluate only
    (tmp_path / "work" / "artifacts" / "05_predict" / "manifest.json").unlink()
    stdout = _run(tmp_path)
    assert stdout.count("done earlier") == 5
    assert "predict ..." in stdout
    assert "evaluate ..." in stdout

    args = [sys.executable, "benchmarks/full_scale.py", "--results", str(tmp_path / "r.json")]
    shown = subprocess.run([*args, "--table"], capture_output=True, text=True, cwd=ROOT, check=True)
    rows = [line.split(" | ")[0].strip("| ") for line in shown.stdout.splitlines()[2:]]
    assert rows == [*STAGES, "**preprocess to evaluate**"]
