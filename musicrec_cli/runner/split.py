"""Run the split stage: 01_preprocess plays -> 02_split train, test (discovery) and test_replay.

plays.parquet is sorted by user, so the users are cut into contiguous ranges of about
[split].plays_per_part plays and each range is split on its own (Parquet statistics let the scan
skip the other row groups): memory is bounded by the part, not by all pairs. Only "track known
in train" needs every user; it filters the (smaller) test candidates in a second pass.
On the Spark engine the same per-user function runs on hash groups of users (stages.spark.split).
"""

from __future__ import annotations

import datetime as dt
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, stage_dir
from musicrec_cli.config import Config, engine_of, table_dict
from musicrec_cli.console import progress
from musicrec_cli.runner import Measure, spark_groups, upstream_inputs
from musicrec_cli.runner.split_train import TrainSink
from stages import split
from stages.interactions import build_matrix
from stages.schema import (
    INTERACTIONS,
    PLAY_COUNT,
    PLAYED_AT,
    PLAYS,
    TRACK_IDX,
    USER_IDX,
    SchemaError,
    check_schema,
)

DISCOVERY, REPLAY = "discovery", "replay"  # what test.parquet holds (summary "test_view")


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


def _split_polars(
    out: art.StageWriter,
    plays: pl.LazyFrame,
    shape: tuple[int, int, int],
    ranges: list[tuple[int, int]],
    params: split.SplitParams,
    cutoff: dt.datetime | None,
    held_out: pl.DataFrame | None,
) -> tuple[int, int, int]:
    """Split user range by user range, then keep test tracks known in train; row counts.

    `shape`: users, tracks and pairs of 01_preprocess. Writes train, test, test_replay and
    the train matrix.

    Each range's pairs of both periods are aggregated once, over the sorted runs of
    plays.parquet; its train rows go straight into train.parquet, its test-period rows (with
    a flag for the discovery ones) into a part file, filtered once every range's train tracks
    are known.
    """
    parts = out.path("replay_parts")
    parts.mkdir()
    sink = TrainSink(out.path(art.TRAIN), n_users=shape[0], n_tracks=shape[1], capacity=shape[2])

    def write_range(train: pl.DataFrame, later: pl.DataFrame, part: Path) -> None:
        sink.write(train)
        later.write_parquet(part, compression="lz4")  # a scratch file read once: not zstd

    # a range is written on a second thread while the next one is aggregated (Polars and
    # pyarrow release the GIL): at most two ranges' pairs are alive. An error there is raised
    # here by result(); on any error the with block joins the thread.
    with (
        out.writing(art.TRAIN),
        progress("split", len(ranges)) as step,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="musicrec-split") as writer,
    ):
        written: Future[None] | None = None
        for i, (first, last) in enumerate(ranges):
            in_range = plays.filter(pl.col(USER_IDX).is_between(first, last))
            pairs = _range_pairs(in_range, params, cutoff, held_out)
            train, later = pl.collect_all(split.split_periods(pairs.lazy()), engine="streaming")
            del pairs
            if written is not None:
                written.result()
                step()
            written = writer.submit(write_range, train, later, parts / f"{i:05d}.parquet")
            del train, later
        if written is not None:
            written.result()
            step()
        sink.close()
    out.add_file(art.TRAIN, rows=sink.rows)
    out.write_matrix(sink.matrix(), art.TRAIN_MATRIX)
    known = pl.DataFrame(
        {TRACK_IDX: np.flatnonzero(sink.known_tracks)}, schema={TRACK_IDX: pl.UInt32}
    )
    candidates = split.keep_known_tracks(
        pl.scan_parquet(sorted(parts.glob("*.parquet"))), train=known.lazy()
    )
    test, replay = split.test_views(candidates)
    n_test, n_replay = out.sink_parquet(test, art.TEST), out.sink_parquet(replay, art.TEST_REPLAY)
    shutil.rmtree(parts)
    return sink.rows, n_test, n_replay


def _range_pairs(
    plays: pl.LazyFrame,
    params: split.SplitParams,
    cutoff: dt.datetime | None,
    held_out: pl.DataFrame | None,
) -> pl.DataFrame:
    """split.period_pairs of one range, over sorted runs (hashed if plays were not sorted)."""
    held = None if held_out is None else held_out.lazy()
    pairs = split.period_pairs(
        plays, params=params, cutoff=cutoff, held_out=held, sorted_plays=True
    ).collect(engine="streaming")
    if split.runs_were_sorted(pairs):
        return pairs
    return split.period_pairs(plays, params=params, cutoff=cutoff, held_out=held).collect(
        engine="streaming"
    )


def _split_spark(
    out: art.StageWriter,
    cfg: Config,
    source: Path,
    params: split.SplitParams,
    cutoff: dt.datetime | None,
    held_out: pl.DataFrame | None,
) -> tuple[int, int, int]:
    """The same split on Spark (stages.spark.split), written as the same three files."""
    from musicrec_cli.spark import spark_session, write_artifact
    from stages.spark import split as spark_split

    n_plays = pl.scan_parquet(source).select(pl.len()).collect().item()
    with spark_session(cfg.spark, workdir=out.partial) as spark:
        parts = spark_split.split_plays(
            spark.read.parquet(str(source)),
            params=params,
            cutoff=cutoff,
            held_out=held_out,
            n_groups=spark_groups(n_plays),
        )
        return (
            write_artifact(out, parts.train, art.TRAIN, INTERACTIONS),
            write_artifact(out, parts.test, art.TEST, INTERACTIONS),
            write_artifact(out, parts.replay, art.TEST_REPLAY, INTERACTIONS),
        )


def run_split(cfg: Config) -> str:
    """Split 01_preprocess plays into 02_split train/test/test_replay by [split].strategy."""
    measure, root = Measure(), Path(cfg.paths.artifacts)
    inputs = upstream_inputs(root, "preprocess")
    shape = require_stage(root, "preprocess")["summary"]
    source = stage_dir(root, "preprocess") / art.PLAYS
    plays = pl.scan_parquet(source)
    users = pl.read_parquet(
        stage_dir(root, "preprocess") / art.USERS, columns=[USER_IDX, "n_plays"]
    )
    ranges = user_ranges(users, plays_per_part=cfg.split.plays_per_part)
    check_schema(plays.collect_schema(), PLAYS, source=str(stage_dir(root, "preprocess")))
    bounds = plays.select(pl.col(PLAYED_AT).min().alias("lo"), pl.col(PLAYED_AT).max().alias("hi"))
    lo, hi = bounds.collect(engine="streaming").row(0)
    n_users, n_tracks = shape["n_users"], shape["n_tracks"]
    n_pairs = shape.get("n_pairs", 0)
    strategy = split.resolve_strategy(
        cfg.split.strategy, has_timestamps=lo is not None, source=str(source), n_users=n_users
    )
    # one person's log: no track new to them is known in train, so discovery cannot be
    # measured; their test set is what they played again in the test period (the replay view)
    view = REPLAY if n_users == 1 else DISCOVERY
    params = split.SplitParams.of(cfg.split, strategy)
    cutoff = (
        split.temporal_cutoff((lo, hi), test_fraction=params.test_fraction)
        if strategy == "temporal"
        else None
    )
    held_out = (
        split.choose_held_out_users(
            users.lazy(), share=params.held_out_share, seed=params.seed
        ).collect()
        if strategy == "held-out-users"
        else None
    )
    engine = engine_of(cfg, "split")
    with art.open_stage(root, "split") as out:
        if engine == "spark":
            n_train, n_test, n_replay = _split_spark(out, cfg, source, params, cutoff, held_out)
            out.write_matrix(_matrix(out, art.TRAIN, n_users, n_tracks), art.TRAIN_MATRIX)
        else:
            n_train, n_test, n_replay = _split_polars(
                out, plays, (n_users, n_tracks, n_pairs), ranges, params, cutoff, held_out
            )
        if view == REPLAY:
            n_test = out.sink_parquet(pl.scan_parquet(out.path(art.TEST_REPLAY)), art.TEST)
        if n_test == 0:
            raise SchemaError(_empty_test_message(root, cfg, strategy, cutoff, n_users=n_users))
        out.write_matrix(_matrix(out, art.TEST, n_users, n_tracks), art.TEST_MATRIX)
        folder = art.commit_stage(
            out,
            {
                "config": table_dict(cfg.split),
                "engine": engine,
                "inputs": inputs,
                "summary": {
                    "strategy": strategy,
                    "test_view": view,
                    "cutoff": None if cutoff is None else cutoff.isoformat(),
                    "n_train": n_train,
                    "n_test": n_test,
                    "n_test_replay": n_replay,
                    "n_held_out_users": None if held_out is None else held_out.height,
                    "n_users": n_users,
                    "n_tracks": n_tracks,
                    "n_parts": len(ranges),
                },
                **measure.record(),
            },
        )
    where = f"cut-off {cutoff:%Y-%m-%d}" if cutoff is not None else strategy
    if view == REPLAY:
        return (
            f"{where}: {n_train:,} train pairs, {n_test:,} test pairs: one user's log, so the "
            f"test set is the tracks played again after the cut (replay view) -> {folder}"
        )
    return (
        f"{where}: {n_train:,} train pairs, {n_test:,} test pairs "
        f"({n_replay:,} with replays) -> {folder}"
    )


def _matrix(out: art.StageWriter, name: str, n_users: int, n_tracks: int) -> sp.csr_matrix:
    # a scan: build_matrix fills the CSR batch by batch from the sorted pairs
    pairs = pl.scan_parquet(out.path(name))
    return build_matrix(pairs, value=PLAY_COUNT, n_users=n_users, n_tracks=n_tracks)


def _empty_test_message(
    root: Path, cfg: Config, strategy: str, cutoff: dt.datetime | None, *, n_users: int
) -> str:
    where = f"{stage_dir(root, 'split')}: the test set is empty ({strategy} split)"
    if n_users == 1:  # one person's export: a track new to them is unknown to every model
        return (
            f"{where}: the plays are one user's, so the test set is the tracks they played "
            "again after the cut, and there are none; a temporal strategy "
            "(--strategy user-temporal) with a larger [split].test_fraction "
            f"({cfg.split.test_fraction}) finds re-listens, and discovery needs more users "
            "(several exports in one folder, one sub-folder each)."
        )
    if cutoff is not None:
        return (
            f"{where}: no user discovered a track known in train after the cut-off "
            f"{cutoff:%Y-%m-%d %H:%M}; raise [split].test_fraction ({cfg.split.test_fraction})."
        )
    return (
        f"{where}: no user has [split].min_user_tracks ({cfg.split.min_user_tracks}) tracks "
        f"with a held-out track that another user played in train; lower min_user_tracks or "
        f"raise [split].test_fraction ({cfg.split.test_fraction})."
    )
