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
from musicrec_cli.config import Config, ConfigError, EvaluateConfig, table_dict
from musicrec_cli.runner import Measure, upstream_inputs
from stages.evaluate import beyond as evaluate
from stages.evaluate import coldstart, compare, variants, views
from stages.evaluate import ranking as metrics
from stages.interactions import build_matrix, count_users
from stages.schema import (
    ARTIST_ID,
    AUDIO_FEATURES,
    MODEL,
    POPULARITY,
    PREDICTIONS,
    RANK,
    TRACK_IDX,
    USER_IDX,
    WEIGHT,
    check_schema,
)

log = logging.getLogger(__name__)
LOWER_IS_BETTER = frozenset({POPULARITY})
SIGNIFICANCE_METHOD = (
    "per metric, every model vs the baseline and vs the best model on the same users: "
    "two-sided Wilcoxon signed-rank p-value, Holm-adjusted over the comparisons of the metric "
    "(p_holm < alpha = significant), and a seeded paired-bootstrap 95% interval of the mean "
    "difference (model - reference); docs/evaluation.md"
)


def _check_inputs(root: Path, recs: pl.LazyFrame, test: pl.LazyFrame) -> None:
    need = {k: PREDICTIONS[k] for k in (MODEL, USER_IDX, RANK, TRACK_IDX)}
    check_schema(recs.collect_schema(), need, source=str(stage_dir(root, "predict")))
    need = {k: PREDICTIONS[k] for k in (USER_IDX, TRACK_IDX)}
    check_schema(test.collect_schema(), need, source=str(stage_dir(root, "split") / art.TEST))


def compute(
    recs: pl.LazyFrame,
    test: pl.LazyFrame,
    tracks: pl.DataFrame,
    *,
    e: EvaluateConfig,
    n_tracks: int,
    train: pl.LazyFrame | None = None,
    replay: pl.LazyFrame | None = None,
    timings: dict[str, float] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Per-user metrics, the per-model summary and metrics.json's content (no file I/O).

    With `train`, also the activity segments and the new-artist view; with `replay` (the test
    period with re-listens), the replay view. `timings`, when given, receives the seconds the
    significance tests took.
    """
    ks = tuple(sorted(set(e.k)))
    users = test.select(USER_IDX).unique()
    beyond = evaluate.per_user_beyond(recs, tracks, users, ks=ks)
    per_user = (
        metrics.per_user_metrics(recs, test, ks=ks)
        .join(beyond.lazy(), on=(MODEL, USER_IDX), how="left")
        .with_columns(pl.col(evaluate.N_RECOMMENDED).fill_null(0))
        .sort(MODEL, USER_IDX)
        .collect(engine="streaming")
    )
    extra: dict[str, Any] = {}
    if train is not None:
        segments = views.activity_segments(train, users, edges=e.segments).collect()
        per_user = per_user.join(segments, on=USER_IDX, how="left")
        extra["segments"] = _segments_json(per_user, segments, edges=e.segments)
    extra["views"] = _views_json(recs, test, tracks, train=train, replay=replay, ks=ks)
    cover = evaluate.coverage(recs, users, ks=ks, n_items=n_tracks)
    summary = evaluate.summarise(per_user.lazy(), cover).collect()
    n_evaluated = test.select(pl.col(USER_IDX).n_unique()).collect().item()
    n_without_test = (
        (recs.select(USER_IDX).unique().join(users, on=USER_IDX, how="anti").select(pl.len()))
        .collect()
        .item()
    )
    lift = evaluate.lift_over(summary, baseline=e.baseline)
    if lift is None:
        log.warning(
            "[evaluate].baseline %r is not one of the models (%s): no lift, tests vs best only",
            e.baseline,
            ", ".join(summary[MODEL]),
        )
    start = time.perf_counter()
    comparisons = compare.compare_models(
        per_user,
        metrics=[c for c in per_user.columns if "@" in c],
        baseline=e.baseline if lift is not None else None,
        lower_is_better=LOWER_IS_BETTER,
        n_samples=e.bootstrap_samples,
        seed=e.seed,
        alpha=e.alpha,
    )
    seconds = time.perf_counter() - start
    log.info("significance: %d paired comparisons in %.1f s", comparisons.height, seconds)
    if timings is not None:
        timings["significance_seconds"] = round(seconds, 3)
    content = {
        "k": list(ks),
        "n_users_evaluated": n_evaluated,
        "n_users_without_test": n_without_test,
        "n_tracks": n_tracks,
        "baseline": e.baseline if lift is not None else None,
        "models": {row.pop(MODEL): row for row in summary.to_dicts()},
        "lift_over_baseline": {}
        if lift is None
        else {row.pop(MODEL): row for row in lift.to_dicts()},
        **extra,
        **(
            {"metric_variants": variants.as_json(variants.metric_variants(recs, test, ks=ks))}
            if e.metric_variants
            else {}
        ),
        "significance": {
            "method": SIGNIFICANCE_METHOD,
            "alpha": e.alpha,
            "bootstrap_samples": e.bootstrap_samples,
            "seed": e.seed,
            **compare.as_json(comparisons),
        },
    }
    return per_user, summary, content


def _segments_json(
    per_user: pl.DataFrame, segments: pl.DataFrame, *, edges: tuple[int, ...]
) -> dict[str, Any]:
    """metrics.json `segments`: edges, labels and {model: {segment: {n_users, metric@k...}}}."""
    means = views.by_segment(per_user.drop(views.SEGMENT), segments, edges=edges)
    by_model: dict[str, dict[str, Any]] = {}
    for row in means.to_dicts():
        by_model.setdefault(row.pop(MODEL), {})[row.pop(views.SEGMENT)] = row
    return {"edges": list(edges), "labels": views.segment_labels(edges), "by_model": by_model}


def _views_json(
    recs: pl.LazyFrame,
    test: pl.LazyFrame,
    tracks: pl.DataFrame,
    *,
    train: pl.LazyFrame | None,
    replay: pl.LazyFrame | None,
    ks: tuple[int, ...],
) -> dict[str, Any]:
    """metrics.json `views`: discovery, replay and new_artists, {view: {model: {...}}}."""

    def rows(frame: pl.DataFrame) -> dict[str, Any]:
        return {row.pop(MODEL): row for row in frame.to_dicts()}

    out = {"discovery": rows(views.view_means(recs, test, ks=ks))}
    if replay is not None:
        out["replay"] = rows(views.view_means(recs, replay, ks=ks))
    if train is not None and evaluate.ARTIST in tracks.columns:
        artists = tracks.lazy()
        found = views.view_means(
            views.artist_lists(recs, artists), views.new_artists(test, train, artists), ks=ks
        ).join(
            views.artist_coverage(recs, test.select(USER_IDX), artists, ks=ks),
            on=MODEL,
            how="left",
        )
        out["new_artists"] = rows(found)
    return out


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


def load_tracks(root: Path, train: pl.LazyFrame) -> pl.LazyFrame:
    """The track table of `beyond.track_table` from 01_preprocess items and train."""
    items = scan(root, "preprocess", art.ITEMS)
    schema = items.collect_schema()
    n_train_users = count_users(train).collect().item()
    return evaluate.track_table(
        items,
        train,
        artist=ARTIST_ID if ARTIST_ID in schema else None,
        audio=tuple(c for c in AUDIO_FEATURES if c in schema),
        n_train_users=max(n_train_users, 1),
    )


def _check_list_length(e: EvaluateConfig, predict_manifest: dict[str, Any]) -> None:
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
    tracks = load_tracks(root, scan(root, "split", art.TRAIN)).collect()
    timings: dict[str, float] = {}
    replay_path = stage_dir(root, "split") / art.TEST_REPLAY
    per_user, summary, content = compute(
        recs,
        test,
        tracks,
        e=e,
        n_tracks=n_tracks,
        train=scan(root, "split", art.TRAIN),
        replay=scan(root, "split", art.TEST_REPLAY) if replay_path.is_file() else None,
        timings=timings,
    )
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
