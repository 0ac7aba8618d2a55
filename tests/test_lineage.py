"""Issue 16: no stage or query combines two runs; predict --users never poses as the full run.

One small pipeline is built per session and copied per test (faultkit's tiny world, 30 users;
conftest.py: small_pipeline, small_project).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from musicrec_cli import lineage
from tests.faultkit import invoke, refused


def manifest(config: Path, folder: str) -> dict:
    return json.loads((config.parent / "art" / folder / "manifest.json").read_text())


def test_after_preprocess_reruns_alone_every_later_reader_refuses_16(small_project: Path):
    rerun = invoke(small_project, "--set", "preprocess.min_track_users=1", "preprocess")
    assert rerun.code == 0, rerun.stderr
    before = (small_project.parent / "art" / "05_predict" / "predictions.parquet").read_bytes()
    stale = ("02_split is stale", "01_preprocess", "`musicrec split`")
    refused(invoke(small_project, "predict"), *stale)
    users = pl.read_parquet(small_project.parent / "art" / "01_preprocess" / "users.parquet")
    refused(invoke(small_project, "recommend", users["user_id"][0], "-m", "als"), *stale)
    refused(invoke(small_project, "similar", "x", "-m", "als"), *stale)
    refused(invoke(small_project, "evaluate"), *stale)
    assert (
        small_project.parent / "art" / "05_predict" / "predictions.parquet"
    ).read_bytes() == before


def test_all_reruns_exactly_what_is_stale_16(small_project: Path):
    rerun = invoke(small_project, "--set", "split.test_fraction=0.5", "split")
    assert rerun.code == 0, rerun.stderr
    refused(
        invoke(small_project, "evaluate"), "03_features is stale", "02_split", "`musicrec features`"
    )
    outcome = invoke(small_project, "--set", "split.test_fraction=0.5", "all")
    assert outcome.code == 0, outcome.stderr
    skipped = [line.split(":")[0] for line in outcome.stderr.splitlines() if "skipped" in line]
    assert skipped == ["preprocess", "split"], outcome.stderr
    lineage.check_chain(small_project.parent / "art", ("evaluate",))
    art = small_project.parent / "art"
    preds = pl.read_parquet(art / "05_predict" / "predictions.parquet")
    train = pl.read_parquet(art / "02_split" / "train.parquet")
    assert preds.join(train, on=["user_idx", "track_idx"]).height == 0  # nothing heard


def test_predict_users_merges_into_the_full_run_16(small_project: Path):
    art = small_project.parent / "art"
    full = pl.read_parquet(art / "05_predict" / "predictions.parquet")
    user = full["user_id"][0]
    ids = small_project.parent / "ids.txt"
    ids.write_text(f"{user}\n")
    outcome = invoke(small_project, "predict", "--users", str(ids))
    assert outcome.code == 0, outcome.stderr
    merged = pl.read_parquet(art / "05_predict" / "predictions.parquet")
    summary = manifest(small_project, "05_predict")["summary"]
    assert summary["scope"] == "all"
    assert summary["n_users_predicted"] == 1
    assert summary["merged_into_run_of"] is not None
    key = ["model", "user_id", "rank", "track_id"]
    assert merged.select(key).sort(key).equals(full.select(key).sort(key))
    evaluated = invoke(small_project, "evaluate")
    assert evaluated.code == 0, evaluated.stderr
    ev = manifest(small_project, "06_evaluate")["summary"]
    assert ev["n_test_users_with_predictions"] == ev["n_test_users"]


def test_predict_users_without_a_full_run_never_poses_as_it_16(small_project: Path):
    art = small_project.parent / "art"
    users = pl.read_parquet(art / "01_preprocess" / "users.parquet")["user_id"]
    ids = small_project.parent / "ids.txt"
    ids.write_text(f"{users[0]}\n")
    # a full run with other settings cannot take the merge: only this user is written
    outcome = invoke(small_project, "--set", "predict.n=4", "predict", "--users", str(ids))
    assert outcome.code == 0, outcome.stderr
    assert "ONLY" in outcome.stderr
    assert manifest(small_project, "05_predict")["summary"]["scope"] == "users"
    refused(
        invoke(small_project, "--set", "predict.n=4", "--set", "evaluate.k=[1]", "evaluate"),
        "05_predict holds predictions for the users of a --users file only",
    )
    again = invoke(small_project, "--set", "predict.n=4", "--set", "evaluate.k=[1]", "all")
    assert again.code == 0, again.stderr
    assert "predict: up to date" not in again.stderr
    assert manifest(small_project, "05_predict")["summary"]["scope"] == "all"


def test_evaluate_k_above_predict_n_is_a_config_error_16(small_project: Path):
    line = refused(invoke(small_project, "--set", "evaluate.k=[1, 50]", "evaluate"), "[evaluate].k")
    assert "[predict].n = 5" in line


def test_misspelt_baseline_is_a_config_error_16(small_project: Path):
    line = refused(invoke(small_project, "--set", "evaluate.baseline=populairty", "evaluate"))
    assert line.startswith("error: --set evaluate.baseline=populairty: [evaluate].baseline")


def test_values_are_blamed_on_where_they_were_given_16(small_project: Path):
    line = refused(invoke(small_project, "--set", "train.factors=-3", "train"))
    assert line.startswith("error: --set train.factors=-3: [train].factors = -3")
    line = refused(invoke(small_project, "generate", "--events", "0", "--out", "gen"))
    assert line.startswith("error: --events 0: [generate].events = 0")
    small_project.write_text(small_project.read_text().replace("factors = 4", "factors = 0"))
    line = refused(invoke(small_project, "train"))
    assert line.startswith(f"error: {small_project}: [train].factors = 0")
