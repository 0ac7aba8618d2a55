"""`musicrec tune` end to end on tiny generated data: search, resume, train with the result."""

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from musicrec_cli.app import app


def run(config: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(config), *args])


def test_tune_resumes_and_train_reads_the_best_settings_19(tiny_project: Path):
    for stage in ("preprocess", "split", "features"):
        assert run(tiny_project, stage).exit_code == 0
    tuning = tiny_project.parent / "artifacts" / "04_train" / "tuning"
    result = run(tiny_project, "tune", "--model", "knn", "--trials", "3")
    assert result.exit_code == 0, result.output
    assert "best ndcg@10" in result.output
    first = pl.read_parquet(tuning / "knn_trials.parquet")
    assert first["state"].to_list() == ["COMPLETE"] * 3
    # a second run continues the same search: 2 more trials, not 5, and no replayed proposals
    result = run(tiny_project, "tune", "--model", "knn", "--trials", "5")
    assert result.exit_code == 0, result.output
    trials = pl.read_parquet(tuning / "knn_trials.parquet")
    assert trials["number"].to_list() == [0, 1, 2, 3, 4]
    assert trials.head(3).equals(first)
    new = trials.tail(2).select("knn_neighbours", "knn_similarity").rows()
    assert not set(new) & set(first.select("knn_neighbours", "knn_similarity").rows())
    best = tomllib.loads((tuning / "knn_best.toml").read_text())["train"]
    winner = trials.sort("value", descending=True).row(0, named=True)
    assert best == {
        "knn_similarity": winner["knn_similarity"],
        "knn_neighbours": int(winner["knn_neighbours"]),
    }
    assert winner["value"] == trials["best_so_far"].max()
    result = run(
        tiny_project,
        "--set",
        'train.models=["knn"]',
        "train",
        "--tuned",
        str(tuning / "knn_best.toml"),
    )
    assert result.exit_code == 0, result.output
    models = json.loads((tuning.parent / "models.json").read_text())
    assert models["knn"]["params"] == {
        "similarity": best["knn_similarity"],
        "neighbours": best["knn_neighbours"],
    }
    assert (tuning / "journal.log").exists()  # train kept the search


def test_the_blend_is_tuned_trained_and_predicted_like_the_others_19(tiny_project: Path):
    for stage in ("preprocess", "split", "features"):
        assert run(tiny_project, stage).exit_code == 0
    tuning = tiny_project.parent / "artifacts" / "04_train" / "tuning"
    result = run(tiny_project, "tune", "--model", "blend", "--trials", "3")
    assert result.exit_code == 0, result.output
    best = tomllib.loads((tuning / "blend_best.toml").read_text())["train"]
    assert len(best["blend_weights"]) == 3
    models = 'train.models=["popularity", "blend"]'
    result = run(tiny_project, "--set", models, "train", "--tuned", str(tuning / "blend_best.toml"))
    assert result.exit_code == 0, result.output
    trained = json.loads((tuning.parent / "models.json").read_text())
    assert trained["blend"]["params"] == {"weights": best["blend_weights"]}
    assert run(tiny_project, "--set", models, "predict").exit_code == 0
    preds = pl.read_parquet(tuning.parents[1] / "05_predict" / "predictions.parquet")
    assert preds.filter(pl.col("model") == "blend").height > 0
    users = pl.read_parquet(tuning.parents[1] / "01_preprocess" / "users.parquet")
    got = run(tiny_project, "--set", models, "recommend", users["user_id"][0], "-m", "blend")
    assert got.exit_code == 0, got.output


def test_tune_refuses_a_model_without_settings(tiny_project: Path):
    result = run(tiny_project, "tune", "--model", "popularity")
    assert result.exit_code == 2
    assert "cannot be tuned; choose one of" in result.output


@pytest.mark.slow
def test_a_killed_search_resumes_from_its_journal_19(tiny_project: Path):
    for stage in ("preprocess", "split", "features"):
        assert run(tiny_project, stage).exit_code == 0
    journal = tiny_project.parent / "artifacts" / "04_train" / "tuning" / "journal.log"
    command = [sys.executable, "-m", "musicrec_cli", "--config", str(tiny_project), "tune"]
    proc = subprocess.Popen(
        [*command, "--model", "rp3beta", "--trials", "200"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"OPENBLAS_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count('"state":1') >= 3:
            break  # three trials finished (state COMPLETE)
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    # trials on tiny data are fast: more than three may finish before the kill lands
    target = journal.read_text().count('"state":1') + 2
    result = run(tiny_project, "tune", "--model", "rp3beta", "--trials", str(target))
    assert result.exit_code == 0, result.output
    trials = pl.read_parquet(journal.parent / "rp3beta_trials.parquet")
    assert trials.filter(pl.col("state") == "COMPLETE").height == target
    assert trials.height <= target + 1  # at most one trial was cut short by the kill
