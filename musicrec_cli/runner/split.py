"""Run the split stage: 01_preprocess plays -> 02_split.

plays.parquet is sorted by user, so the users are cut into contiguous ranges of about
[split].plays_per_part plays and each range is split on its own (Parquet statistics let the scan
skip the other row groups): memory is bounded by the part, not by all pairs. Only "track known
in train" needs every user; it filters the (smaller) test candidates in a second pass.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, stage_dir
from musicrec_cli.config import Config, table_dict
from musicrec_cli.console import progress
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


def user_ranges(users: pl.DataFrame, *, plays_per_part: int) -> list[tuple[int, int]]:
    """Contiguous [first, last] user_idx ranges holding about `plays_per_part` plays each.

    Args:
        users: One row per user: user_idx and n_plays (01_preprocess/users.parquet).
        plays_per_part: Target plays per range; a user is never split.
    """
    parts = (
        users.sort(USER_IDX)
        .with_columns((pl.col("n_plays").cum_sum() - pl.col("n_plays")) // plays_per_part)
        .group_by("n_plays", maintain_order=True)
        .agg(pl.col(USER_IDX).min().alias("first"), pl.col(USER_IDX).max().alias("last"))
    )
    return list(zip(parts["first"].to_list(), parts["last"].to_list(), strict=True))


def run_split(cfg: Config) -> str:
    """Temporal split of 01_preprocess plays into 02_split train/test."""
    measure, root = Measure(), Path(cfg.paths.artifacts)
    inputs = upstream_inputs(root, "preprocess")
    shape = require_stage(root, "preprocess")["summary"]
    plays = pl.scan_parquet(stage_dir(root, "preprocess") / art.PLAYS)
    users = pl.read_parquet(
        stage_dir(root, "preprocess") / art.USERS, columns=[USER_IDX, "n_plays"]
    )
    ranges = user_ranges(users, plays_per_part=cfg.split.plays_per_part)
    check_schema(plays.collect_schema(), PLAYS, source=str(stage_dir(root, "preprocess")))
    bounds = plays.select(pl.col(PLAYED_AT).min().alias("lo"), pl.col(PLAYED_AT).max().alias("hi"))
    lo, hi = bounds.collect(engine="streaming").row(0)
    cutoff = split.temporal_cutoff((lo, hi), test_fraction=cfg.split.test_fraction)
    n_users, n_tracks = shape["n_users"], shape["n_tracks"]
    with art.open_stage(root, "split") as out:
        train_parts, candidate_parts = out.path("train_parts"), out.path("candidate_parts")
        train_parts.mkdir()
        candidate_parts.mkdir()
        with progress("split", len(ranges)) as bar:
            for i, (first, last) in enumerate(ranges):
                in_range = plays.filter(pl.col(USER_IDX).is_between(first, last))
                part = split.split_users_by_time(in_range, cutoff=cutoff)
                part.train.sink_parquet(train_parts / f"{i:05d}.parquet")
                part.test.sink_parquet(candidate_parts / f"{i:05d}.parquet")
                bar.advance(0)
        train = pl.scan_parquet(sorted(train_parts.glob("*.parquet")))
        test = split.keep_known_tracks(
            pl.scan_parquet(sorted(candidate_parts.glob("*.parquet"))), train=train
        )
        n_train = out.sink_parquet(train, art.TRAIN)
        n_test = out.sink_parquet(test, art.TEST)
        shutil.rmtree(train_parts)
        shutil.rmtree(candidate_parts)
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
                    "n_parts": len(ranges),
                },
                **measure.record(),
            },
        )
    return f"cut-off {cutoff:%Y-%m-%d}: {n_train:,} train pairs, {n_test:,} test pairs -> {folder}"
