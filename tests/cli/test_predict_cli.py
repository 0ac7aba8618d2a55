"""`musicrec predict` end to end on a tiny generated dataset."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_series_equal
from typer.testing import CliRunner

from musicrec_cli.app import app
from stages.schema import PREDICTIONS

runner = CliRunner()


def _write_config(folder: Path, extra: str = "") -> Path:
    path = folder / "musicrec.toml"
    path.write_text(
        f"""
[paths]
raw = "{folder / "raw" / "listens"}"
catalog = "{folder / "raw" / "tracks.parquet"}"
artifacts = "{folder / "artifacts"}"
[generate]
users = 150
tracks = 200
events = 15000
[train]
models = ["popularity", "als"]
[predict]
n = 10
[evaluate]
k = [5, 10]
{extra}
"""
    )
    return path


def _invoke(config: Path, *args: str) -> object:
    return runner.invoke(app, ["--config", str(config), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with config and artifacts up to 04_train (no 05_predict yet)."""
    folder = tmp_path_factory.mktemp("pipeline")
    config = _write_config(folder)
    assert _invoke(config, "generate", "--out", str(folder / "raw")).exit_code == 0
    for stage in ("preprocess", "split", "features", "train"):
        result = _invoke(config, stage)
        assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def work(pipeline: Path, tmp_path: Path) -> Path:
    """A private copy of the pipeline folder, so tests can rerun predict freely."""
    shutil.copytree(pipeline, tmp_path / "p")
    _write_config(tmp_path / "p")
    return tmp_path / "p"


def _predictions(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / "artifacts" / "05_predict" / "predictions.parquet")


def test_schema_generated_at_and_models(work: Path) -> None:
    result = _invoke(work / "musicrec.toml", "predict")
    assert result.exit_code == 0, result.output
    recs = _predictions(work)
    assert list(recs.schema.items()) == [
        ("user_id", pl.String()),
        ("user_idx", pl.UInt32()),
        ("rank", pl.UInt16()),
        ("track_id", pl.String()),
        ("track_idx", pl.UInt32()),
        ("track_group_id", pl.String()),
        ("score", pl.Float32()),
        ("model", pl.String()),
        ("generated_at", pl.Datetime("us", "UTC")),
    ]
    assert recs.schema == pl.Schema(PREDICTIONS)
    assert recs["generated_at"].n_unique() == 1
    manifest = json.loads((work / "artifacts" / "05_predict" / "manifest.json").read_text())
    assert recs["generated_at"][0].isoformat() == manifest["generated_at"]
    assert sorted(recs["model"].unique()) == ["als", "als+rerank", "popularity"]
    users = pl.read_parquet(work / "artifacts" / "01_preprocess" / "users.parquet")
    joined = recs.join(users, on="user_idx", suffix="_vocab")
    assert (joined["user_id"] == joined["user_id_vocab"]).all()
    per_user = recs.group_by("model", "user_idx").agg(pl.len(), pl.col("rank").max().alias("top"))
    assert (per_user["top"] == per_user["len"]).all()
    assert per_user["len"].max() == 10
    train = pl.read_parquet(work / "artifacts" / "02_split" / "train.parquet")
    assert recs.join(train, on=["user_idx", "track_idx"], how="semi").height == 0


def test_rerank_caps_respected(work: Path) -> None:
    assert _invoke(work / "musicrec.toml", "predict").exit_code == 0
    items = pl.read_parquet(work / "artifacts" / "01_preprocess" / "items.parquet")
    reranked = _predictions(work).filter(pl.col("model") == "als+rerank")
    joined = reranked.join(items.select("track_idx", "artist_id"), on="track_idx")
    assert joined.group_by("user_idx", "artist_id").len()["len"].max() <= 2
    assert joined.group_by("user_idx", "track_group_id").len()["len"].max() == 1
    similar = pl.read_parquet(work / "artifacts" / "05_predict" / "similar_tracks.parquet")
    assert similar.height == items.height * 20
    assert (similar["track_idx"] != similar["similar_track_idx"]).all()


def test_block_size_does_not_change_results(work: Path) -> None:
    config = work / "musicrec.toml"
    similar_path = work / "artifacts" / "05_predict" / "similar_tracks.parquet"
    assert _invoke(config, "predict").exit_code == 0
    big = _predictions(work).drop("generated_at")
    big_similar = pl.read_parquet(similar_path)
    # small blocks: after the first, each block's first fetch depth is learnt from the last
    assert _invoke(config, "--set", "predict.block_size=7", "predict").exit_code == 0
    small = _predictions(work).drop("generated_at")
    small_similar = pl.read_parquet(similar_path)
    # same rows in the same order; scores may differ in the last bit (BLAS blocks by batch size)
    assert big.drop("score").equals(small.drop("score"))
    assert_series_equal(big["score"], small["score"], rel_tol=1e-5, abs_tol=1e-6)
    assert big_similar.drop("similarity").equals(small_similar.drop("similarity"))


@pytest.mark.parametrize("kind", ["txt", "csv", "parquet"])
def test_users_file_filters_and_reports_unknown(work: Path, kind: str) -> None:
    users = pl.read_parquet(work / "artifacts" / "01_preprocess" / "users.parquet")
    wanted = sorted(users["user_id"].to_list())[3:5]
    ids = [wanted[1], "nobody", wanted[0], wanted[1]]
    path = work / f"users.{kind}"
    if kind == "txt":
        path.write_text("user_id\n" + "\n".join(ids) + "\n\n")
    elif kind == "csv":
        pl.DataFrame({"user_id": ids, "x": [1, 2, 3, 4]}).write_csv(path)
    else:
        pl.DataFrame({"user_id": ids}).write_parquet(path)
    result = _invoke(work / "musicrec.toml", "predict", "--users", str(path))
    assert result.exit_code == 0, result.output
    assert sorted(_predictions(work)["user_id"].unique()) == wanted
    manifest = json.loads((work / "artifacts" / "05_predict" / "manifest.json").read_text())
    assert manifest["summary"]["n_unknown_users"] == 1
    assert manifest["summary"]["unknown_users_sample"] == ["nobody"]


def test_users_csv_without_user_id_column_fails(work: Path) -> None:
    path = work / "users.csv"
    pl.DataFrame({"uid": ["a"]}).write_csv(path)
    result = _invoke(work / "musicrec.toml", "predict", "--users", str(path))
    assert result.exit_code == 1
    assert "no 'user_id' column" in result.output


def test_only_unknown_users_fails(work: Path) -> None:
    path = work / "users.txt"
    path.write_text("nobody\nnoone\n")
    result = _invoke(work / "musicrec.toml", "predict", "--users", str(path))
    assert result.exit_code == 1
    assert "none of its 2 user ids" in result.output


def test_missing_model_fails_and_keeps_old_predictions(work: Path) -> None:
    config = work / "musicrec.toml"
    assert _invoke(config, "predict").exit_code == 0
    before = (work / "artifacts" / "05_predict" / "predictions.parquet").read_bytes()
    (work / "artifacts" / "04_train" / "manifest.json").unlink()
    result = _invoke(config, "predict")
    assert result.exit_code == 1
    assert "run `musicrec train` first" in result.output
    assert (work / "artifacts" / "05_predict" / "predictions.parquet").read_bytes() == before


@pytest.mark.slow  # a real predict process, killed (tests/test_faults.py: the in-process faults)
def test_sigkill_mid_run_keeps_previous_predictions(work: Path) -> None:
    config = work / "musicrec.toml"
    assert _invoke(config, "predict").exit_code == 0
    final = work / "artifacts" / "05_predict"
    before = {p.name: p.read_bytes() for p in final.iterdir()}
    partial = work / "artifacts" / ".05_predict.partial" / "predictions.parquet"
    # block_size=1: hundreds of blocks, so the run is still writing when the file appears
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "musicrec_cli",
            "--config",
            str(config),
            "--set",
            "predict.block_size=1",
            "predict",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"OPENBLAS_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 60
    while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    still_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert still_running, "predict finished before it could be killed"
    assert {p.name: p.read_bytes() for p in final.iterdir()} == before
    assert _invoke(config, "predict").exit_code == 0
    assert not partial.parent.exists()


def test_hnsw_search_recalls_exact_lists(work: Path) -> None:
    config = work / "musicrec.toml"
    assert _invoke(config, "predict").exit_code == 0
    exact = _predictions(work).filter(pl.col("model") == "als")
    result = _invoke(config, "--set", "predict.search=hnsw", "predict")
    assert result.exit_code == 0, result.output
    approx = _predictions(work)
    assert sorted(approx["model"].unique()) == ["als", "als+rerank", "popularity"]
    approx = approx.filter(pl.col("model") == "als")
    hits = exact.join(approx, on=["user_idx", "track_idx"], how="semi").height
    assert hits / exact.height >= 0.95  # 200 tracks: HNSW with ef 128 is nearly exact
    train = pl.read_parquet(work / "artifacts" / "02_split" / "train.parquet")
    assert approx.join(train, on=["user_idx", "track_idx"], how="semi").height == 0
    similar = pl.read_parquet(work / "artifacts" / "05_predict" / "similar_tracks.parquet")
    assert (similar["track_idx"] != similar["similar_track_idx"]).all()


def test_rerank_with_audio_features(work: Path) -> None:
    result = _invoke(work / "musicrec.toml", "--set", "predict.mmr_features=audio", "predict")
    assert result.exit_code == 0, result.output
    reranked = _predictions(work).filter(pl.col("model") == "als+rerank")
    assert reranked.group_by("user_idx").len()["len"].max() == 10


def test_rerank_model_without_factors_needs_audio(work: Path) -> None:
    config = work / "musicrec.toml"
    result = _invoke(config, "--set", 'predict.rerank_models=["popularity"]', "predict")
    assert result.exit_code == 1
    assert "model 'popularity' has no item factors" in result.output
    result = _invoke(
        config,
        "--set", 'predict.rerank_models=["popularity"]',
        "--set", "predict.mmr_features=audio",
        "predict",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "popularity+rerank" in set(_predictions(work)["model"])


def _song_duplicates_and_heard(work: Path) -> tuple[int, int, int]:
    """(groups with several tracks, duplicate (user, model, group) rows, heard-song rows)."""
    recs = _predictions(work)
    items = pl.read_parquet(work / "artifacts" / "01_preprocess" / "items.parquet")
    groups = items.group_by("track_group_id").len().filter(pl.col("len") > 1).height
    dupes = recs.height - recs.unique(["user_id", "model", "track_group_id"]).height
    train = pl.read_parquet(work / "artifacts" / "02_split" / "train.parquet").join(
        items.select("track_idx", "track_group_id"), on="track_idx"
    )
    heard = recs.join(train, on=["user_idx", "track_group_id"], how="semi").height
    return groups, dupes, heard


def test_every_list_has_one_version_per_song_and_none_heard_19(work: Path) -> None:
    config = work / "musicrec.toml"
    before = _invoke(
        config,
        "--set",
        "predict.one_per_group=false",
        "--set",
        "predict.allow_heard_songs=true",
        "predict",
    )
    assert before.exit_code == 0, before.output
    groups, dupes, heard = _song_duplicates_and_heard(work)
    # the data has versions that used to repeat
    assert groups > 5
    assert dupes > 0
    assert heard > 0
    assert _invoke(config, "predict").exit_code == 0
    _, dupes, heard = _song_duplicates_and_heard(work)
    assert (dupes, heard) == (0, 0)
    recs = _predictions(work)
    assert recs.group_by("user_id", "model").len()["len"].min() == 10  # lists are still full
