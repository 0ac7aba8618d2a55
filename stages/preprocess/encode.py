"""Encode plays: user buckets, provisional indexes, de-duplication, aggregation and the k-core.

The indexes `encode_plays` writes are provisional (users sorted by user_id, tracks by
track_id); `kcore_round` runs on the aggregated pairs until stable and `reindex` maps both to
the final contiguous ones. Both maps are monotonic, so sorted buckets concatenate to sorted
files.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from stages.interactions import aggregate_pairs
from stages.preprocess.parse import N_PLAYS, SPELLING
from stages.preprocess.values import WEIGHT
from stages.schema import (
    MS_PLAYED,
    PLAY_COUNT,
    PLAYED_AT,
    SKIPPED,
    TRACK_IDX,
    USER_ID,
    USER_IDX,
)

BUCKET = "bucket"
SPELLING_HASH = "spelling_hash"
PAIR_KEY = "pair_key"
_HIGH = 1 << 32  # user_idx * _HIGH + track_idx
DROPPED = np.iinfo(np.uint32).max  # index_lookup's value for an index the k-core removed


def assign_buckets(users: pl.LazyFrame, *, n_buckets: int) -> pl.LazyFrame:
    """Provisional user_idx (by user_id) and a bucket of contiguous users with similar plays.

    Args:
        users: One row per user_id with n_plays (bots already removed).
        n_buckets: Number of buckets, >= 1.

    Returns:
        user_id, user_idx (UInt32), bucket (UInt32): bucket b holds about 1/n_buckets of the
        plays, and user_idx increases with bucket.
    """
    before = pl.col(N_PLAYS).cum_sum() - pl.col(N_PLAYS)
    share = before.cast(pl.Float64) / pl.col(N_PLAYS).sum()
    return (
        users.sort(USER_ID)
        .with_row_index(USER_IDX)
        .select(
            USER_ID,
            pl.col(USER_IDX).cast(pl.UInt32),
            (share * n_buckets).floor().clip(0, n_buckets - 1).cast(pl.UInt32).alias(BUCKET),
        )
    )


def spelling_hash() -> pl.Expr:
    """64-bit hash of a play's SPELLING columns (a cheaper join key than four strings)."""
    return pl.struct(SPELLING).hash(seed=0).alias(SPELLING_HASH)


def encode_plays(
    plays: pl.LazyFrame,
    *,
    id_map: pl.LazyFrame,
    users: pl.LazyFrame,
    by_hash: bool = False,
    counted: bool = False,
) -> pl.LazyFrame:
    """Plays with provisional indexes: bucket, user_idx, track_idx, played_at, ms_played, skipped.

    A count table's rows (`counted`) also keep their count, as play_count (UInt32): counts
    stay counts, never one row per play.

    Args:
        plays: Kept rows of `parse_raw`.
        id_map: One row per SPELLING with track_idx (and spelling_hash if `by_hash`).
        users: user_id -> user_idx, bucket; plays of users not in it (bots) are dropped.
        by_hash: Join on spelling_hash instead of the four strings; only exact when the hashes
            of id_map's spellings are distinct, which the caller checks.
        counted: The plays are rows of a count table (parse's weight is their count).
    """
    count = [pl.col(WEIGHT).cast(pl.UInt32).alias(PLAY_COUNT)] if counted else []
    if by_hash:
        keyed = plays.with_columns(spelling_hash()).join(
            id_map.select(SPELLING_HASH, TRACK_IDX), on=SPELLING_HASH
        )
    else:
        keyed = plays.join(id_map.select(*SPELLING, TRACK_IDX), on=list(SPELLING), nulls_equal=True)
    return keyed.join(users.select(USER_ID, USER_IDX, BUCKET), on=USER_ID).select(
        BUCKET, USER_IDX, TRACK_IDX, PLAYED_AT, MS_PLAYED, SKIPPED, *count
    )


def pair_key() -> pl.Expr:
    """(user_idx, track_idx) packed into one UInt64 that sorts as the pair does."""
    return (pl.col(USER_IDX).cast(pl.UInt64) * _HIGH + pl.col(TRACK_IDX)).alias(PAIR_KEY)


def dedupe_plays(plays: pl.LazyFrame) -> pl.LazyFrame:
    """Drop repeated plays (same user, track and instant), sorted by user_idx, track_idx, played_at.

    Of duplicates the one with the longest ms_played is kept (exports repeat rows on resync).
    One sort on the packed pair key and a comparison with the next row: cheaper than
    `unique(maintain_order=True)` or a sort on four columns. Rows without a time (a count
    table's) are never duplicates: null is not equal to null here. Their count is a sort key
    too, so that the rows of one pair (two song ids with the same names) come out in one order,
    run after run.
    """
    keys = [PAIR_KEY, PLAYED_AT]
    count = [PLAY_COUNT] if PLAY_COUNT in plays.collect_schema() else []
    same_as_next = pl.all_horizontal([pl.col(k) == pl.col(k).shift(-1) for k in keys])
    return (
        plays.with_columns(pair_key())
        .sort([*keys, MS_PLAYED, *count], nulls_last=False)
        .filter(~same_as_next.fill_null(value=False))
        .select(USER_IDX, TRACK_IDX, PLAYED_AT, MS_PLAYED, SKIPPED, *count)
    )


def aggregate_sorted_plays(plays: pl.LazyFrame) -> pl.LazyFrame:
    """`aggregate_pairs` of plays sorted by (user_idx, track_idx), as `dedupe_plays` leaves them.

    One pass over the sorted runs of the packed pair key; the pairs come out sorted.
    """
    pairs = aggregate_pairs(
        plays.with_columns(pair_key()).set_sorted(PAIR_KEY), keys=(PAIR_KEY,), maintain_order=True
    )
    return pairs.select(
        (pl.col(PAIR_KEY) // _HIGH).cast(pl.UInt32).alias(USER_IDX),
        (pl.col(PAIR_KEY) % _HIGH).cast(pl.UInt32).alias(TRACK_IDX),
        pl.exclude(PAIR_KEY),
    )


def kcore_round(
    pairs: pl.LazyFrame, *, min_user_tracks: int, min_track_users: int
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Users with >= min_user_tracks tracks and tracks with >= min_track_users users in `pairs`.

    Returns:
        (user_idx frame, track_idx frame), each one column, sorted; one round of the k-core.
    """
    users = pairs.group_by(USER_IDX).len().filter(pl.col("len") >= min_user_tracks)
    tracks = pairs.group_by(TRACK_IDX).len().filter(pl.col("len") >= min_track_users)
    return users.select(USER_IDX).sort(USER_IDX), tracks.select(TRACK_IDX).sort(TRACK_IDX)


def kcore(
    pairs: pl.LazyFrame, *, min_user_tracks: int, min_track_users: int, max_rounds: int
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Users and tracks left after up to `max_rounds` rounds of `kcore_round`, or until stable.

    Each round collects two small frames (one row per user or track) with the streaming engine.

    Returns:
        (user_idx frame, track_idx frame, rounds run); the frames as `kcore_round` gives them.
    """
    users, tracks = pl.collect_all(
        [pairs.select(USER_IDX).unique(), pairs.select(TRACK_IDX).unique()], engine="streaming"
    )
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007
        current = pairs.join(users.lazy(), on=USER_IDX, how="semi").join(
            tracks.lazy(), on=TRACK_IDX, how="semi"
        )
        u, t = kcore_round(
            current, min_user_tracks=min_user_tracks, min_track_users=min_track_users
        )
        new_users, new_tracks = pl.collect_all([u, t], engine="streaming")
        stable = new_users.height == users.height and new_tracks.height == tracks.height
        users, tracks = new_users, new_tracks
        if stable:
            break
    return users, tracks, rounds


def new_index(kept: pl.LazyFrame, *, column: str) -> pl.LazyFrame:
    """Old `column` values (sorted) -> contiguous UInt32 `column`: columns old, new."""
    return (
        kept.select(pl.col(column).alias("old"))
        .sort("old")
        .with_row_index("new")
        .select("old", pl.col("new").cast(pl.UInt32))
    )


def index_lookup(mapping: pl.DataFrame, *, size: int) -> np.ndarray:
    """`new_index` output as an array: lookup[old] = new, DROPPED for olds not in `mapping`."""
    lookup = np.full(size, DROPPED, dtype=np.uint32)
    lookup[mapping["old"].to_numpy()] = mapping["new"].to_numpy()
    return lookup


def reindex(frame: pl.LazyFrame, *, users: np.ndarray, tracks: np.ndarray) -> pl.LazyFrame:
    """Keep rows whose user_idx and track_idx survive, renumbered; row order unchanged.

    `users` and `tracks` are `index_lookup` arrays: an array gather per batch of rows, which
    keeps the row order for free, where a join would have to restore it.
    """

    def through(lookup: np.ndarray) -> Callable[[pl.Series], pl.Series]:
        return lambda old: pl.Series(lookup[old.to_numpy()])

    return frame.with_columns(
        pl.col(column).map_batches(through(lookup), return_dtype=pl.UInt32, is_elementwise=True)
        for column, lookup in ((USER_IDX, users), (TRACK_IDX, tracks))
    ).filter((pl.col(USER_IDX) != DROPPED) & (pl.col(TRACK_IDX) != DROPPED))
