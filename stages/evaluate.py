"""Ranking metrics at K per user and per model, computed over all users at once.

Definitions (binary relevance; R = the user's test tracks, hits = recommended tracks in R):
    precision@K = |hits in top K| / K
    recall@K    = |hits in top K| / |R|
    hit_rate@K  = 1 if any hit in top K else 0
    NDCG@K      = DCG@K / IDCG@K, DCG@K = sum_{hit at rank r <= K} 1 / log2(r + 1),
                  IDCG@K = sum_{i=1}^{min(|R|, K)} 1 / log2(i + 1)
    AP@K        = sum_{hit at rank r <= K} precision@r  /  min(|R|, K)     (MAP@K is its mean)
    RR@K        = 1 / rank of the first hit if it is <= K, else 0          (MRR@K is its mean)
A user with fewer than K recommendations is scored as if the missing slots were misses; users with
no test tracks are excluded (and counted by the caller).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from stages.schema import MODEL, RANK, TRACK_IDX, USER_IDX

N_RELEVANT = "n_relevant"
METRICS = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")


def metric_name(metric: str, k: int) -> str:
    """Column name of `metric` at cut-off `k`, e.g. "ndcg@10"."""
    return f"{metric}@{k}"


def _ideal_dcg(n_relevant: pl.Expr, k: int) -> pl.Expr:
    """IDCG@k for each user: the DCG of min(|R|, k) hits at the top."""
    table = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    return pl.min_horizontal(n_relevant, pl.lit(k)).replace_strict(
        list(range(k + 1)), table.tolist(), return_dtype=pl.Float64
    )


def per_user_metrics(
    recommendations: pl.LazyFrame, test: pl.LazyFrame, *, ks: tuple[int, ...]
) -> pl.LazyFrame:
    """Every metric at every K for every (model, test user).

    Args:
        recommendations: (model, user_idx, rank, track_idx); rank 1 is best, unique per user.
        test: (user_idx, track_idx), one row per relevant pair.
        ks: Cut-offs.

    Returns:
        One row per (model, user_idx) for each user with test tracks and each model in
        `recommendations`: n_relevant and "<metric>@<k>" Float64 columns. Sorted by model, user.
    """
    k_max = max(ks)
    pairs = test.select(USER_IDX, TRACK_IDX).unique()
    truth = pairs.group_by(USER_IDX).agg(pl.len().alias(N_RELEVANT))
    hits = (
        recommendations.filter(pl.col(RANK) <= k_max)
        .select(MODEL, USER_IDX, RANK, TRACK_IDX)
        .join(pairs, on=(USER_IDX, TRACK_IDX), how="inner")
        .with_columns(pl.col(RANK).rank("ordinal").over(MODEL, USER_IDX).alias("nth_hit"))
    )
    rank = pl.col(RANK).cast(pl.Float64)
    sums = []
    for k in ks:
        top = pl.col(RANK) <= k
        sums += [
            top.sum().alias(f"hits@{k}"),
            (1.0 / (rank + 1.0).log(2)).filter(top).sum().alias(f"dcg@{k}"),
            (pl.col("nth_hit") / rank).filter(top).sum().alias(f"ap_sum@{k}"),
            (1.0 / rank.filter(top).min()).fill_null(0.0).alias(f"rr@{k}"),
        ]
    per_user = hits.group_by(MODEL, USER_IDX).agg(sums)
    models = recommendations.select(MODEL).unique()
    zero_filled = [
        pl.col(f"{part}@{k}").fill_null(0).cast(pl.Float64)
        for k in ks
        for part in ("hits", "dcg", "ap_sum", "rr")
    ]
    frame = (
        models.join(truth, how="cross")
        .join(per_user, on=(MODEL, USER_IDX), how="left")
        .with_columns(zero_filled)
    )
    outputs = []
    for k in ks:
        n_rel = pl.col(N_RELEVANT)
        hits_k = pl.col(f"hits@{k}")
        outputs += [
            (hits_k / k).alias(metric_name("precision", k)),
            (hits_k / n_rel).alias(metric_name("recall", k)),
            (pl.col(f"dcg@{k}") / _ideal_dcg(n_rel, k)).alias(metric_name("ndcg", k)),
            (pl.col(f"ap_sum@{k}") / pl.min_horizontal(n_rel, pl.lit(k))).alias(
                metric_name("map", k)
            ),
            pl.col(f"rr@{k}").alias(metric_name("mrr", k)),
            (hits_k > 0).cast(pl.Float64).alias(metric_name("hit_rate", k)),
        ]
    return frame.select(MODEL, USER_IDX, N_RELEVANT, *outputs).sort(MODEL, USER_IDX)


def coverage(recommendations: pl.LazyFrame, *, ks: tuple[int, ...], n_items: int) -> pl.LazyFrame:
    """Catalogue coverage@K per model: share of all tracks recommended to at least one user."""
    return (
        recommendations.group_by(MODEL)
        .agg(
            (pl.col(TRACK_IDX).filter(pl.col(RANK) <= k).n_unique() / n_items).alias(
                metric_name("coverage", k)
            )
            for k in ks
        )
        .sort(MODEL)
    )


def summarise(per_user: pl.LazyFrame, coverage_by_model: pl.LazyFrame) -> pl.LazyFrame:
    """One row per model: the mean of each per-user metric, users evaluated and coverage."""
    means = per_user.group_by(MODEL).agg(
        pl.len().alias("n_users"), pl.exclude(MODEL, USER_IDX, N_RELEVANT).mean()
    )
    return means.join(coverage_by_model, on=MODEL, how="left").sort(MODEL)
