"""Is a difference between two models real? Paired tests on the per-user metric values.

Every model is compared with the baseline and with the best model of each metric (the highest
mean; the lowest for popularity), on the users both were evaluated on (a user whose value is
null for either model, e.g. no audio features, is left out of that comparison):
    mean_difference  mean over users of (model - reference)
    ci_low, ci_high  seeded paired-bootstrap percentile 95% interval of that mean (users drawn
                     with replacement, the same draws for every comparison)
    p_value          two-sided Wilcoxon signed-rank test (scipy; zero differences dropped, as
                     Wilcoxon proposed; 1.0 when every difference is 0)
    p_holm           Holm's step-down adjustment over all comparisons of the same metric column
    significant      p_holm < alpha
Identical models therefore never differ significantly (every difference is 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from stages.evaluate.ranking import group_reduce
from stages.schema import MODEL, USER_IDX

COMPARISON_COLUMNS = (
    "metric",
    "model",
    "reference",
    "role",
    "n_users",
    "mean_difference",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "significant",
)


def holm(p_values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Holm-Bonferroni adjusted p-values (same order as the input), capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(scaled, 1.0)
    return out


# scipy's `wilcoxon` (method "auto") runs an exact permutation test up to this many tied
# differences: all 2**n sign flips, about 0.3 s of CPU per call, i.e. tens of seconds for one
# evaluate on a small test set. `_exact_tied_p` counts the same null distribution instead.
_PERMUTATION_MAX_N = 13


def _exact_tied_p(d: npt.NDArray[np.float64]) -> float:
    """The two-sided exact p-value scipy gives nonzero differences with tied magnitudes.

    The signed-rank statistic (sum of the positive differences' midranks) over all 2**n sign
    flips, counted by convolution over doubled (so integer) midranks: min(P(T <= t), P(T >= t))
    times 2, capped at 1, as `stats.permutation_test` computes it from its 2**n resamples.
    """
    from scipy import stats  # imported where used: see the note above wilcoxon_p

    doubled = np.rint(2 * stats.rankdata(np.abs(d))).astype(np.int64)
    counts = np.zeros(int(doubled.sum()) + 1, dtype=np.int64)
    counts[0] = 1
    for rank in doubled:
        counts[rank:] = counts[rank:] + counts[:-rank]
    observed = int(doubled[d > 0].sum())
    at_most = int(counts[: observed + 1].sum())
    at_least = int(counts[observed:].sum())
    return float(min(min(at_most, at_least) / float(2 ** len(d)) * 2, 1.0))


# scipy.stats is imported inside the two functions that call it: importing it costs ~1 s of
# CPU, and every musicrec command imports this module (config's [evaluate] settings).
def wilcoxon_p(differences: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Two-sided Wilcoxon signed-rank p-value of each column of (n_users, c) differences.

    NaN marks a user left out of that column; a column whose differences are all 0 (or empty)
    gets 1.0. Equal to `stats.wilcoxon(d).pvalue` on the nonzero differences `d`.
    """
    out = np.ones(differences.shape[1])
    for j in range(differences.shape[1]):
        d = differences[:, j]
        d = d[~np.isnan(d) & (d != 0)]
        tied = len(np.unique(np.abs(d))) < len(d)
        if tied and len(d) <= _PERMUTATION_MAX_N:
            out[j] = _exact_tied_p(d)
        elif len(d) > 0:
            from scipy import stats  # imported where used: see the note above

            out[j] = stats.wilcoxon(d, zero_method="wilcox").pvalue
    return out


def bootstrap_ci(
    differences: npt.NDArray[np.float64], *, n_samples: int, seed: int, block: int = 64
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Percentile 95% interval of the mean of each column, users resampled with replacement.

    Each bootstrap sample is a vector of draw counts per user, applied to every column at once
    as a matrix product, `block` samples at a time (memory block x n_users); the number of
    users drawn is counted only for the columns that leave users out.

    Args:
        differences: (n_users, c) float64; NaN = user left out of that column.
        n_samples: Bootstrap samples.
        seed: Seed of the draws.
        block: Samples drawn per matrix product.

    Returns:
        (c,) lower and (c,) upper bounds; NaN for a column with no user.
    """
    n, c = differences.shape
    valid = ~np.isnan(differences)
    values = np.where(valid, differences, 0.0)
    gaps = np.flatnonzero(~valid.all(axis=0))
    valid_gaps = valid[:, gaps].astype(float)
    rng = np.random.default_rng(seed)
    means = np.empty((n_samples, c))
    counts = np.empty((min(block, n_samples), n))
    for start in range(0, n_samples, block):
        size = min(block, n_samples - start)
        # one sample's draws and bincount at a time (a loop over samples, not users): the
        # same stream as one (size, n) draw, but its n draws and counts stay in cache and in
        # pages already mapped, where the block's size * n fresh draws took 5-7x longer.
        # int64 draws: bincount would copy int32 ones to int64 first
        for row in range(size):
            counts[row] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        drawn = np.full((size, c), float(n))
        drawn[:, gaps] = counts[:size] @ valid_gaps
        with np.errstate(invalid="ignore", divide="ignore"):
            means[start : start + size] = (counts[:size] @ values) / drawn
    low, high = np.full(c, np.nan), np.full(c, np.nan)
    some = valid.any(axis=0)
    if some.any():
        low[some], high[some] = np.percentile(means[:, some], [2.5, 97.5], axis=0)
    return low, high


def _pairs(
    means: pl.DataFrame, metric: str, *, baseline: str | None, lower_is_better: bool
) -> list[tuple[str, str, str]]:
    """(model, reference, role) pairs of one metric: vs the baseline, then vs the best."""
    known = means.filter(pl.col(metric).is_not_null() & pl.col(metric).is_not_nan())
    if known.height == 0:
        return []
    best = known.sort(metric, MODEL, descending=[not lower_is_better, False])[MODEL][0]
    models = known[MODEL].to_list()
    has_baseline = baseline in models
    pairs = [(m, str(baseline), "baseline") for m in models if has_baseline and m != baseline]
    if has_baseline and best == baseline:
        return pairs  # "vs best" is "vs baseline"
    # the baseline against the best is already tested the other way round
    return pairs + [(m, best, "best") for m in models if m not in (best, baseline)]


def compare_models(
    per_user: pl.DataFrame,
    *,
    metrics: list[str],
    baseline: str | None,
    lower_is_better: frozenset[str] = frozenset(),
    n_samples: int = 1000,
    seed: int = 42,
    alpha: float = 0.05,
) -> pl.DataFrame:
    """Paired tests of every model against the baseline and the best, per metric column.

    Args:
        per_user: One row per (model, user_idx) with the `metrics` columns (Float64, nulls
            allowed).
        metrics: Per-user metric columns to compare, e.g. ["ndcg@10", "novelty@10"].
        baseline: Model compared with every other, or None (then only "vs best").
        lower_is_better: Metric names (without "@k") where the lowest mean is the best.
        n_samples: Bootstrap samples (0 = no interval).
        seed: Seed of the bootstrap.
        alpha: Level of the Holm-adjusted test.

    Returns:
        One row per (metric, model, reference) with COMPARISON_COLUMNS; role is "baseline" or
        "best". Sorted by metric, role, model.
    """
    means = (
        group_reduce(per_user.lazy(), (MODEL,), means={m: pl.col(m) for m in metrics})
        .sort(MODEL)
        .collect()
    )
    # each model's values on one row per user (first-appearance order, as a pivot would give;
    # null where the model has no row): one join per model, not one pivot per metric
    users = per_user.select(USER_IDX).unique(maintain_order=True)
    wide = {
        model: users.join(
            per_user.filter(pl.col(MODEL) == model).select(USER_IDX, *metrics),
            on=USER_IDX,
            how="left",
            maintain_order="left",
        )
        for model in means[MODEL]
    }
    rows: list[tuple[str, str, str, str]] = []
    columns: list[npt.NDArray[np.float64]] = []
    for metric in metrics:
        lower = metric.partition("@")[0] in lower_is_better
        for model, reference, role in _pairs(
            means, metric, baseline=baseline, lower_is_better=lower
        ):
            diff = (wide[model][metric] - wide[reference][metric]).cast(pl.Float64)
            diff = diff.fill_null(np.nan)
            rows.append((metric, model, reference, role))
            columns.append(diff.to_numpy())
    if not rows:
        return pl.DataFrame(schema=_schema())
    differences = np.column_stack(columns)
    valid = ~np.isnan(differences)
    n_users = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, differences, 0.0).sum(axis=0) / n_users
    p_values = wilcoxon_p(differences)
    metric_of = np.array([r[0] for r in rows])
    p_holm = np.empty(len(rows))
    for metric in metrics:
        at = np.flatnonzero(metric_of == metric)
        p_holm[at] = holm(p_values[at])
    if n_samples > 0:
        low, high = bootstrap_ci(differences, n_samples=n_samples, seed=seed)
    else:
        low = high = np.full(len(rows), np.nan)
    frame = pl.DataFrame(
        {
            "metric": metric_of.tolist(),
            "model": [r[1] for r in rows],
            "reference": [r[2] for r in rows],
            "role": [r[3] for r in rows],
            "n_users": n_users.astype(np.int64),
            "mean_difference": mean,
            "ci_low": low,
            "ci_high": high,
            "p_value": p_values,
            "p_holm": p_holm,
            "significant": p_holm < alpha,
        },
        nan_to_null=True,
    )
    return frame.select(COMPARISON_COLUMNS).sort("metric", "role", "model")


def as_json(comparisons: pl.DataFrame) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """metrics.json's form: {"vs_baseline"|"vs_best": {model: {metric: {reference, ...}}}}."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {"vs_baseline": {}, "vs_best": {}}
    for row in comparisons.to_dicts():
        role, model, metric = row.pop("role"), row.pop("model"), row.pop("metric")
        out[f"vs_{role}"].setdefault(model, {})[metric] = row
    return out


def _schema() -> dict[str, pl.DataType]:
    types: dict[str, pl.DataType] = dict.fromkeys(COMPARISON_COLUMNS[:4], pl.String())
    types |= {"n_users": pl.Int64(), "significant": pl.Boolean()}
    return {c: types.get(c, pl.Float64()) for c in COMPARISON_COLUMNS}
