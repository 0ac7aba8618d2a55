"""The ranking metrics as other libraries define them, for comparing with their numbers.

Each variant recomputes the metrics that library reports from the same per-user parts as
musicrec's (`ranking.per_user_sums`); R = the user's test tracks, L = the top-K list (|L| < K
when fewer were recommended), a user = an evaluated user (one with test tracks):
    implicit  ranking_metrics_at_k: precision = sum of hits / sum of min(K, |R|) over users (a
              micro average); MAP and NDCG as musicrec.
    lenskit   precision = hits / |L| (undefined, left out, for an empty list); recall = hits /
              min(|R|, K); NDCG with the discount max(log2 r, 1) (the original paper's: ranks 1
              and 2 both count fully), ideal over min(|R|, K); AP / min(|R|, |L|).
    recbole   the same definitions as musicrec (precision / K, recall / |R|, AP / min(|R|, K)).
    spark     RankingMetrics: precisionAt / K, recallAt / |R|, ndcgAt and meanAveragePrecisionAt
              as musicrec, but a user with an empty ground truth scores 0 and counts: the users
              who received a list but have no test tracks are in the mean.
    trec      trec_eval and ranx: AP divided by |R| (not min(|R|, K)); the rest as musicrec.
"""

from __future__ import annotations

import polars as pl

from stages.evaluate.ranking import (
    N_RELEVANT,
    group_reduce,
    ideal_dcg,
    metric_name,
    per_user_sums,
)
from stages.schema import MODEL, RANK, USER_IDX

VARIANTS = ("musicrec", "implicit", "lenskit", "recbole", "spark", "trec")
VARIANT = "variant"


def _per_user(name: str, k: int) -> dict[str, pl.Expr]:
    """Per-user value of each metric the variant reports, at cut-off k (null = left out)."""
    hits, n_rel, listed = pl.col(f"hits@{k}"), pl.col(N_RELEVANT), pl.col(f"listed@{k}")
    dcg = pl.col(f"dcg@{k}") / ideal_dcg(n_rel, k)
    ap_sum, rr = pl.col(f"ap_sum@{k}"), pl.col(f"rr@{k}")
    hit_rate = (hits > 0).cast(pl.Float64)
    ap_k = ap_sum / pl.min_horizontal(n_rel, pl.lit(k))
    standard = {"precision": hits / k, "recall": hits / n_rel, "ndcg": dcg, "map": ap_k}
    if name == "implicit":
        return {"ndcg": dcg, "map": ap_k}
    if name == "lenskit":
        some = listed > 0
        return {
            "precision": pl.when(some).then(hits / listed),
            "recall": hits / pl.min_horizontal(n_rel, pl.lit(k)),
            "ndcg": pl.col(f"dcg_clip@{k}") / ideal_dcg(n_rel, k, clip=True),
            "map": pl.when(some).then(ap_sum / pl.min_horizontal(n_rel, listed)),
            "mrr": rr,
            "hit_rate": hit_rate,
        }
    if name == "spark":
        return standard
    if name == "trec":
        return standard | {"map": ap_sum / n_rel, "mrr": rr, "hit_rate": hit_rate}
    return standard | {"mrr": rr, "hit_rate": hit_rate}  # musicrec, recbole


def metric_variants(
    recommendations: pl.LazyFrame, test: pl.LazyFrame, *, ks: tuple[int, ...]
) -> pl.DataFrame:
    """Mean of each library's version of the ranking metrics, per model.

    Args:
        recommendations: Columns model, user_idx, rank, track_idx (see `ranking`).
        test: Columns user_idx, track_idx.
        ks: Cut-offs.

    Returns:
        One row per (variant, model) in VARIANTS order, then by model: "<metric>@<k>" Float64
        columns (null where the library does not report that metric).
    """
    listed = (
        recommendations.group_by(MODEL, USER_IDX)
        .agg((pl.col(RANK) <= k).sum().cast(pl.Float64).alias(f"listed@{k}") for k in ks)
        .select(MODEL, USER_IDX, *(f"listed@{k}" for k in ks))
    )
    users = (
        per_user_sums(recommendations, test, ks=ks, clipped=True)
        .join(listed, on=(MODEL, USER_IDX), how="left")
        .with_columns(pl.col(f"listed@{k}").fill_null(0.0) for k in ks)
        .collect()
    )
    # spark: users with a list but no test tracks count as 0
    n_empty = (
        recommendations.select(MODEL, USER_IDX)
        .unique()
        .join(test.select(USER_IDX).unique(), on=USER_IDX, how="anti")
        .group_by(MODEL)
        .agg(pl.len().alias("_empty"))
    )
    frames = []
    for name in VARIANTS:
        means = {
            metric_name(metric, k): expr for k in ks for metric, expr in _per_user(name, k).items()
        }
        # implicit's micro average: sums of whole numbers, exact in any order
        micro = [
            (
                pl.col(f"hits@{k}").sum() / pl.min_horizontal(pl.col(N_RELEVANT), pl.lit(k)).sum()
            ).alias(metric_name("precision", k))
            for k in ks
            if name == "implicit"
        ]
        frame = (
            group_reduce(users.lazy(), (MODEL,), means=means, extra=(*micro, pl.len().alias("_n")))
            .collect()
            .select(MODEL, *means, *(e.meta.output_name() for e in micro), "_n")
        )
        if name == "spark":
            frame = _count_empty_as_zero(frame, n_empty.collect())
        frames.append(frame.drop("_n").with_columns(pl.lit(name).alias(VARIANT)))
    return (
        pl.concat(frames, how="diagonal")
        .with_columns(pl.col(VARIANT).cast(pl.Enum(VARIANTS)))
        .sort(VARIANT, MODEL)
        .with_columns(pl.col(VARIANT).cast(pl.String))
        .select(VARIANT, MODEL, pl.all().exclude(VARIANT, MODEL))
    )


def _count_empty_as_zero(frame: pl.DataFrame, n_empty: pl.DataFrame) -> pl.DataFrame:
    """Means over the evaluated users rescaled to also count `_empty` users scoring 0."""
    empty = pl.col("_empty").fill_null(0)
    scale = pl.col("_n") / (pl.col("_n") + empty)
    metric_cols = [c for c in frame.columns if "@" in c]
    return (
        frame.join(n_empty, on=MODEL, how="left")
        .with_columns(pl.col(c) * scale for c in metric_cols)
        .drop("_empty")
    )


def as_json(variants: pl.DataFrame) -> dict[str, dict[str, dict[str, float | None]]]:
    """metrics.json's form: {variant: {model: {metric@k: value}}}, metrics the variant reports."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for row in variants.to_dicts():
        name, model = row.pop(VARIANT), row.pop(MODEL)
        out.setdefault(name, {})[model] = {k: v for k, v in row.items() if v is not None}
    return out
