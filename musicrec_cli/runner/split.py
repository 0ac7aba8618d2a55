"""Run the split stage: 01_preprocess plays -> 02_split."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, scan, stage_dir
from musicrec_cli.config import Config, table_dict
from musicrec_cli.runner import Measure, upstream_inputs
from stages import split
from stages.interactions import build_matrix
from stages.schema import (
    PLAY_COUNT,
    PLAYED_AT,
    PLAYS,
    TRACK_IDX,
    USER_IDX,
    SchemaError,
    check_schema,
)


def run_split(cfg: Config) -> str:
    """Temporal split of 01_preprocess plays into 02_split train/test."""
    measure, root = Measure(), Path(cfg.paths.artifacts)
    inputs = upstream_inputs(root, "preprocess")
    shape = require_stage(root, "preprocess")["summary"]
    plays = scan(root, "preprocess", art.PLAYS)
    check_schema(plays.collect_schema(), PLAYS, source=str(stage_dir(root, "preprocess")))
    bounds = plays.select(pl.col(PLAYED_AT).min().alias("lo"), pl.col(PLAYED_AT).max().alias("hi"))
    lo, hi = bounds.collect().row(0)
    cutoff = split.temporal_cutoff((lo, hi), test_fraction=cfg.split.test_fraction)
    parts = split.split_by_time(plays, cutoff=cutoff)
    n_users, n_tracks = shape["n_users"], shape["n_tracks"]
    with art.open_stage(root, "split") as out:
        n_train = out.sink_parquet(parts.train, art.TRAIN)
        n_test = out.sink_parquet(parts.test, art.TEST)
        if n_test == 0:
            msg = (
                f"{stage_dir(root, 'split')}: the test set is empty: no user discovered a track "
                f"known in train after the cut-off {cutoff:%Y-%m-%d %H:%M}; "
                f"raise [split].test_fraction ({cfg.split.test_fraction})."
            )
            raise SchemaError(msg)
        for name, matrix_name in ((art.TRAIN, art.TRAIN_MATRIX), (art.TEST, art.TEST_MATRIX)):
            frame = pl.read_parquet(out.path(name), columns=[USER_IDX, TRACK_IDX, PLAY_COUNT])
            out.write_matrix(
                build_matrix(frame, value=PLAY_COUNT, n_users=n_users, n_tracks=n_tracks),
                matrix_name,
            )
        folder = art.commit_stage(
            out,
            {
                "config": table_dict(cfg.split),
                "inputs": inputs,
                "summary": {
                    "cutoff": cutoff.isoformat(),
                    "n_train": n_train,
                    "n_test": n_test,
                    "n_users": n_users,
                    "n_tracks": n_tracks,
                },
                **measure.record(),
            },
        )
    return f"cut-off {cutoff:%Y-%m-%d}: {n_train:,} train pairs, {n_test:,} test pairs -> {folder}"
