"""Train/test split of clean plays by one of four protocols, without leakage.

temporal        one global cut-off: plays at or after it are the test period (the default for
                timestamped logs).
user-temporal   a cut-off per user: the last `test_last_n` plays (or the last `test_fraction` of
                the user's plays) are that user's test period; plays tied with the first of them
                go to the test period too, so the cut stays a clean "before / at or after".
user-random     a seeded `test_fraction` of each user's distinct tracks (all their plays) is test
                (the per-user hold-out of most published results; needs no timestamps).
held-out-users  a seeded `held_out_share` of users; each of them has `test_fraction` of their
                tracks held out as in user-random, the rest (the "known" tracks) stays in train,
                and every other user is all train (the Million Song Dataset challenge protocol,
                where the visible half of the test users' histories is training data).
Per-user strategies leave users with fewer than `min_user_tracks` distinct tracks all in train.

Pairs are aggregated after the cut, so no training row carries a play from the test period. The
test set is the discovery view: (user, track) pairs of the test period the user never played in
train. The replay view adds the pairs of the test period that were also played in train (only
temporal strategies have them). Both keep only users and tracks known in train.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Literal

import polars as pl

from stages.interactions import aggregate_pairs
from stages.schema import (
    FIRST_TS,
    LAST_TS,
    PLAY_COUNT,
    PLAYED_AT,
    SKIP_COUNT,
    TOTAL_MS_PLAYED,
    TRACK_IDX,
    USER_IDX,
    SchemaError,
)

PAIR = (USER_IDX, TRACK_IDX)
Strategy = Literal["temporal", "user-temporal", "user-random", "held-out-users"]
STRATEGIES: tuple[Strategy, ...] = ("temporal", "user-temporal", "user-random", "held-out-users")
TEMPORAL: tuple[Strategy, ...] = ("temporal", "user-temporal")
_TEST = "_test"
_IN_TRAIN = "_in_train"  # a test-period row whose pair also has a train row (replay only)
_KEY = "_key"  # user_idx * 2^33 + track_idx * 2 + period (1 = test): sorts as the triple
_USER_UNIT = 1 << 33
_AGGREGATES = (PLAY_COUNT, TOTAL_MS_PLAYED, FIRST_TS, LAST_TS, SKIP_COUNT)


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitSettings:
    """The settings every strategy reads; musicrec.toml's [split] table is these and more."""

    test_fraction: float = 0.2
    test_last_n: int = 0
    min_user_tracks: int = 5
    held_out_share: float = 0.1
    seed: int = 42


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitParams(SplitSettings):
    """How to split: the settings and the strategy that runs (see `resolve_strategy`)."""

    strategy: Strategy = "temporal"

    @classmethod
    def of(cls, settings: SplitSettings, strategy: Strategy) -> SplitParams:
        """The SplitSettings fields of `settings` (any subclass) with `strategy`."""
        fields = {f.name: getattr(settings, f.name) for f in dataclasses.fields(SplitSettings)}
        return cls(strategy=strategy, **fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class Split:
    """Train, test (discovery) and replay interactions (schema INTERACTIONS).

    `cutoff` is the global cut-off of the temporal strategy, None for the others.
    """

    train: pl.LazyFrame
    test: pl.LazyFrame
    replay: pl.LazyFrame
    cutoff: dt.datetime | None


def resolve_strategy(
    requested: str, *, has_timestamps: bool, source: str, n_users: int = 2
) -> Strategy:
    """The strategy to run: "auto" is temporal with timestamps and user-random without.

    One user's timestamped log (a person's own export) gets user-temporal: the last
    `test_fraction` of their plays, whatever gaps the time range has.

    Raises:
        SchemaError: A temporal strategy was asked for plays without timestamps.
    """
    if requested == "auto":
        if not has_timestamps:
            return "user-random"
        return "user-temporal" if n_users == 1 else "temporal"
    if requested in TEMPORAL and not has_timestamps:
        msg = (
            f"{source}: the plays have no timestamps (played_at is empty), so the {requested!r} "
            f"split cannot run; use --strategy user-random or held-out-users."
        )
        raise SchemaError(msg)
    if requested not in STRATEGIES:
        msg = f"split strategy {requested!r}: expected auto or one of {', '.join(STRATEGIES)}."
        raise ValueError(msg)
    return requested


def temporal_cutoff(
    time_range: tuple[dt.datetime, dt.datetime], *, test_fraction: float
) -> dt.datetime:
    """The instant that leaves the last `test_fraction` of the time range for testing."""
    start, end = time_range
    return start + (end - start) * (1.0 - test_fraction)


def choose_held_out_users(users: pl.LazyFrame, *, share: float, seed: int) -> pl.LazyFrame:
    """Exactly round(share x n_users) users, picked by a seeded hash of user_idx.

    Args:
        users: Column user_idx, one row per user.
        share: Share of users to hold out, in (0, 1).
        seed: Seed of the hash (the same for a seed and Polars version).

    Returns:
        Column user_idx of the held-out users, sorted. The same for the same users and seed.
    """
    n_users = pl.len()
    return (
        users.select(USER_IDX)
        .sort(pl.col(USER_IDX).hash(seed), USER_IDX)
        .filter(pl.int_range(n_users) < (n_users.cast(pl.Float64) * share).round())
        .sort(USER_IDX)
    )


def split_users(
    plays: pl.LazyFrame,
    *,
    params: SplitParams,
    cutoff: dt.datetime | None = None,
    held_out: pl.LazyFrame | None = None,
) -> Split:
    """The per-user part of `split_plays`, exact on any subset of users.

    Plays can be split one group of users at a time (bounded memory); the test and replay
    candidates it returns still need `keep_known_tracks` against the train pairs of all users.

    Args:
        plays: Schema PLAYS.
        params: The protocol.
        cutoff: The global cut-off (temporal only).
        held_out: Column user_idx of the held-out users (held-out-users only).
    """
    pairs = period_pairs(plays, params=params, cutoff=cutoff, held_out=held_out)
    return split_pairs(pairs, cutoff=cutoff)


def period_pairs(
    plays: pl.LazyFrame,
    *,
    params: SplitParams,
    cutoff: dt.datetime | None = None,
    held_out: pl.LazyFrame | None = None,
    sorted_plays: bool = False,
) -> pl.LazyFrame:
    """One row per (user, track, period) of `plays`, train period first: `split_pairs`' input.

    A pair played on both sides of a temporal cut has two rows: each period's plays are
    aggregated apart, so no training row carries a play from the test period. All three keys
    travel packed in one UInt64 (`_KEY`), which sorts as (user_idx, track_idx, period) does.

    Args:
        plays: Schema PLAYS; user_idx below 2^31.
        params: The protocol.
        cutoff: The global cut-off (temporal only).
        held_out: Column user_idx of the held-out users (held-out-users only).
        sorted_plays: The plays are sorted by (user_idx, track_idx, played_at), as
            plays.parquet is: a temporal period is then a run of rows, aggregated where it lies
            (no hash table, no sort); check the result with `runs_were_sorted`.

    Returns:
        Columns _KEY and the aggregates of `aggregate_pairs`, sorted by _KEY.
    """
    if params.strategy == "temporal":
        if cutoff is None:
            msg = "split_users: the temporal strategy needs a cutoff"
            raise ValueError(msg)
        marked = plays.with_columns((pl.col(PLAYED_AT) >= cutoff).alias(_TEST))
        return _aggregate_periods(marked, sorted_plays=sorted_plays)
    if params.strategy == "user-temporal":
        marked = _mark_last_plays(plays, params)
        return _aggregate_periods(marked, sorted_plays=sorted_plays)
    pairs = _aggregate_periods(
        plays.with_columns(pl.lit(value=False).alias(_TEST)), sorted_plays=sorted_plays
    )
    pairs = pairs.with_columns(
        (pl.col(_KEY) // _USER_UNIT).cast(pl.UInt32).alias(USER_IDX), _track()
    )
    if params.strategy == "held-out-users":
        if held_out is None:
            msg = "split_users: the held-out-users strategy needs the held-out users"
            raise ValueError(msg)
        pairs = pairs.join(
            held_out.select(USER_IDX).with_columns(pl.lit(value=True).alias("_held")),
            on=USER_IDX,
            how="left",
            maintain_order="left",
        )
    marked = _mark_random_tracks(pairs, params)
    # a pair has one row, in train or test: its period bit is the mark
    return marked.select((pl.col(_KEY) + pl.col(_TEST).cast(pl.UInt64)).alias(_KEY), *_AGGREGATES)


def _track() -> pl.Expr:
    return (pl.col(_KEY) // 2 % (1 << 32)).cast(pl.UInt32).alias(TRACK_IDX)


def _aggregate_periods(marked: pl.LazyFrame, *, sorted_plays: bool) -> pl.LazyFrame:
    """aggregate_pairs over (user, track, _TEST) packed in _KEY; sorted by _KEY."""
    key = (
        pl.col(USER_IDX).cast(pl.UInt64) * _USER_UNIT
        + pl.col(TRACK_IDX).cast(pl.UInt64) * 2
        + pl.col(_TEST).cast(pl.UInt64)
    )
    # a play whose time is unknown is in neither period of a temporal cut
    keyed = (
        marked.filter(pl.col(_TEST).is_not_null())
        .with_columns(key.alias(_KEY))
        .drop(USER_IDX, TRACK_IDX, _TEST)
    )
    if sorted_plays:
        # within a pair the plays are in time order, so the test period (at or after a cut)
        # follows the train period: _KEY is sorted too, and each group is one run of rows
        return aggregate_pairs(keyed.set_sorted(_KEY), keys=(_KEY,), maintain_order=True)
    return aggregate_pairs(keyed, keys=(_KEY,)).sort(_KEY)


def runs_were_sorted(pairs: pl.DataFrame) -> bool:
    """Whether `period_pairs(..., sorted_plays=True)` got sorted plays: its keys strictly rise.

    Aggregated runs of unsorted plays repeat a key or fall back; strictly rising keys mean
    every group was one run, so the result is exact.
    """
    keys = pairs[_KEY]
    return bool((keys.slice(1) > keys.slice(0, max(keys.len() - 1, 0))).all())


def split_pairs(pairs: pl.LazyFrame, *, cutoff: dt.datetime | None) -> Split:
    """Train, test and replay (before `keep_known_tracks`) from `period_pairs`' rows."""
    train, later = split_periods(pairs)
    test, replay = test_views(later)
    return Split(train=train, test=test, replay=replay, cutoff=cutoff)


def split_periods(pairs: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(train, later) from `period_pairs`' rows, both in their order.

    train: the train-period pairs (schema INTERACTIONS). later: the test-period pairs of
    users with train pairs, and _IN_TRAIN: the pair has a train row too (`test_views` splits
    them). A pair's train row, when it has one, is the row just before its test row
    (_KEY - 1), so the discovery view needs no join with train.
    """
    rows = pairs.with_columns(
        (pl.col(_KEY) // _USER_UNIT).cast(pl.UInt32).alias(USER_IDX),
        _track(),
        (pl.col(_KEY) % 2 == 1).alias(_TEST),
        ((pl.col(_KEY).shift(1) == pl.col(_KEY) - 1) & (pl.col(_KEY) % 2 == 1))
        .fill_null(value=False)
        .alias(_IN_TRAIN),
    )
    train = rows.filter(~pl.col(_TEST)).select(*PAIR, *_AGGREGATES)
    later = _known_users(rows.filter(pl.col(_TEST)), train).select(*PAIR, *_AGGREGATES, _IN_TRAIN)
    return train, later


def test_views(later: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(test, replay) of `split_periods`' later rows: the pairs new to train, and all of them."""
    test = later.filter(~pl.col(_IN_TRAIN)).drop(_IN_TRAIN)
    return test, later.drop(_IN_TRAIN)


def _known_users(candidates: pl.LazyFrame, train: pl.LazyFrame) -> pl.LazyFrame:
    return candidates.join(
        train.select(USER_IDX).unique(), on=USER_IDX, how="semi", maintain_order="left"
    )


def _mark_last_plays(plays: pl.LazyFrame, params: SplitParams) -> pl.LazyFrame:
    """_TEST = played at or after the user's cut-off: the time of their n-th latest play."""
    n_plays = pl.len()
    wanted = (
        pl.lit(params.test_last_n, pl.Int64)
        if params.test_last_n
        else (n_plays.cast(pl.Float64) * params.test_fraction).round().cast(pl.Int64)
    )
    n_test = pl.min_horizontal(pl.max_horizontal(wanted, 1), n_plays.cast(pl.Int64) - 1)
    cuts = (
        plays.group_by(USER_IDX)
        .agg(
            pl.col(PLAYED_AT).sort(descending=True).get(n_test - 1).alias("_cut"),
            pl.col(TRACK_IDX).n_unique().alias("_n_tracks"),
        )
        .filter(pl.col("_n_tracks") >= params.min_user_tracks)
        .select(USER_IDX, "_cut")
    )
    return (
        plays.join(cuts, on=USER_IDX, how="left", maintain_order="left")
        .with_columns((pl.col(PLAYED_AT) >= pl.col("_cut")).fill_null(value=False).alias(_TEST))
        .drop("_cut")
    )


def _mark_random_tracks(pairs: pl.LazyFrame, params: SplitParams) -> pl.LazyFrame:
    """_TEST on a seeded round(test_fraction x n) of each eligible user's n distinct tracks.

    Eligible: at least `min_user_tracks` tracks and, if the column _held exists, held out. At
    least one track is test and one stays in train.
    """
    n_tracks = pl.len().over(USER_IDX)
    n_test = pl.min_horizontal(
        pl.max_horizontal((n_tracks.cast(pl.Float64) * params.test_fraction).round(), 1),
        n_tracks - 1,
    )
    order = pl.struct(USER_IDX, TRACK_IDX).hash(params.seed)
    eligible = n_tracks >= params.min_user_tracks
    if "_held" in pairs.collect_schema():
        eligible = eligible & pl.col("_held").fill_null(value=False)
    position = pl.int_range(pl.len()).over(USER_IDX, order_by=[order, pl.col(TRACK_IDX)])
    return pairs.with_columns((eligible & (position < n_test)).alias(_TEST))


def keep_known_tracks(candidates: pl.LazyFrame, *, train: pl.LazyFrame) -> pl.LazyFrame:
    """Test candidates restricted to tracks that some user played in train; order kept."""
    return candidates.join(
        train.select(TRACK_IDX).unique(), on=TRACK_IDX, how="semi", maintain_order="left"
    )


def split_plays(
    plays: pl.LazyFrame, *, params: SplitParams, held_out: pl.LazyFrame | None = None
) -> Split:
    """Split plays (schema PLAYS) into aggregated train, test and replay interactions.

    The whole split in one call (the runner does the same in bounded memory, user range by
    user range). The temporal cut-off comes from the plays' time range; held-out users, when
    not given, are chosen from the users in `plays` with `params.seed`.

    Returns:
        Split: train, test and replay with one row per (user_idx, track_idx), sorted; test and
        replay only for users and tracks in train; no test pair in train.
    """
    cutoff = None
    if params.strategy == "temporal":
        time = pl.col(PLAYED_AT)
        lo, hi = plays.select(time.min().alias("lo"), time.max().alias("hi")).collect().row(0)
        cutoff = temporal_cutoff((lo, hi), test_fraction=params.test_fraction)
    if params.strategy == "held-out-users" and held_out is None:
        users = plays.select(USER_IDX).unique()
        held_out = choose_held_out_users(users, share=params.held_out_share, seed=params.seed)
    parts = split_users(plays, params=params, cutoff=cutoff, held_out=held_out)
    return Split(
        train=parts.train,
        test=keep_known_tracks(parts.test, train=parts.train),
        replay=keep_known_tracks(parts.replay, train=parts.train),
        cutoff=cutoff,
    )


def train_plays(plays: pl.LazyFrame, split: Split) -> pl.LazyFrame:
    """The plays behind `split.train`: to carve a validation set from train by the same protocol.

    Only the plays of train pairs, and for temporal strategies only those up to the pair's last
    training play (plays at or after a cut-off are test-period plays). Schema PLAYS.
    """
    last = split.train.select(*PAIR, pl.col(LAST_TS).alias("_last"))
    return (
        plays.join(last, on=PAIR, how="inner", maintain_order="left")
        .filter(pl.col("_last").is_null() | (pl.col(PLAYED_AT) <= pl.col("_last")))
        .drop("_last")
    )
