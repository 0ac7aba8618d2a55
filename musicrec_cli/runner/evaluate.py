"""Run the evaluate stage: 05_predict + 02_split + 01_preprocess items -> 06_evaluate."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, scan, stage_dir
from musicrec_cli.config import Config, ConfigError, table_dict
from musicrec_cli.runner import Measure, upstream_inputs
from stages.evaluate import beyond as evaluate
from stages.evaluate import coldstart, results
from stages.evaluate.counts import TrainCounts, count_sorted_pairs
from stages.evaluate.results import EvaluateSettings
from stages.interactions import build_matrix, count_users
from stages.schema import (
    ARTIST_ID,
    AUDIO_FEATURES,
    MODEL,
    PREDICTIONS,
    RANK,
    TRACK_IDX,
    USER_IDX,
    WEIGHT,
    check_schema,
)

log = logging.getLogger(__name__)


def _check_inputs(root: Path, recs: pl.LazyFrame, test: pl.LazyFrame) -> None:
    need = {k: PREDICTIONS[k] for k in (MODEL, USER_IDX, RANK, TRACK_IDX)}
    check_schema(recs.collect_schema(), need, source=str(stage_dir(root, "predict")))
    need = {k: PREDICTIONS[k] for k in (USER_IDX, TRACK_IDX)}
    check_schema(test.collect_schema(), need, source=str(stage_dir(root, "split") / art.TEST))


def cold_start(root: Path, test: pl.LazyFrame, *, ks: tuple[int, ...], seed: int) -> dict[str, Any]:
    """metrics.json `cold_start`: held-out users scored from 0-10 of their known tracks.

    Reads 03_features (the known tracks' confidence weights, what ALS folds in) and 04_train.
    """
    from musicrec_cli.runner.train import load_models  # noqa: PLC0415 (only for held-out users)

    shape = require_stage(root, "split")["summary"]
    known = pl.read_parquet(
        stage_dir(root, "features") / art.FEATURES_TRAIN, columns=[USER_IDX, TRACK_IDX, WEIGHT]
    )
    history = build_matrix(
        known, value=WEIGHT, n_users=shape["n_users"], n_tracks=shape["n_tracks"]
    )
    users = test.select(USER_IDX).unique().sort(USER_IDX).collect()[USER_IDX].to_numpy()
    scorers = coldstart.history_scorers(load_models(root))
    runs = coldstart.known_track_runs(
        history, users.astype(np.int64), test, scorers, ks=ks, seed=seed
    )
    by_known: dict[str, dict[str, Any]] = {}
    for row in runs.to_dicts():
        n, model = row.pop(coldstart.KNOWN), row.pop(MODEL)
        by_known.setdefault(str(n), {})[model] = row
    n_users = int(runs["n_users"].max() or 0) if runs.height else 0  # type: ignore[arg-type]
    return {"counts": list(coldstart.KNOWN_COUNTS), "n_users": n_users, "by_known": by_known}


def load_train_counts(root: Path) -> TrainCounts | None:
    """02_split train's counts in one NumPy pass, or None when it is not in (user, track) order.

    Reads the two index columns (2 GB at 800M events, freed on return).
    """
    pairs = pl.read_parquet(stage_dir(root, "split") / art.TRAIN, columns=[USER_IDX, TRACK_IDX])
    if any(pairs[c].dtype != pl.UInt32 or pairs[c].null_count() for c in pairs.columns):
        return None
    return count_sorted_pairs(pairs[USER_IDX].to_numpy(), pairs[TRACK_IDX].to_numpy())


def load_tracks(root: Path, train: pl.LazyFrame, counts: TrainCounts | None = None) -> pl.LazyFrame:
    """The track table of `beyond.track_table` from 01_preprocess items and train.

    `counts` (`load_train_counts`) spares the group-bys over train.
    """
    items = scan(root, "preprocess", art.ITEMS)
    schema = items.collect_schema()
    n_train_users = count_users(train).collect().item() if counts is None else counts.n_users
    return evaluate.track_table(
        items,
        train,
        artist=ARTIST_ID if ARTIST_ID in schema else None,
        audio=tuple(c for c in AUDIO_FEATURES if c in schema),
        n_train_users=max(n_train_users, 1),
        listeners=None if counts is None else counts.listeners.lazy(),
    )


def _check_list_length(e: EvaluateSettings, predict_manifest: dict[str, Any]) -> None:
    """A cut-off above the predicted list length would be computed on shorter lists: refuse."""
    n = predict_manifest.get("config", {}).get("n")
    if isinstance(n, int) and max(e.k) > n:
        msg = (
            f"[evaluate].k = {list(e.k)}: the largest cut-off is above the {n} tracks per list "
            f"in 05_predict ([predict].n = {n}); lower evaluate.k, or raise predict.n and rerun "
            "`musicrec predict`."
        )
        raise ConfigError(msg)


def _coverage(recs: pl.LazyFrame, test: pl.LazyFrame) -> tuple[int, int]:
    """(test users with predictions, test users); warns loudly when some have none."""
    users = test.select(pl.col(USER_IDX).unique())
    n_test = users.select(pl.len()).collect().item()
    n_covered = (
        users.join(recs.select(pl.col(USER_IDX).unique()), on=USER_IDX, how="semi")
        .select(pl.len())
        .collect()
        .item()
    )
    if n_covered < n_test:
        log.warning(
            "the predictions cover only %d of %d test users (%.1f%%); the others count as "
            "misses. Run `musicrec predict` for every user.",
            n_covered,
            n_test,
            100 * n_covered / max(n_test, 1),
        )
    return int(n_covered), int(n_test)


def run_evaluate(cfg: Config) -> tuple[str, pl.DataFrame, dict[str, Any]]:
    """Metrics of 05_predict against 02_split test; writes 06_evaluate.

    Returns:
        The summary line, the per-model summary frame and the content of metrics.json.
    """
    measure, e, root = Measure(), cfg.evaluate, Path(cfg.paths.artifacts)
    inputs = upstream_inputs(root, "preprocess", "split", "predict")
    split_summary = require_stage(root, "split")["summary"]
    n_tracks = split_summary["n_tracks"]
    _check_list_length(e, require_stage(root, "predict"))
    held_out = split_summary.get("strategy") == "held-out-users"
    if held_out:  # the cold-start runs score the trained models on the held-out users
        inputs |= upstream_inputs(root, "features", "train")
    recs, test = scan(root, "predict", art.PREDICTIONS), scan(root, "split", art.TEST)
    _check_inputs(root, recs, test)
    covered = _coverage(recs, test)
    train_counts = load_train_counts(root)
    tracks = load_tracks(root, scan(root, "split", art.TRAIN), train_counts).collect()
    timings: dict[str, float] = {}
    replay_path = stage_dir(root, "split") / art.TEST_REPLAY
    per_user, summary, content = results.compute(
        recs,
        test,
        tracks,
        e=e,
        n_tracks=n_tracks,
        train=scan(root, "split", art.TRAIN),
        replay=scan(root, "split", art.TEST_REPLAY) if replay_path.is_file() else None,
        train_counts=train_counts,
        timings=timings,
        clock=time.perf_counter,
    )
    if content["baseline"] is None:
        log.warning(
            "[evaluate].baseline %r is not one of the models (%s): no lift, tests vs best only",
            e.baseline,
            ", ".join(summary[MODEL]),
        )
    tests = content["significance"]
    n_tests = sum(len(m) for role in ("vs_baseline", "vs_best") for m in tests[role].values())
    log.info(
        "significance: %d paired comparisons in %.1f s", n_tests, timings["significance_seconds"]
    )
    content["test_view"] = split_summary.get("test_view", "discovery")
    if held_out:
        start = time.perf_counter()
        content["cold_start"] = cold_start(root, test, ks=tuple(sorted(set(e.k))), seed=e.seed)
        timings["cold_start_seconds"] = round(time.perf_counter() - start, 3)
    with art.open_stage(root, "evaluate") as out:
        out.write_parquet(per_user, art.PER_USER_METRICS)
        out.write_json(content, art.METRICS_JSON)
        folder = art.commit_stage(
            out,
            {
                "config": table_dict(e),
                "inputs": inputs,
                "summary": {
                    "n_test_users_with_predictions": covered[0],
                    "n_test_users": covered[1],
                    "n_users_evaluated": content["n_users_evaluated"],
                    "n_users_without_test": content["n_users_without_test"],
                    "models": list(content["models"]),
                    **timings,
                },
                **measure.record(),
            },
        )
    text = (
        f"{content['n_users_evaluated']:,} test users ({content['n_users_without_test']:,} "
        f"without test tracks left out; predictions cover {covered[0]:,} of {covered[1]:,}), "
        f"{summary.height} model(s) -> {folder}"
    )
    return text, summary, content
