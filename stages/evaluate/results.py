"""metrics.json from predictions and test: every metric, view, segment and significance test.

`compute` is what the evaluate stage calculates; musicrec_cli.runner.evaluate loads its inputs
and writes what it returns. `EvaluateSettings` are the fields of musicrec.toml's [evaluate].
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import polars as pl

from stages.evaluate import beyond as evaluate
from stages.evaluate import compare, variants, views
from stages.evaluate import ranking as metrics
from stages.evaluate.counts import TrainCounts
from stages.schema import MODEL, POPULARITY, USER_IDX

T = TypeVar("T")
LOWER_IS_BETTER = frozenset({POPULARITY})
SIGNIFICANCE_METHOD = (
    "per metric, every model vs the baseline and vs the best model on the same users: "
    "two-sided Wilcoxon signed-rank p-value, Holm-adjusted over the comparisons of the metric "
    "(p_holm < alpha = significant), and a seeded paired-bootstrap 95% interval of the mean "
    "difference (model - reference); docs/evaluation.md"
)


# recommendations scored at once by the replay and new-artist views (views.score_groups)
VIEW_ROWS = 25_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluateSettings:
    """Cut-offs of the metrics, the model the others are compared with and the tests' settings.

    k: cut-offs; baseline: the model of the lifts and tests (or "<name>+rerank"); alpha: the
    significance level; bootstrap_samples: resamples of the intervals (0 = none); seed: of the
    bootstrap; metric_variants: also each metric as other libraries define it; segments: the
    edges of the activity segments.
    """

    k: tuple[int, ...] = (5, 10, 20)
    baseline: str = "popularity"
    alpha: float = 0.05
    bootstrap_samples: int = 1000
    seed: int = 42
    metric_variants: bool = False
    segments: tuple[int, ...] = (1, 5, 20)


def compute(
    recs: pl.LazyFrame,
    test: pl.LazyFrame,
    tracks: pl.DataFrame,
    *,
    e: EvaluateSettings,
    n_tracks: int,
    train: pl.LazyFrame | None = None,
    replay: pl.LazyFrame | None = None,
    train_counts: TrainCounts | None = None,
    timings: dict[str, float] | None = None,
    clock: Callable[[], float] = lambda: 0.0,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Per-user metrics, the per-model summary and metrics.json's content.

    With `train`, also the activity segments and the new-artist view; with `replay` (the test
    period with re-listens), the replay view; `train_counts` (of `train`, when it was in
    (user, track) order) spares the segments' group-by. `timings`, when given, receives the
    seconds the significance tests and the views (on their thread) took by `clock` (the
    caller's, e.g. time.perf_counter).
    A `baseline` that is none of the models gives no lifts (metrics.json baseline is null)
    and tests against the best model only.
    """
    ks = tuple(sorted(set(e.k)))
    # the evaluated users, collected once: the steps below filter and count by them
    users = test.select(USER_IDX).unique().collect()
    per_user, extra = _per_user_frame(
        recs, test, tracks, users, e=e, ks=ks, train=train, train_counts=train_counts
    )
    with_artists = train is not None and evaluate.ARTIST in tracks.columns
    # the replay and new-artist views (Polars) need nothing computed below: scored on a second
    # thread beside the significance tests, which keep one core busy (NumPy). Started after
    # the per-user frame, the stage's memory peak (started before it, the peak at 100M events
    # went from 7.3 to 10.2 GiB). The with block joins the thread on every path, and result()
    # raises its error with its own type
    with ThreadPoolExecutor(1, thread_name_prefix="musicrec-views") as beside:
        scoring = beside.submit(
            _timed,
            clock,
            _score_views,
            recs,
            test,
            tracks,
            n_users=int(users.select(pl.col(USER_IDX).max().fill_null(0)).item()) + 1,
            train=train if with_artists else None,
            replay=replay,
            ks=ks,
            train_per_user=None if train_counts is None else train_counts.per_user,
        )
        cover = evaluate.coverage(recs, users.lazy(), ks=ks, n_items=n_tracks)
        summary = evaluate.summarise(per_user.lazy(), cover).collect()
        n_without_test = (
            recs.select(USER_IDX)
            .unique()
            .join(users.lazy(), on=USER_IDX, how="anti")
            .select(pl.len())
            .collect()
            .item()
        )
        lift = evaluate.lift_over(summary, baseline=e.baseline)
        start = clock()
        comparisons = compare.compare_models(
            per_user,
            metrics=[c for c in per_user.columns if "@" in c],
            baseline=e.baseline if lift is not None else None,
            lower_is_better=LOWER_IS_BETTER,
            n_samples=e.bootstrap_samples,
            seed=e.seed,
            alpha=e.alpha,
        )
        if timings is not None:
            timings["significance_seconds"] = round(clock() - start, 3)
        scored, views_seconds = scoring.result()
        if timings is not None:
            timings["views_seconds"] = views_seconds
        extra["views"] = _views_json(per_user, scored, tracks, ks=ks)
    content = {
        "k": list(ks),
        "n_users_evaluated": users.height,
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


def _per_user_frame(
    recs: pl.LazyFrame,
    test: pl.LazyFrame,
    tracks: pl.DataFrame,
    users: pl.DataFrame,
    *,
    e: EvaluateSettings,
    ks: tuple[int, ...],
    train: pl.LazyFrame | None,
    train_counts: TrainCounts | None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """per_user_metrics.parquet's frame and (with `train`) metrics.json `segments`."""
    beyond = evaluate.per_user_beyond(recs, tracks, users.lazy(), ks=ks)
    per_user = (
        metrics.per_user_metrics(recs, test, ks=ks)
        .join(beyond.lazy(), on=(MODEL, USER_IDX), how="left")
        .with_columns(pl.col(evaluate.N_RECOMMENDED).fill_null(0))
        .sort(MODEL, USER_IDX)
        .collect(engine="streaming")
    )
    if train is None:
        return per_user, {}
    per_train_user = None if train_counts is None else train_counts.per_user.lazy()
    segments = views.activity_segments(
        train, users.lazy(), edges=e.segments, counts=per_train_user
    ).collect()
    per_user = per_user.join(segments, on=USER_IDX, how="left")
    return per_user, {"segments": _segments_json(per_user, segments, edges=e.segments)}


def _segments_json(
    per_user: pl.DataFrame, segments: pl.DataFrame, *, edges: tuple[int, ...]
) -> dict[str, Any]:
    """metrics.json `segments`: edges, labels and {model: {segment: {n_users, metric@k...}}}."""
    means = views.by_segment(per_user.drop(views.SEGMENT), segments, edges=edges)
    by_model: dict[str, dict[str, Any]] = {}
    for row in means.to_dicts():
        by_model.setdefault(row.pop(MODEL), {})[row.pop(views.SEGMENT)] = row
    return {"edges": list(edges), "labels": views.segment_labels(edges), "by_model": by_model}


def _timed(
    clock: Callable[[], float], fn: Callable[..., T], /, *args: Any, **kwargs: Any
) -> tuple[T, float]:
    """fn(*args, **kwargs) and the seconds it took by `clock`."""
    start = clock()
    out = fn(*args, **kwargs)
    return out, round(clock() - start, 3)


def _score_views(
    recs: pl.LazyFrame,
    test: pl.LazyFrame,
    tracks: pl.DataFrame,
    *,
    n_users: int,
    train: pl.LazyFrame | None,
    replay: pl.LazyFrame | None,
    ks: tuple[int, ...],
    train_per_user: pl.DataFrame | None = None,
) -> dict[str, pl.DataFrame]:
    """`views.score_groups` of the replay view (with `replay`) and the new artists (with `train`).

    Users in contiguous groups (n_recs / VIEW_ROWS of them: 11 at 800M events) of about equal
    lists and train pairs when `train_per_user` (TrainCounts.per_user) is given, else of equal
    user ranges; `n_users` bounds user_idx (the groups only share out the work and bound its
    memory: the means do not depend on them). At 800M events the first of 11 equal ranges held
    47% of train's pairs.
    """
    if replay is None and train is None:
        return {}
    n_recs = recs.select(pl.len()).collect().item()
    weights = None
    if train_per_user is not None:
        # a user's share of the work: its lists (about n_recs / n_users rows) and train pairs
        weights = np.full(n_users, n_recs / max(n_users, 1))
        known = train_per_user.filter(pl.col(USER_IDX) < n_users)  # one row per user
        weights[known[USER_IDX].to_numpy()] += known["n_train_tracks"].to_numpy()
    groups = views.user_groups(n_users, groups=max(1, -(-n_recs // VIEW_ROWS)), weights=weights)
    return views.score_groups(
        recs,
        test,
        groups=groups,
        ks=ks,
        replay=replay,
        train=train,
        tracks=None if train is None else tracks.lazy(),
    )


def _views_json(
    per_user: pl.DataFrame,
    scored: dict[str, pl.DataFrame],
    tracks: pl.DataFrame,
    *,
    ks: tuple[int, ...],
) -> dict[str, Any]:
    """metrics.json `views`: discovery, replay and new_artists, {view: {model: {...}}}.

    Discovery is the stage's own test set: its means come from `per_user`, not a rescan;
    `scored` is `_score_views`.
    """

    def rows(frame: pl.DataFrame) -> dict[str, Any]:
        return {row.pop(MODEL): row for row in frame.to_dicts()}

    out = {"discovery": rows(views.view_means(per_user.lazy(), ks=ks))}
    if "replay" in scored:
        out["replay"] = rows(views.view_means(scored["replay"].lazy(), ks=ks))
    if "new_artists" in scored:
        coverage = views.artist_coverage(scored["artist_ranks"].lazy(), tracks.lazy(), ks=ks)
        found = views.view_means(scored["new_artists"].lazy(), ks=ks)
        out["new_artists"] = rows(found.join(coverage, on=MODEL, how="left"))
    return out
