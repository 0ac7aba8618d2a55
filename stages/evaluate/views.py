"""Other views of the same lists: replay vs discovery, new artists, and user-activity segments.

Music logs are dominated by re-listens, so one number hides two questions:
    discovery    the test pairs the user never played in train (02_split test.parquet; what
                 every model is scored on)
    replay       every test-period pair, re-listens included (test_replay.parquet); a model that
                 never recommends heard tracks cannot score on the re-listens
    new artists  artist level: a user's test artists they never played in train; a list scores
                 on the distinct artists of its top K (first occurrence keeps its rank)
and every metric is also averaged per segment of users by their number of training tracks
(edges 1, 5, 20 give 0, 1-4, 5-19, 20+): the cold-start question.
"""

from __future__ import annotations

import polars as pl

from stages.evaluate.beyond import ARTIST
from stages.evaluate.ranking import group_reduce, per_user_metrics
from stages.schema import MODEL, RANK, TRACK_IDX, USER_IDX

SEGMENT = "segment"
VIEW_METRICS = ("recall", "ndcg", "hit_rate")


def artist_lists(recommendations: pl.LazyFrame, tracks: pl.LazyFrame) -> pl.LazyFrame:
    """Each list as its distinct artists: an artist keeps its best rank, ranks renumbered 1..n.

    Args:
        recommendations: Columns model, user_idx, rank, track_idx.
        tracks: Columns track_idx, artist (UInt32 code; null = unknown, dropped).

    Returns:
        Columns model, user_idx, rank (UInt32), track_idx holding the artist code, so that
        `ranking.per_user_metrics` scores artists.
    """
    # one group per list: its artists in rank order, each kept at its first occurrence. A
    # group per (list, artist) then a rank over each list (the same result) ran into Polars
    # 2.1's spilling window node at 274M recommendations (800M events), which deadlocked
    artists = pl.col(ARTIST).sort_by(RANK).unique(maintain_order=True)
    return (
        recommendations.join(tracks.select(TRACK_IDX, ARTIST), on=TRACK_IDX, how="inner")
        .drop_nulls(ARTIST)
        .group_by(MODEL, USER_IDX)
        .agg(artists.alias(TRACK_IDX))
        .with_columns(
            pl.int_ranges(1, pl.col(TRACK_IDX).list.len() + 1, dtype=pl.UInt32).alias(RANK)
        )
        .explode(TRACK_IDX, RANK)
        .select(MODEL, USER_IDX, RANK, TRACK_IDX)
    )


def new_artists(test: pl.LazyFrame, train: pl.LazyFrame, tracks: pl.LazyFrame) -> pl.LazyFrame:
    """(user_idx, track_idx = artist code) of test artists the user never played in train."""
    artist = tracks.select(TRACK_IDX, ARTIST)

    def artists_of(pairs: pl.LazyFrame) -> pl.LazyFrame:
        return (
            pairs.select(USER_IDX, TRACK_IDX)
            .join(artist, on=TRACK_IDX, how="inner")
            .drop_nulls(ARTIST)
            .select(USER_IDX, ARTIST)
            .unique()
        )

    # train's (user, artist) pairs only where the test has them: the semi-join hashes the test
    # side and streams train, where the unique pairs of all of train (tens of millions at 800M
    # events) held more memory than the machine has
    in_test = artists_of(test)
    known = (
        train.select(USER_IDX, TRACK_IDX)
        .join(artist, on=TRACK_IDX, how="inner")
        .select(USER_IDX, ARTIST)
        .join(in_test, on=(USER_IDX, ARTIST), how="semi")
        .unique()
    )
    return in_test.join(known, on=(USER_IDX, ARTIST), how="anti").select(
        USER_IDX, pl.col(ARTIST).alias(TRACK_IDX)
    )


def view_means(
    recommendations: pl.LazyFrame,
    truth: pl.LazyFrame,
    *,
    ks: tuple[int, ...],
    user_ranges: int = 1,
) -> pl.DataFrame:
    """Mean recall, NDCG and hit rate at each K per model against `truth`, with n_users.

    `user_ranges` > 1 scores the users in that many groups (user_idx modulo), one at a time:
    the lists and truth of one group are held instead of all of them (800M events: 274M
    recommendations). The means are the same: group_reduce sorts each model's values.
    """
    wanted = [f"{m}@{k}" for k in ks for m in VIEW_METRICS]
    parts = [
        per_user_metrics(
            recommendations.filter(pl.col(USER_IDX) % user_ranges == part),
            truth.filter(pl.col(USER_IDX) % user_ranges == part),
            ks=ks,
        )
        .select(MODEL, *wanted)
        .collect(engine="streaming")
        for part in range(user_ranges)
    ]
    means = {c: pl.col(c) for c in wanted}
    return (
        group_reduce(
            pl.concat(parts).lazy(), (MODEL,), means=means, extra=(pl.len().alias("n_users"),)
        )
        .sort(MODEL)
        .collect()
    )


def segment_labels(edges: tuple[int, ...]) -> list[str]:
    """Names of the segments cut at `edges` (ascending, > 0): (1, 5, 20) -> 0, 1-4, 5-19, 20+."""
    bounds = [0, *edges]
    labels = [
        f"{lo}" if hi - lo == 1 else f"{lo}-{hi - 1}"
        for lo, hi in zip(bounds, bounds[1:], strict=False)
    ]
    return [*labels, f"{bounds[-1]}+"]


def activity_segments(
    train: pl.LazyFrame, users: pl.LazyFrame, *, edges: tuple[int, ...]
) -> pl.LazyFrame:
    """Each user's segment by distinct training tracks.

    Args:
        train: Columns user_idx, track_idx (one row per training pair).
        users: Column user_idx: the users to label (users absent from train have 0 tracks).
        edges: Ascending segment edges > 0.

    Returns:
        Columns user_idx, n_train_tracks (UInt32), segment (String).
    """
    counts = train.group_by(USER_IDX).agg(pl.col(TRACK_IDX).n_unique().alias("n_train_tracks"))
    n = pl.col("n_train_tracks")
    labels = segment_labels(edges)
    segment = pl.lit(labels[-1])
    for edge, label in reversed(list(zip(edges, labels, strict=False))):
        segment = pl.when(n < edge).then(pl.lit(label)).otherwise(segment)
    return (
        users.select(USER_IDX)
        .unique()
        .join(counts, on=USER_IDX, how="left")
        .with_columns(n.fill_null(0).cast(pl.UInt32))
        .with_columns(segment.alias(SEGMENT))
    )


def by_segment(
    per_user: pl.DataFrame, segments: pl.DataFrame, *, edges: tuple[int, ...]
) -> pl.DataFrame:
    """Mean of every per-user "@" column per (model, segment), with n_users; segment order."""
    order = pl.Enum(segment_labels(edges))
    labelled = per_user.join(segments.select(USER_IDX, SEGMENT), on=USER_IDX, how="left")
    means = {c: pl.col(c) for c in per_user.columns if "@" in c}
    return (
        group_reduce(
            labelled.lazy(), (MODEL, SEGMENT), means=means, extra=(pl.len().alias("n_users"),)
        )
        .collect()
        .with_columns(pl.col(SEGMENT).cast(order))
        .sort(MODEL, SEGMENT)
        .with_columns(pl.col(SEGMENT).cast(pl.String))
    )


def artist_coverage(
    recommendations: pl.LazyFrame, users: pl.LazyFrame, tracks: pl.LazyFrame, *, ks: tuple[int, ...]
) -> pl.DataFrame:
    """Share of the catalogue's artists in some evaluated user's top K, per model.

    Returns:
        model and artist_coverage@<k> per K, sorted by model.
    """
    n_artists = tracks.select(pl.col(ARTIST).drop_nulls().n_unique()).collect().item()
    # an artist is in some top K when its best rank over the lists is <= K: one row per
    # (model, artist) is held, not every recommendation's artist per model
    best = (
        recommendations.filter(pl.col(RANK) <= max(ks))
        .join(users.select(USER_IDX).unique(), on=USER_IDX, how="semi")
        .join(tracks.select(TRACK_IDX, ARTIST), on=TRACK_IDX, how="inner")
        .drop_nulls(ARTIST)
        .group_by(MODEL, ARTIST)
        .agg(pl.col(RANK).min())
    )
    return (
        best.group_by(MODEL)
        .agg(
            ((pl.col(RANK) <= k).sum() / max(n_artists, 1)).alias(f"artist_coverage@{k}")
            for k in ks
        )
        .sort(MODEL)
        .collect()
    )
