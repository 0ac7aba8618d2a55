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

import numpy as np
import numpy.typing as npt
import polars as pl

from stages.evaluate.beyond import ARTIST
from stages.evaluate.ranking import group_reduce, per_user_metrics
from stages.schema import MODEL, RANK, TRACK_IDX, USER_IDX

SEGMENT = "segment"
VIEW_METRICS = ("recall", "ndcg", "hit_rate")


def artist_of(tracks: pl.LazyFrame) -> pl.Expr:
    """The artist code (UInt32) of each row's track_idx; null when unknown or not in `tracks`.

    A gather through an array indexed by track_idx (`tracks` is collected: one row per
    catalogue track), about 5x cheaper than a hash join on track_idx at 800M events.
    """
    table = tracks.select(TRACK_IDX, ARTIST).collect()
    size = int(table.select(pl.col(TRACK_IDX).max().fill_null(0)).item()) + 1
    lookup = pl.Series(ARTIST, [None] * (size + 1), dtype=pl.UInt32).scatter(
        table[TRACK_IDX], table[ARTIST].cast(pl.UInt32)
    )
    # a track_idx past the table reads the last entry, which is null
    return pl.lit(lookup).gather(pl.col(TRACK_IDX).clip(upper_bound=size)).alias(ARTIST)


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
        recommendations.with_columns(artist_of(tracks))
        .drop_nulls(ARTIST)
        .group_by(MODEL, USER_IDX)
        .agg(artists.alias(TRACK_IDX))
        .with_columns(
            pl.int_ranges(1, pl.col(TRACK_IDX).list.len() + 1, dtype=pl.UInt32).alias(RANK)
        )
        .explode(TRACK_IDX, RANK)
        .select(MODEL, USER_IDX, RANK, TRACK_IDX)
    )


_PAIR = "_user_artist"  # (user_idx, artist) packed into one UInt64: user_idx << 32 | artist


def new_artists(test: pl.LazyFrame, train: pl.LazyFrame, tracks: pl.LazyFrame) -> pl.LazyFrame:
    """(user_idx, track_idx = artist code) of test artists the user never played in train."""
    artist = artist_of(tracks)

    def pairs_of(pairs: pl.LazyFrame) -> pl.LazyFrame:
        packed = pl.col(USER_IDX).cast(pl.UInt64) * (1 << 32) + pl.col(ARTIST)
        return pairs.select(USER_IDX, artist).drop_nulls(ARTIST).select(packed.alias(_PAIR))

    # train's (user, artist) pairs only where the test has them: the semi-join hashes the test
    # side and streams train, where the unique pairs of all of train (tens of millions at 800M
    # events) held more memory than the machine has; one packed key hashes faster than two
    in_test = pairs_of(test).unique()
    known = pairs_of(train).join(in_test, on=_PAIR, how="semi").unique()
    return in_test.join(known, on=_PAIR, how="anti").select(
        (pl.col(_PAIR) // (1 << 32)).cast(pl.UInt32).alias(USER_IDX),
        (pl.col(_PAIR) % (1 << 32)).cast(pl.UInt32).alias(TRACK_IDX),
    )


def user_groups(
    n_users: int, *, groups: int, weights: npt.NDArray[np.floating] | None = None
) -> list[pl.Expr]:
    """Filters cutting user_idx into at most `groups` contiguous ranges.

    Without `weights` each range holds about n_users / groups users; with them (one per
    user_idx below n_users, e.g. the rows a user brings to a view) about the same weight: user
    ids follow activity, so equal ranges left the first half of the work in the first range.
    The first range has no lower end and the last no upper end, so every user_idx falls in
    exactly one range whatever `n_users` is. A file in user order (predictions, test, train) is
    read by a range of its row groups (Parquet statistics) instead of whole, as a user_idx
    modulo filter would.
    """
    user = pl.col(USER_IDX)
    if weights is None:
        edges = [n_users * i // groups for i in range(1, groups)]
    else:
        total = np.cumsum(weights, dtype=np.float64)
        # a range ends after the user whose running weight reaches its share
        cuts = np.searchsorted(total, total[-1] * np.arange(1, groups) / groups) + 1
        edges = [int(e) for e in np.unique(cuts) if e < n_users]
    lows: list[pl.Expr] = [pl.lit(value=True), *(user >= e for e in edges)]
    highs: list[pl.Expr] = [*(user < e for e in edges), pl.lit(value=True)]
    return [low & high for low, high in zip(lows, highs, strict=True)]


def view_rows(
    recommendations: pl.LazyFrame, truth: pl.LazyFrame, *, ks: tuple[int, ...]
) -> pl.LazyFrame:
    """model, user_idx and VIEW_METRICS at each K for every (model, user of `truth`)."""
    wanted = [f"{m}@{k}" for k in ks for m in VIEW_METRICS]
    return per_user_metrics(recommendations, truth, ks=ks).select(MODEL, USER_IDX, *wanted)


def view_means(rows: pl.LazyFrame, *, ks: tuple[int, ...]) -> pl.DataFrame:
    """Mean recall, NDCG and hit rate at each K per model over `rows`, with n_users.

    `rows` is one row per (model, user) with the VIEW_METRICS columns (`view_rows`, possibly
    concatenated over user groups, or the evaluate stage's per-user frame): group_reduce sorts
    each model's values, so the means do not depend on how the users were grouped.
    """
    means = {f"{m}@{k}": pl.col(f"{m}@{k}") for k in ks for m in VIEW_METRICS}
    return (
        group_reduce(rows, (MODEL,), means=means, extra=(pl.len().alias("n_users"),))
        .sort(MODEL)
        .collect()
    )


def score_groups(
    recommendations: pl.LazyFrame,
    test: pl.LazyFrame,
    *,
    groups: list[pl.Expr],
    ks: tuple[int, ...],
    replay: pl.LazyFrame | None = None,
    train: pl.LazyFrame | None = None,
    tracks: pl.LazyFrame | None = None,
) -> dict[str, pl.DataFrame]:
    """The replay and new-artist views' per-user rows, reading each user group's lists once.

    For each filter of `groups` (`user_groups`), the group's lists are collected once and
    scored against the group's replay pairs and (with `train` and `tracks`) its new artists;
    the group's (model, artist) best ranks are kept for `artist_coverage`. One group's lists
    and truth are held at a time (800M events: 274M recommendations in 11 groups).

    Returns:
        "replay" and "new_artists": `view_rows` of every group, concatenated; "artist_ranks":
        model, artist, rank (the best rank <= max(ks) over the evaluated users' lists).
        Only the keys whose inputs were given.
    """
    parts: dict[str, list[pl.DataFrame]] = {}
    for where in groups:
        lists = recommendations.filter(where).select(MODEL, USER_IDX, RANK, TRACK_IDX).collect()
        scored: dict[str, pl.LazyFrame] = {}
        if replay is not None:
            scored["replay"] = view_rows(lists.lazy(), replay.filter(where), ks=ks)
        if train is not None and tracks is not None:
            group_test = test.filter(where)
            scored["new_artists"] = view_rows(
                artist_lists(lists.lazy(), tracks),
                new_artists(group_test, train.filter(where), tracks),
                ks=ks,
            )
            scored["artist_ranks"] = artist_ranks(lists.lazy(), group_test, tracks, ks=ks)
        for name, frame in scored.items():
            parts.setdefault(name, []).append(frame.collect(engine="streaming"))
    return {name: pl.concat(frames) for name, frames in parts.items()}


def segment_labels(edges: tuple[int, ...]) -> list[str]:
    """Names of the segments cut at `edges` (ascending, > 0): (1, 5, 20) -> 0, 1-4, 5-19, 20+."""
    bounds = [0, *edges]
    labels = [
        f"{lo}" if hi - lo == 1 else f"{lo}-{hi - 1}"
        for lo, hi in zip(bounds, bounds[1:], strict=False)
    ]
    return [*labels, f"{bounds[-1]}+"]


def activity_segments(
    train: pl.LazyFrame,
    users: pl.LazyFrame,
    *,
    edges: tuple[int, ...],
    counts: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Each user's segment by distinct training tracks.

    Args:
        train: Columns user_idx, track_idx (one row per training pair).
        users: Column user_idx: the users to label (users absent from train have 0 tracks).
        edges: Ascending segment edges > 0.
        counts: Distinct tracks of each user in `train` (user_idx, n_train_tracks), counted
            already (`counts.count_sorted_pairs`); None = counted here from `train`.

    Returns:
        Columns user_idx, n_train_tracks (UInt32), segment (String).
    """
    if counts is None:
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


def artist_ranks(
    recommendations: pl.LazyFrame, users: pl.LazyFrame, tracks: pl.LazyFrame, *, ks: tuple[int, ...]
) -> pl.LazyFrame:
    """Each (model, artist)'s best rank <= max(ks) over the lists of `users` (column user_idx).

    An artist is in some top K when its best rank is <= K: one row per (model, artist) is
    held, not every recommendation's artist per model; the best over user groups is the
    minimum of the groups' best ranks.
    """
    return (
        recommendations.filter(pl.col(RANK) <= max(ks))
        .join(users.select(USER_IDX).unique(), on=USER_IDX, how="semi")
        .with_columns(artist_of(tracks))
        .drop_nulls(ARTIST)
        .group_by(MODEL, ARTIST)
        .agg(pl.col(RANK).min())
    )


def artist_coverage(
    ranks: pl.LazyFrame, tracks: pl.LazyFrame, *, ks: tuple[int, ...]
) -> pl.DataFrame:
    """Share of the catalogue's artists in some evaluated user's top K, per model.

    Args:
        ranks: `artist_ranks` (possibly of several user groups concatenated).
        tracks: Column artist (the catalogue's artist codes).
        ks: Cut-offs (each <= the max(ks) of `ranks`).

    Returns:
        model and artist_coverage@<k> per K, sorted by model.
    """
    n_artists = tracks.select(pl.col(ARTIST).drop_nulls().n_unique()).collect().item()
    best = ranks.group_by(MODEL, ARTIST).agg(pl.col(RANK).min())
    return (
        best.group_by(MODEL)
        .agg(
            ((pl.col(RANK) <= k).sum() / max(n_artists, 1)).alias(f"artist_coverage@{k}")
            for k in ks
        )
        .sort(MODEL)
        .collect()
    )
