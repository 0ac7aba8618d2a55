"""The whole pipeline through Typer's CliRunner on tiny generated data."""

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from musicrec_cli.app import app
from musicrec_cli.artifacts import STAGES
from musicrec_cli.config import PredictConfig, TrainConfig
from musicrec_cli.runner.split import user_ranges
from tests.conftest import write_config

STAGE_DIRS = [f"{i + 1:02d}_{s}" for i, s in enumerate(STAGES)]


def run(config: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(config), *args])


def manifest(config: Path, folder: str) -> dict:
    return json.loads((config.parent / "artifacts" / folder / "manifest.json").read_text())


@pytest.fixture
def pipeline(tiny_pipeline: Path) -> Path:
    return tiny_pipeline


def test_all_writes_every_stage_with_consistent_counts(pipeline: Path):
    art = pipeline.parent / "artifacts"
    for folder in STAGE_DIRS:
        assert (art / folder / "manifest.json").is_file(), folder
    pre = manifest(pipeline, "01_preprocess")
    events = pl.read_parquet(art / "01_preprocess" / "events.parquet")
    assert pre["outputs"]["events.parquet"]["rows"] == events.height == pre["summary"]["n_pairs"]
    assert events["user_idx"].max() + 1 == pre["summary"]["n_users"]
    assert events["track_idx"].n_unique() == pre["summary"]["n_tracks"]
    assert pre["config"]["min_user_tracks"] == 3
    assert set(pre) >= {"inputs", "wall_seconds", "peak_rss_mb", "musicrec_version"}
    assert all(len(v["sha256"]) == 64 for v in pre["inputs"].values())


def test_predictions_are_ranked_unheard_tracks(pipeline: Path):
    art = pipeline.parent / "artifacts"
    preds = pl.read_parquet(art / "05_predict" / "predictions.parquet")
    train = pl.read_parquet(art / "02_split" / "train.parquet")
    trained = set(TrainConfig().models)
    reranked = {f"{m}+rerank" for m in PredictConfig().rerank_models if m in trained}
    assert set(preds["model"].unique()) == trained | reranked
    assert preds.join(train, on=["user_idx", "track_idx"], how="inner").height == 0
    ranks = preds.group_by("model", "user_idx").agg(pl.col("rank").sort(), pl.col("score"))
    assert ranks["rank"].to_list()[0] == list(range(1, 11))
    # scores never increase with rank (a re-ranked list has its own order)
    assert (
        preds.filter(~pl.col("model").str.ends_with("+rerank"))
        .sort("model", "user_idx", "rank")
        .select((pl.col("score").diff().over("model", "user_idx") <= 1e-6).fill_null(True).all())
        .item()
    )
    users = pl.read_parquet(art / "01_preprocess" / "users.parquet")
    joined = preds.join(users, on="user_idx", suffix="_users")
    assert (joined["user_id"] == joined["user_id_users"]).all()


def test_metrics_json_has_every_metric_per_model(pipeline: Path):
    metrics = json.loads(
        (pipeline.parent / "artifacts" / "06_evaluate" / "metrics.json").read_text()
    )
    assert set(TrainConfig().models) <= set(metrics["models"])
    for values in metrics["models"].values():
        names = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate", "coverage")
        names += ("artist_diversity",)  # needs items.parquet's artist_id: a rename would drop it
        for name in names:
            for k in (5, 10):
                assert 0.0 <= values[f"{name}@{k}"] <= 1.0
    assert metrics["n_users_evaluated"] > 0


def test_rerunning_all_skips_every_stage(pipeline: Path):
    before = [manifest(pipeline, f)["created_at"] for f in STAGE_DIRS]
    result = run(pipeline, "all")
    assert result.exit_code == 0
    assert result.output.count("up to date, skipped") == 6
    assert [manifest(pipeline, f)["created_at"] for f in STAGE_DIRS] == before


def test_changing_train_settings_reruns_train_and_later_stages_only(pipeline: Path):
    before = {f: manifest(pipeline, f)["created_at"] for f in STAGE_DIRS}
    result = run(pipeline, "--set", "train.factors=6", "all")
    assert result.exit_code == 0, result.output
    after = {f: manifest(pipeline, f)["created_at"] for f in STAGE_DIRS}
    assert [after[f] == before[f] for f in STAGE_DIRS] == [True, True, True, False, False, False]
    assert manifest(pipeline, "04_train")["config"]["factors"] == 6


@pytest.mark.slow  # over 2 s: a whole pipeline or a live server
def test_als_beats_popularity_on_ndcg(tmp_path: Path):
    config = write_config(
        tmp_path,
        generate={"users": 400, "tracks": 500, "events": 60_000, "genres": 8, "seed": 3},
        train={"factors": 16, "iterations": 10},
    )
    assert run(config, "generate", "--out", str(tmp_path / "raw")).exit_code == 0
    result = run(config, "all")
    assert result.exit_code == 0, result.output
    models = json.loads((tmp_path / "artifacts" / "06_evaluate" / "metrics.json").read_text())[
        "models"
    ]
    assert models["als"]["ndcg@10"] > 1.5 * models["popularity"]["ndcg@10"]


def test_missing_raw_data_names_the_path_and_writes_nothing(tmp_path: Path):
    config = write_config(tmp_path)
    result = run(config, "preprocess")
    assert result.exit_code == 1
    assert str(tmp_path / "raw" / "listens") in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "artifacts" / "01_preprocess").exists()


def test_stage_before_its_upstream_names_the_command_to_run(tiny_project: Path):
    result = run(tiny_project, "split")
    assert result.exit_code == 1
    assert "01_preprocess/manifest.json not found; run `musicrec preprocess` first" in result.output


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.factors=-3", "[train].factors = -3: expected a positive integer"),
        ("train.factors=lots", "expected an integer"),
        ("train.factor=3", "unknown key in [train] 'factor'. Did you mean 'factors'?"),
        ("trian.factors=3", "unknown table 'trian'. Did you mean 'train'?"),
        ("train.models=['als','svd']", "[train].models"),
        ("split.test_fraction=1.5", "expected a number between 0 and 1"),
    ],
)
def test_bad_config_values_name_the_key(tiny_project: Path, override: str, expected: str):
    result = run(tiny_project, "--set", override, "train")
    assert result.exit_code == 1
    assert expected in result.output
    assert "Traceback" not in result.output


def test_a_failed_rerun_keeps_the_previous_outputs(pipeline: Path):
    art = pipeline.parent / "artifacts" / "02_split"
    before = {p.name: p.read_bytes() for p in art.iterdir()}
    result = run(pipeline, "--set", "split.test_fraction=0.0000001", "split")
    assert result.exit_code == 1
    assert "test set is empty" in result.output
    assert {p.name: p.read_bytes() for p in art.iterdir()} == before
    assert not list(art.parent.glob(".*partial"))


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        ("preprocess", "01_preprocess"),
        ("split", "02_split"),
        ("features", "03_features"),
        ("train", "04_train"),
        ("predict", "predictions.parquet"),
        ("evaluate", "metrics.json"),
    ],
)
def test_each_command_help_says_what_it_reads_and_writes(command: str, mentions: str):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert mentions in result.output


def test_user_ranges_cut_contiguous_users_by_plays():
    users = pl.DataFrame({"user_idx": [0, 1, 2, 3, 4], "n_plays": [5, 5, 5, 20, 1]})
    # a user goes to the part where its first play falls: offsets 0, 5, 10, 15, 35 -> 0, 0, 1, 1, 3
    assert user_ranges(users, plays_per_part=10) == [(0, 1), (2, 3), (4, 4)]
    assert user_ranges(users, plays_per_part=1000) == [(0, 4)]


def test_split_in_many_user_ranges_equals_one_range(pipeline: Path):
    art = pipeline.parent / "artifacts" / "02_split"
    one = {n: pl.read_parquet(art / n) for n in ("train.parquet", "test.parquet")}
    result = run(pipeline, "--set", "split.plays_per_part=200", "split")
    assert result.exit_code == 0, result.output
    assert manifest(pipeline, "02_split")["summary"]["n_parts"] > 10
    for name, frame in one.items():
        assert pl.read_parquet(art / name).equals(frame), name


def test_ease_above_its_memory_budget_is_refused_in_one_line_19(pipeline: Path):
    folder = pipeline.parent / "artifacts" / "04_train"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    models = 'train.models=["rp3beta", "ease"]'
    result = run(pipeline, "--set", models, "--set", "train.ease_max_gib=0.00001", "train")
    assert result.exit_code != 0
    assert "EASE on" in result.output
    assert "above the memory plan of 0.0 GiB; use rp3beta or knn" in result.output
    assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    result = run(pipeline, "--set", models, "train")
    assert result.exit_code == 0, result.output
    result = run(pipeline, "--set", models, "--set", "predict.rerank_models=[]", "predict")
    assert result.exit_code == 0, result.output
    recs = pl.read_parquet(pipeline.parent / "artifacts" / "05_predict" / "predictions.parquet")
    assert sorted(recs["model"].unique()) == ["ease", "rp3beta"]
