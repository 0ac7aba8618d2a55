"""Ranking metrics at K per (model, user), computed over all users at once with Polars.

Definitions (binary relevance; R = the user's test tracks, a hit = a recommended track in R,
r = the 1-based rank of a recommendation; rank order is the `rank` column, so two tracks with
equal scores are ordered by their ranks, never by score):
    precision@K = |hits in top K| / K
    recall@K    = |hits in top K| / |R|
    hit_rate@K  = 1 if any hit in top K else 0
    NDCG@K      = DCG@K / IDCG@K, DCG@K = sum_{hit at rank r <= K} 1 / log2(r + 1),
                  IDCG@K = sum_{i=1}^{min(|R|, K)} 1 / log2(i + 1)       (Jarvelin & Kekalainen)
    AP@K        = sum_{hit at rank r <= K} precision@r  /  min(|R|, K)     (MAP@K is its mean)
    RR@K        = 1 / rank of the first hit if it is <= K, else 0          (MRR@K is its mean)
A user with fewer than K recommendations (or K larger than the catalogue) is scored as if the
missing slots were misses: precision@K still divides by K. A test user a model recommended
nothing to scores 0 on every metric. Users with no test tracks are excluded (counted by the
caller). AP@K divides by min(|R|, K), so a perfect top-K list scores 1.0; ranx and trec_eval
divide by |R| instead, which is smaller than ours whenever |R| > K (see docs/evaluation.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import polars as pl

from stages.schema import MODEL, RANK, TRACK_IDX, USER_IDX

N_RELEVANT = "n_relevant"
METRICS = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")


def metric_name(metric: str, k: int) -> str:
    """Column name of `metric` at cut-off `k`, e.g. "ndcg@10"."""
    return f"{metric}@{k}"


def group_reduce(
    frame: pl.LazyFrame,
    by: Sequence[str],
    *,
    sums: Mapping[str, pl.Expr] | None = None,
    means: Mapping[str, pl.Expr] | None = None,
    extra: Sequence[pl.Expr] = (),
) -> pl.LazyFrame:
    """Float sums and means per `by` group that are bit-identical whatever the row order.

    Polars adds up a group's floats in the order its rows arrive, which joins, threads and the
    streaming engine change from run to run, so a plain `.sum()` or `.mean()` can differ in
    the last bit (and the optimiser drops a `.sort()` placed right before them). Here each
    group's values are gathered into a sorted list first and the list is reduced: one fixed
    order, the same for every run and thread count.

    Args:
        frame: The rows to aggregate.
        by: Group keys.
        sums: Output name -> expression summed per group (0.0 for an empty group).
        means: Output name -> expression averaged per group (nulls left out, as `.mean()`).
        extra: Other (exact: counts, min, max) aggregations, placed first.

    Returns:
        The keys, `extra`, then `sums` and `means` in the order given; one row per group.
    """
    sums, means = dict(sums or {}), dict(means or {})
    lists = [expr.sort().alias(name) for name, expr in (sums | means).items()]
    total = [
        pl.when(pl.col(name).list.len() > 0).then(pl.col(name).list.sum()).otherwise(0.0)
        for name in sums
    ]
    return (
        frame.group_by(*by)
        .agg(*extra, *lists)
        .with_columns(*total, *(pl.col(name).list.mean() for name in means))
    )


def ideal_dcg(n_relevant: pl.Expr, k: int, *, clip: bool = False) -> pl.Expr:
    """IDCG@k for each user: the DCG of min(|R|, k) hits at the top (see `_discount`)."""
    ranks = np.arange(1, k + 1, dtype=np.float64)
    table = np.concatenate([[0.0], np.cumsum(1.0 / _discount(ranks, clip=clip))])
    return pl.min_horizontal(n_relevant, pl.lit(k)).replace_strict(
        list(range(k + 1)), table.tolist(), return_dtype=pl.Float64
    )


def _discount(rank: npt.NDArray[np.float64], *, clip: bool) -> npt.NDArray[np.float64]:
    """log2(r + 1), or max(log2 r, 1) as in Jarvelin & Kekalainen's paper (LensKit)."""
    return np.maximum(np.log2(rank), 1.0) if clip else np.log2(rank + 1.0)


def _hit_sums(hits: pl.LazyFrame, ks: tuple[int, ...], *, clipped: bool) -> pl.LazyFrame:
    """Per (model, user) with a hit: hit count, DCG, sum of precision at hits, RR at each K.

    With `clipped`, also dcg_clip@k: the DCG under the clipped discount max(log2 r, 1).
    """
    rank = pl.col(RANK).cast(pl.Float64)
    exact, sums = [], {}
    for k in ks:
        top = pl.col(RANK) <= k
        exact += [
            top.sum().alias(f"hits@{k}"),
            (1.0 / rank.filter(top).min()).fill_null(0.0).alias(f"rr@{k}"),
        ]
        sums[f"dcg@{k}"] = (1.0 / (rank + 1.0).log(2)).filter(top)
        sums[f"ap_sum@{k}"] = (pl.col("nth_hit") / rank).filter(top)
        if clipped:
            clip = 1.0 / pl.max_horizontal(rank.log(2), pl.lit(1.0))
            sums[f"dcg_clip@{k}"] = clip.filter(top)
    return group_reduce(hits, (MODEL, USER_IDX), sums=sums, extra=exact)


def per_user_sums(
    recommendations: pl.LazyFrame,
    test: pl.LazyFrame,
    *,
    ks: tuple[int, ...],
    clipped: bool = False,
) -> pl.LazyFrame:
    """The parts every ranking metric is built from, for every (model, test user).

    Args:
        recommendations: Columns model (String), user_idx, rank (1 = best, unique per model
            and user), track_idx; one row per recommended (model, user, track).
        test: Columns user_idx, track_idx; one row per relevant pair (duplicates ignored).
        ks: Cut-offs, each > 0.
        clipped: Also sum the clipped-discount DCG (dcg_clip@k).

    Returns:
        One row per (model, user_idx) for every model in `recommendations` and every user in
        `test`: n_relevant (UInt32) and Float64 hits@k, dcg@k, ap_sum@k (sum of precision at
        each hit), rr@k (and dcg_clip@k); 0 for a user without hits.
    """
    k_max = max(ks)
    pairs = test.select(USER_IDX, TRACK_IDX).unique()
    truth = pairs.group_by(USER_IDX).agg(pl.len().cast(pl.UInt32).alias(N_RELEVANT))
    hits = (
        recommendations.filter(pl.col(RANK) <= k_max)
        .select(MODEL, USER_IDX, RANK, TRACK_IDX)
        .join(pairs, on=(USER_IDX, TRACK_IDX), how="inner")
        .with_columns(pl.col(RANK).rank("ordinal").over(MODEL, USER_IDX).alias("nth_hit"))
    )
    parts = ("hits", "dcg", "ap_sum", "rr", *(("dcg_clip",) if clipped else ()))
    zero_filled = [
        pl.col(f"{part}@{k}").fill_null(0).cast(pl.Float64) for k in ks for part in parts
    ]
    return (
        recommendations.select(MODEL)
        .unique()
        .join(truth, how="cross")
        .join(_hit_sums(hits, ks, clipped=clipped), on=(MODEL, USER_IDX), how="left")
        .with_columns(zero_filled)
    )


def per_user_metrics(
    recommendations: pl.LazyFrame, test: pl.LazyFrame, *, ks: tuple[int, ...]
) -> pl.LazyFrame:
    """Every ranking metric at every K for every (model, test user).

    Args: `recommendations`, `test` and `ks` as in `per_user_sums`.

    Returns:
        One row per (model, user_idx) for every model in `recommendations` and every user in
        `test`: n_relevant (UInt32) and "<metric>@<k>" Float64 columns for METRICS x ks.
        Sorted by model, user_idx.
    """
    frame = per_user_sums(recommendations, test, ks=ks)
    n_rel = pl.col(N_RELEVANT)
    outputs = []
    for k in ks:
        hits_k = pl.col(f"hits@{k}")
        outputs += [
            (hits_k / k).alias(metric_name("precision", k)),
            (hits_k / n_rel).alias(metric_name("recall", k)),
            (pl.col(f"dcg@{k}") / ideal_dcg(n_rel, k)).alias(metric_name("ndcg", k)),
            (pl.col(f"ap_sum@{k}") / pl.min_horizontal(n_rel, pl.lit(k))).alias(
                metric_name("map", k)
            ),
            pl.col(f"rr@{k}").alias(metric_name("mrr", k)),
            (hits_k > 0).cast(pl.Float64).alias(metric_name("hit_rate", k)),
        ]
    return frame.select(MODEL, USER_IDX, N_RELEVANT, *outputs).sort(MODEL, USER_IDX)
