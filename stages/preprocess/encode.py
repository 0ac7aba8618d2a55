"""Encode plays: user buckets, provisional indexes, de-duplication, aggregation and the k-core.

The indexes `encode_plays` writes are provisional (users sorted by user_id, tracks by
track_id); `kcore` runs on the aggregated pairs until stable and `reindex` maps both to
the final contiguous ones. Both maps are monotonic, so sorted buckets concatenate to sorted
files.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from stages.preprocess.parse import N_PLAYS, SPELLING
from stages.preprocess.values import WEIGHT
from stages.schema import (
    FIRST_TS,
    LAST_TS,
    MS_PLAYED,
    PLAY_COUNT,
    PLAYED_AT,
    SKIP_COUNT,
    SKIPPED,
    TOTAL_MS_PLAYED,
    TRACK_IDX,
    USER_ID,
    USER_IDX,
)

BUCKET = "bucket"
SPELLING_HASH = "spelling_hash"
USER_HASH = "user_hash"
PAIR_KEY = "pair_key"
_HIGH = 1 << 32  # user_idx * _HIGH + track_idx
_TOP = (1 << 64) - 1  # the largest UInt64 (_pair_time_key)
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


def user_hash() -> pl.Expr:
    """64-bit hash of user_id: a join key about a third of the CPU of the string's."""
    return pl.col(USER_ID).hash(seed=0).alias(USER_HASH)


def encode_plays(
    plays: pl.LazyFrame,
    *,
    id_map: pl.LazyFrame,
    users: pl.LazyFrame,
    by_hash: bool = False,
    users_by_hash: bool = False,
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
        users_by_hash: Join users on `user_hash` instead of user_id; only exact when the
            hashes of every user_id of the plays (bots too, which `users` lacks) are
            distinct, which the caller checks. At 10M events the string join was ~1 CPU s.
        counted: The plays are rows of a count table (parse's weight is their count).
    """
    if by_hash and users_by_hash:
        return encode_hashed(hashed_plays(plays, counted=counted), id_map=id_map, users=users)
    count = [pl.col(WEIGHT).cast(pl.UInt32).alias(PLAY_COUNT)] if counted else []
    if by_hash:
        keyed = plays.with_columns(spelling_hash()).join(
            id_map.select(SPELLING_HASH, TRACK_IDX), on=SPELLING_HASH
        )
    else:
        keyed = plays.join(id_map.select(*SPELLING, TRACK_IDX), on=list(SPELLING), nulls_equal=True)
    if users_by_hash:
        keyed, users = keyed.with_columns(user_hash()), users.with_columns(user_hash())
    key = USER_HASH if users_by_hash else USER_ID
    return keyed.join(users.select(key, USER_IDX, BUCKET), on=key).select(
        BUCKET, USER_IDX, TRACK_IDX, PLAYED_AT, MS_PLAYED, SKIPPED, *count
    )


def hashed_plays(plays: pl.LazyFrame, *, counted: bool = False) -> pl.LazyFrame:
    """Kept plays as `encode_hashed` reads them: user_hash, spelling_hash and the play's values.

    33 bytes a play, where the strings they stand for are most of a parsed row: the survey keeps
    a batch's plays so, and the encoding needs no second parse of the raw files.
    Columns: user_hash, spelling_hash, played_at, ms_played, skipped (and play_count, UInt32,
    of a count table's rows).
    """
    count = [pl.col(WEIGHT).cast(pl.UInt32).alias(PLAY_COUNT)] if counted else []
    return plays.select(user_hash(), spelling_hash(), PLAYED_AT, MS_PLAYED, SKIPPED, *count)


def encode_hashed(
    hashed: pl.LazyFrame, *, id_map: pl.LazyFrame, users: pl.LazyFrame
) -> pl.LazyFrame:
    """`encode_plays` of `hashed_plays` rows.

    Exact only when the spelling hashes of `id_map` and the user hashes of every user of the
    log (bots too) are distinct, which the caller checks.
    """
    count = [PLAY_COUNT] if PLAY_COUNT in hashed.collect_schema() else []
    return (
        hashed.join(id_map.select(SPELLING_HASH, TRACK_IDX), on=SPELLING_HASH)
        .join(users.select(user_hash(), USER_IDX, BUCKET), on=USER_HASH)
        .select(BUCKET, USER_IDX, TRACK_IDX, PLAYED_AT, MS_PLAYED, SKIPPED, *count)
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


def dedupe_bucket(plays: pl.DataFrame) -> pl.DataFrame:
    """`dedupe_plays` of plays in memory (a bucket), with about 2/3 of its sort's CPU.

    Polars' sort on (pair_key, played_at, ms_played) compares the later keys at every tie of
    the first, and the plays of a pair are all ties of pair_key: the leading key here is
    `_pair_time_key`, which orders as (pair, played_at) and ties only within a pair's plays
    a few seconds apart, with played_at, ms_played (and play_count) after it as before: the
    same order (18.7M plays of a 100M-event bucket: 5.9 -> 3.6 s wall, 10.7 -> 6.1 CPU s).
    Both sorts are unstable: rows equal on every key may come out in another order, which
    changes nothing unless they differ in skipped; such a bucket goes through `dedupe_plays`.
    """
    count = [PLAY_COUNT] if PLAY_COUNT in plays.columns else []
    columns = [USER_IDX, TRACK_IDX, PLAYED_AT, MS_PLAYED, SKIPPED, *count]
    ordered = plays.sort([_pair_time_key(plays), PLAYED_AT, MS_PLAYED, *count], nulls_last=False)
    nxt = {c: pl.col(c).shift(-1) for c in columns}
    tied = [pl.col(c).eq_missing(nxt[c]) for c in columns if c != SKIPPED]
    tied.append(pl.col(SKIPPED).ne_missing(nxt[SKIPPED]))
    if ordered.select(pl.all_horizontal(tied).any()).item():
        return dedupe_plays(plays.lazy()).collect(engine="in-memory")
    same_as_next = pl.all_horizontal(pl.col(k) == nxt[k] for k in (USER_IDX, TRACK_IDX, PLAYED_AT))
    return ordered.filter(~same_as_next.fill_null(value=False)).select(columns)


def _pair_time_key(plays: pl.DataFrame) -> pl.Expr:
    """UInt64 that orders as (user_idx, track_idx, played_at), nulls first, with ties.

    The pair's number among the frame's users x tracks times the slots that fit below 2^64,
    plus played_at in `step`-us slots (null: 0, as an earlier time); `step` is the frame's
    time span over the slots, so a pair's plays closer than `step` tie (a few seconds for a
    bucket of 1M users x 800K tracks over a year), and so does everything at once if the
    pairs alone fill 64 bits.
    """
    bounds = plays.select(
        pl.col(USER_IDX).min().alias("u0"),
        pl.col(USER_IDX).max().alias("u1"),
        pl.col(TRACK_IDX).max().alias("t1"),
        pl.col(PLAYED_AT).dt.epoch("us").min().alias("a"),
        pl.col(PLAYED_AT).dt.epoch("us").max().alias("z"),
    ).row(0)
    if bounds[0] is None:  # no plays
        return pl.col(USER_IDX).cast(pl.UInt64)
    first_user, tracks = int(bounds[0]), int(bounds[2]) + 1
    users = int(bounds[1]) - first_user + 1
    first, last = (0, 0) if bounds[3] is None else (int(bounds[3]), int(bounds[4]))
    slots = _TOP // (users * tracks)
    step = (last - first) // slots + 1
    pair = (pl.col(USER_IDX).cast(pl.UInt64) - first_user) * pl.lit(tracks, pl.UInt64)
    time: pl.Expr = (pl.col(PLAYED_AT).dt.epoch("us") - first) // step
    key: pl.Expr = (pair + pl.col(TRACK_IDX)) * pl.lit(slots, pl.UInt64)
    return key + time.fill_null(0).cast(pl.UInt64)


def aggregate_sorted_plays(plays: pl.LazyFrame) -> pl.LazyFrame:
    """`aggregate_pairs` of plays sorted by user_idx, track_idx, played_at (`dedupe_plays`).

    No group-by: a pair's plays are one run of the sorted rows, so its sums are differences
    of running sums at the run's last row, its last_ts is that row's played_at (nulls sort
    first: null only when every play's is) and its first_ts the run's first time that is not
    null (the times filled backwards from the run's first row, which stay in the run unless
    the run has none). About 35% less CPU than `group_by(maintain_order=True)` on the packed
    key (8M plays: 0.5-0.6 against 0.8 CPU s). The pairs come out sorted.
    """
    key, ts, last_ts = pl.col(PAIR_KEY), pl.col(PLAYED_AT), pl.col(LAST_TS)
    counted = PLAY_COUNT in plays.collect_schema()
    running = {  # running sums over the rows
        PLAY_COUNT: pl.col(PLAY_COUNT).cast(pl.Int64).cum_sum()
        if counted
        else pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        TOTAL_MS_PLAYED: pl.col(MS_PLAYED).cast(pl.Int64).fill_null(0).cum_sum(),
        SKIP_COUNT: pl.col(SKIPPED).cast(pl.Int64).fill_null(0).cum_sum(),
    }

    def per_run(column: str) -> pl.Expr:
        return pl.col(column) - pl.col(column).shift(1, fill_value=0)

    run_first = key != key.shift(1).fill_null(key + 1)
    return (
        plays.with_columns(pair_key())
        .select(
            key,
            *(v.alias(c) for c, v in running.items()),
            pl.when(run_first).then(ts.backward_fill()).forward_fill().alias(FIRST_TS),
            ts.alias(LAST_TS),
            (key != key.shift(-1)).fill_null(value=True).alias("_run_last"),
        )
        .filter("_run_last")
        .select(
            (key // _HIGH).cast(pl.UInt32).alias(USER_IDX),
            (key % _HIGH).cast(pl.UInt32).alias(TRACK_IDX),
            per_run(PLAY_COUNT).cast(pl.UInt32),
            per_run(TOTAL_MS_PLAYED),
            pl.when(last_ts.is_not_null()).then(pl.col(FIRST_TS)).alias(FIRST_TS),
            last_ts,
            per_run(SKIP_COUNT).cast(pl.UInt32),
        )
    )


def kcore(
    pairs: pl.LazyFrame, *, min_user_tracks: int, min_track_users: int, max_rounds: int
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Users with >= min_user_tracks tracks and tracks with >= min_track_users users, in rounds.

    A round counts each user's tracks and each track's users among the pairs whose user and
    track both survived the round before (the first round: every pair), and keeps those at
    the minimums; it runs until a round keeps as many users and tracks as it was given, or
    `max_rounds` rounds. The counts are numpy bincounts over batches of the two index
    columns, with the surviving sets as boolean arrays indexed by user_idx and track_idx
    (9 bytes per user and per track with the counts): at 100M events (51M pairs, 3 rounds)
    3.5 CPU s against 17.8 for Polars semi-joins and group-bys per round (docs/preprocess.md).
    The first round's counts are the ones that found the users and tracks, so it reads no
    pairs of its own.

    Returns:
        (user_idx frame, track_idx frame, rounds run): each one sorted UInt32 column.
    """
    keys = pairs.select(USER_IDX, TRACK_IDX)
    user_n, track_n = _degrees(keys, None)
    users, tracks = user_n > 0, track_n > 0  # every user and track of a pair
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007
        if rounds > 1:
            user_n, track_n = _degrees(keys, (users, tracks))
        new_users = (user_n > 0) & (user_n >= min_user_tracks)
        new_tracks = (track_n > 0) & (track_n >= min_track_users)
        stable = new_users.sum() == users.sum() and new_tracks.sum() == tracks.sum()
        users, tracks = new_users, new_tracks
        if stable:
            break
    return _kept(users, USER_IDX), _kept(tracks, TRACK_IDX), rounds


def _degrees(
    keys: pl.LazyFrame, alive: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs per user_idx and per track_idx among the `keys` rows whose both ends are `alive`.

    Without `alive`, of every row; the arrays then have max index + 1 entries (the sizes that
    the later calls' `alive` arrays keep).
    """
    if alive is None:
        tops = keys.select(pl.all().max()).collect()
        sizes = [0 if v is None else int(v) + 1 for v in tops.row(0)]
    else:
        sizes = [len(alive[0]), len(alive[1])]
    user_n, track_n = np.zeros(sizes[0], np.int64), np.zeros(sizes[1], np.int64)
    for batch in keys.collect_batches(chunk_size=_KCORE_BATCH):
        users, tracks = batch[USER_IDX].to_numpy(), batch[TRACK_IDX].to_numpy()
        if alive is not None:
            both = alive[0][users] & alive[1][tracks]
            users, tracks = users[both], tracks[both]
        user_n += np.bincount(users, minlength=sizes[0])
        track_n += np.bincount(tracks, minlength=sizes[1])
    return user_n, track_n


_KCORE_BATCH = 1 << 22  # pairs counted at once: two bincounts' copies, ~64 MiB


def _kept(alive: np.ndarray, column: str) -> pl.DataFrame:
    return pl.DataFrame({column: np.flatnonzero(alive).astype(np.uint32)})


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
