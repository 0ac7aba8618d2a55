"""Run the features stage: 02_split -> 03_features, on Polars or Spark (stages.spark.features)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, scan, stage_dir
from musicrec_cli.config import Config, engine_of, table_dict
from musicrec_cli.runner import Measure, spark_groups, upstream_inputs
from stages import features
from stages.interactions import count_users
from stages.schema import INTERACTIONS, LAST_TS, WEIGHT, check_schema


def _features_spark(
    cfg: Config, out: art.StageWriter, *, cutoff: dt.datetime | None, n_users: int
) -> tuple[int, int]:
    """Weights, item and user features on Spark (the test rows stay on Polars: weight 1)."""
    from musicrec_cli.spark import spark_session, write_artifact
    from stages.spark import features as spark_features

    root, f = Path(cfg.paths.artifacts), cfg.features
    source = stage_dir(root, "split") / art.TRAIN
    items_file = stage_dir(root, "preprocess") / art.ITEMS
    groups = spark_groups(pl.scan_parquet(source).select(pl.len()).collect().item())
    with spark_session(cfg.spark, workdir=out.partial) as spark:
        train = spark.read.parquet(str(source))
        weighted, w_schema = spark_features.confidence_weights(
            train, cutoff=cutoff, half_life_days=f.recency_half_life_days,
            recency_floor=f.recency_floor,
        )  # fmt: skip
        n_train = write_artifact(out, weighted, art.FEATURES_TRAIN, w_schema)
        items, i_schema = spark_features.item_features(
            train, spark.read.parquet(str(items_file)), n_users=n_users, n_groups=groups,
            items_schema=pl.read_parquet_schema(items_file),
        )  # fmt: skip
        write_artifact(out, items, art.ITEM_FEATURES, i_schema)
        users, u_schema = spark_features.user_features(train, cutoff=cutoff, n_groups=groups)
        return n_train, write_artifact(out, users, art.USER_FEATURES, u_schema)


def run_features(cfg: Config) -> str:
    """Confidence weights and user/item features from 02_split into 03_features."""
    measure, f, root = Measure(), cfg.features, Path(cfg.paths.artifacts)
    inputs = upstream_inputs(root, "preprocess", "split")
    summary = require_stage(root, "split")["summary"]
    train, test = scan(root, "split", art.TRAIN), scan(root, "split", art.TEST)
    # the temporal split's cut-off; other strategies measure recency from the newest train play
    # (None for a play-count table without timestamps: no recency decay)
    cutoff = (
        pl.Series([summary["cutoff"]]).str.to_datetime(time_zone="UTC").item()
        if summary.get("cutoff")
        else train.select(pl.col(LAST_TS).max()).collect().item()
    )
    check_schema(train.collect_schema(), INTERACTIONS, source=str(stage_dir(root, "split")))
    weighted = features.confidence_weights(
        train,
        cutoff=cutoff,
        half_life_days=f.recency_half_life_days,
        recency_floor=f.recency_floor,
    )
    items = scan(root, "preprocess", art.ITEMS)
    n_train_users = int(count_users(train).collect().item())
    engine = engine_of(cfg, "features")
    with art.open_stage(root, "features") as out:
        out.sink_parquet(
            test.with_columns(pl.lit(1.0, pl.Float32).alias(WEIGHT)), art.FEATURES_TEST
        )
        if engine == "spark":
            n_train, n_u = _features_spark(cfg, out, cutoff=cutoff, n_users=n_train_users)
        else:
            n_train = out.sink_parquet(weighted, art.FEATURES_TRAIN)
            out.sink_parquet(
                features.item_features(train, items, n_users=n_train_users), art.ITEM_FEATURES
            )
            n_u = out.sink_parquet(features.user_features(train, cutoff=cutoff), art.USER_FEATURES)
        folder = art.commit_stage(
            out,
            {
                "config": table_dict(f),
                "engine": engine,
                "inputs": inputs,
                "summary": {"n_train": n_train, "n_users_with_history": n_u},
                **measure.record(),
            },
        )
    return f"{n_train:,} weighted interactions, {n_u:,} user profiles -> {folder}"
