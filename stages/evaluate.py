"""Beyond-accuracy metrics, the per-model summary and the lift over a baseline model.

Ranking metrics (precision, recall, NDCG, MAP, MRR, hit rate) live in `stages.metrics`. Here,
L is one user's top-K list (|L| < K when fewer were recommended); only evaluated users (those
with test tracks) count, so every metric of a model describes the same population:
    coverage@K         = |tracks in at least one top-K list| / |catalogue|            (per model)
    artist_diversity@K = |distinct artists in L| / |L|
    audio_distance@K   = sqrt(mean over ordered pairs i != j in L of ||z_i - z_j||^2), where z
                         holds the track's audio features as z-scores over the catalogue; tracks
                         without features are left out, null when fewer than two remain. It is
                         computed in one pass as sqrt(2 * sum over features of the sample
                         variance within L), which equals the pair mean exactly.
    novelty@K          = mean over L of -log2(popularity)  (self-information, in bits)
    popularity@K       = mean over L of popularity
popularity = share of train users who played the track; a track nobody played in train counts
as played by one user for novelty (so its self-information is log2(n_train_users), not inf).
"""

from __future__ import annotations

import polars as pl
import polars.selectors as cs

from stages.metrics import metric_name
from stages.schema import MODEL, RANK, TRACK_IDX, USER_IDX

ARTIST = "artist"
POPULARITY = "popularity"
SELF_INFORMATION = "self_information"
N_RECOMMENDED = "n_recommended"
BEYOND_METRICS = ("artist_diversity", "audio_distance", "novelty", "popularity")


def track_table(
    items: pl.LazyFrame,
    train: pl.LazyFrame,
    *,
    artist: str | None,
    audio: tuple[str, ...],
    n_train_users: int,
) -> pl.LazyFrame:
    """One row per catalogue track: artist code, popularity, self-information, audio z-scores.

    Args:
        items: The catalogue; column track_idx plus `artist` and `audio` when given.
        train: Columns user_idx, track_idx; one row per training (user, track) pair.
        artist: Artist column of `items`, or None if unknown.
        audio: Numeric audio-feature columns of `items` (may be empty; nulls allowed).
        n_train_users: Distinct users in `train` (> 0).

    Returns:
        track_idx, artist (UInt32 code; only if `artist` is given), popularity,
        self_information and z_<feature> per `audio` column (Float64; 0 where the feature is
        constant over the catalogue). Sorted by track_idx.
    """
    listeners = train.group_by(TRACK_IDX).agg(pl.col(USER_IDX).n_unique().alias("listeners"))
    codes = [pl.col(artist).rank("dense").cast(pl.UInt32).alias(ARTIST)] if artist else []
    z_scores = []
    for name in audio:
        col = pl.col(name).cast(pl.Float64)
        std = col.std()
        z = pl.when(std > 0).then((col - col.mean()) / std).otherwise(0.0)
        z_scores.append(pl.when(col.is_not_null()).then(z).alias(f"z_{name}"))
    listened = pl.col("listeners").fill_null(0).cast(pl.Float64)
    return (
        items.select(TRACK_IDX, *codes, *z_scores)
        .join(listeners, on=TRACK_IDX, how="left")
        .with_columns(
            (listened / n_train_users).alias(POPULARITY),
            (-(pl.max_horizontal(listened, 1.0) / n_train_users).log(2)).alias(SELF_INFORMATION),
        )
        .drop("listeners")
        .sort(TRACK_IDX)
    )


def per_user_beyond(
    recommendations: pl.LazyFrame, tracks: pl.LazyFrame, users: pl.LazyFrame, *, ks: tuple[int, ...]
) -> pl.LazyFrame:
    """Diversity, novelty and popularity of each evaluated user's top-K list, for every K.

    Args:
        recommendations: Columns model, user_idx, rank, track_idx (see stages.metrics).
        tracks: Output of `track_table`.
        users: Column user_idx: the evaluated users.
        ks: Cut-offs.

    Returns:
        One row per (model, user_idx) with at least one recommendation: n_recommended (within
        max(ks)) and "<metric>@<k>" Float64 columns for BEYOND_METRICS (artist_diversity only
        when `tracks` has an artist column, audio_distance only when it has z_ columns; both
        null for a list with no known artist / fewer than two tracks with features). Unsorted.
    """
    schema = tracks.collect_schema()
    z_cols = [c for c in schema if c.startswith("z_")]
    lists = (
        recommendations.filter(pl.col(RANK) <= max(ks))
        .select(MODEL, USER_IDX, RANK, TRACK_IDX)
        .join(users.select(USER_IDX).unique(), on=USER_IDX, how="semi")
        .join(tracks, on=TRACK_IDX, how="left")
    )
    aggs: list[pl.Expr] = [pl.len().cast(pl.UInt32).alias(N_RECOMMENDED)]
    for k in ks:
        top = pl.col(RANK) <= k
        if ARTIST in schema:
            known = pl.col(ARTIST).filter(top).count()
            distinct = pl.col(ARTIST).filter(top).drop_nulls().n_unique()
            aggs.append(
                pl.when(known > 0)
                .then(distinct / known)
                .cast(pl.Float64)
                .alias(metric_name("artist_diversity", k))
            )
        aggs += [
            pl.col(SELF_INFORMATION).filter(top).mean().alias(metric_name("novelty", k)),
            pl.col(POPULARITY).filter(top).mean().alias(metric_name("popularity", k)),
        ]
        if z_cols:
            variance = pl.sum_horizontal(pl.col(c).filter(top).var() for c in z_cols)
            enough = pl.col(z_cols[0]).filter(top).count() >= 2  # sum_horizontal: null -> 0
            aggs.append(
                pl.when(enough)
                .then((2.0 * variance).sqrt())
                .alias(metric_name("audio_distance", k))
            )
    return lists.group_by(MODEL, USER_IDX).agg(aggs)


def coverage(
    recommendations: pl.LazyFrame, users: pl.LazyFrame, *, ks: tuple[int, ...], n_items: int
) -> pl.LazyFrame:
    """Catalogue coverage@K per model: share of all `n_items` tracks in some user's top K.

    Only the lists of `users` (column user_idx, the evaluated users) count. One row per model.
    """
    return (
        recommendations.join(users.select(USER_IDX).unique(), on=USER_IDX, how="semi")
        .group_by(MODEL)
        .agg(
            (pl.col(TRACK_IDX).filter(pl.col(RANK) <= k).n_unique() / n_items).alias(
                metric_name("coverage", k)
            )
            for k in ks
        )
        .sort(MODEL)
    )


def summarise(per_user: pl.LazyFrame, coverage_by_model: pl.LazyFrame) -> pl.LazyFrame:
    """One row per model: users evaluated, users left without recommendations, metric means.

    Args:
        per_user: One row per (model, user_idx) with n_recommended and "<metric>@<k>" columns
            (the ranking frame left-joined with `per_user_beyond`).
        coverage_by_model: Output of `coverage`.

    Returns:
        model, n_users, n_users_without_recommendations and the mean of every "@" column over
        the model's users (nulls, e.g. no audio features, left out), then coverage@K. Sorted
        by model.
    """
    means = per_user.group_by(MODEL).agg(
        pl.len().alias("n_users"),
        (pl.col(N_RECOMMENDED).fill_null(0) == 0).sum().alias("n_users_without_recommendations"),
        cs.contains("@").mean(),
    )
    return means.join(coverage_by_model, on=MODEL, how="left").sort(MODEL)


def lift_over(summary: pl.DataFrame, *, baseline: str) -> pl.DataFrame | None:
    """Relative lift of every model over `baseline`: value / baseline value - 1, per metric.

    Args:
        summary: Output of `summarise`, collected.
        baseline: Model name, e.g. "popularity".

    Returns:
        model and one Float64 column per "@" column of `summary` (null where the baseline's
        value is 0 or null), in `summary`'s row order; None if `baseline` is not a model.
    """
    base = summary.filter(pl.col(MODEL) == baseline)
    if base.height == 0:
        return None
    columns = [c for c in summary.columns if "@" in c]
    lifts = [
        (pl.col(c) / base[c][0] - 1.0 if base[c][0] else pl.lit(None, pl.Float64)).alias(c)
        for c in columns
    ]
    return summary.select(MODEL, *lifts)
