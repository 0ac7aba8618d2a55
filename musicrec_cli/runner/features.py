"""Run the features stage: 02_split -> 03_features."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, scan, stage_dir
from musicrec_cli.config import Config, table_dict
from musicrec_cli.runner import Measure, upstream_inputs
from stages import features
from stages.interactions import count_users
from stages.schema import INTERACTIONS, LAST_TS, WEIGHT, check_schema


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
    with art.open_stage(root, "features") as out:
        n_train = out.sink_parquet(weighted, art.FEATURES_TRAIN)
        out.sink_parquet(
            test.with_columns(pl.lit(1.0, pl.Float32).alias(WEIGHT)), art.FEATURES_TEST
        )
        out.sink_parquet(
            features.item_features(train, items, n_users=n_train_users), art.ITEM_FEATURES
        )
        n_u = out.sink_parquet(features.user_features(train, cutoff=cutoff), art.USER_FEATURES)
        folder = art.commit_stage(
            out,
            {
                "config": table_dict(f),
                "inputs": inputs,
                "summary": {"n_train": n_train, "n_users_with_history": n_u},
                **measure.record(),
            },
        )
    return f"{n_train:,} weighted interactions, {n_u:,} user profiles -> {folder}"
