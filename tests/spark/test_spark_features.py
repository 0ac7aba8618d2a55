"""The features stage on Spark gives the Polars engine's files (local[2], small data)."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from musicrec_cli.app import app
from stages import features
from stages.schema import INTERACTIONS, TRACK_IDX, USER_IDX
from stages.spark import features as spark_features
from stages.spark import polars_cast, to_spark_arrow
from tests.conftest import write_config

CUTOFF = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def _train(rng: np.random.Generator, n: int = 300) -> pl.DataFrame:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    first = [start + dt.timedelta(hours=int(h)) for h in rng.integers(0, 3000, n)]
    days = rng.integers(0, 20, n)
    frame = pl.DataFrame(
        {
            USER_IDX: rng.integers(0, 25, n),
            TRACK_IDX: rng.integers(0, 30, n),  # tracks 30..34 of items are never heard
            "play_count": rng.integers(1, 40, n),
            "total_ms_played": rng.integers(10_000, 9_000_000, n),
            "first_ts": first,
            "last_ts": [f + dt.timedelta(days=int(d)) for f, d in zip(first, days, strict=True)],
            "skip_count": rng.integers(0, 3, n),
        }
    ).cast(INTERACTIONS)  # type: ignore[arg-type]
    return frame.unique([USER_IDX, TRACK_IDX], keep="first").sort(USER_IDX, TRACK_IDX)


def _collect(frame, schema) -> pl.DataFrame:
    return polars_cast(pl.from_arrow(frame.toArrow()).lazy(), schema).collect()


def test_spark_features_give_the_polars_rows(spark):
    train = _train(np.random.default_rng(5))
    items = pl.DataFrame(
        {
            TRACK_IDX: np.arange(35, dtype=np.uint32),
            "danceability": np.linspace(0, 1, 35, dtype=np.float32),
            "energy": np.linspace(1, 0, 35, dtype=np.float32),
        }
    )
    sdf = spark.createDataFrame(to_spark_arrow(train))
    n_users = train[USER_IDX].n_unique()
    got, schema = spark_features.item_features(
        sdf, spark.createDataFrame(to_spark_arrow(items)), items_schema=items.schema,
        n_users=n_users, n_groups=4,
    )  # fmt: skip
    want = features.item_features(train.lazy(), items.lazy(), n_users=n_users).collect()
    assert_frame_equal(_collect(got, schema), want)
    assert want.filter(pl.col("train_plays") == 0).height == 5  # unheard tracks kept, zeroed
    got, schema = spark_features.user_features(sdf, cutoff=CUTOFF, n_groups=4)
    want = features.user_features(train.lazy(), cutoff=CUTOFF).collect()
    assert_frame_equal(_collect(got, schema), want)
    got, schema = spark_features.confidence_weights(
        sdf, cutoff=CUTOFF, half_life_days=30.0, recency_floor=0.2
    )
    want = features.confidence_weights(
        train.lazy(), cutoff=CUTOFF, half_life_days=30.0, recency_floor=0.2
    ).collect()
    assert_frame_equal(_collect(got, schema), want)


@pytest.mark.slow
def test_spark_features_stage_writes_the_polars_files(spark, tmp_path):
    config = write_config(tmp_path)
    for args in (["generate", "--out", str(tmp_path / "raw")], ["preprocess"], ["split"],
                 ["features"]):  # fmt: skip
        result = CliRunner().invoke(app, ["--config", str(config), *args])
        assert result.exit_code == 0, result.output
    art = tmp_path / "artifacts"
    polars_dir = shutil.copytree(art / "03_features", tmp_path / "polars")
    result = CliRunner().invoke(app, ["--config", str(config), "features", "--engine", "spark"])
    assert result.exit_code == 0, result.output
    assert json.loads((art / "03_features" / "manifest.json").read_text())["engine"] == "spark"
    for name in ("features_train", "features_test", "item_features", "user_features"):
        got = pl.read_parquet(art / "03_features" / f"{name}.parquet")
        assert_frame_equal(got, pl.read_parquet(polars_dir / f"{name}.parquet"))
