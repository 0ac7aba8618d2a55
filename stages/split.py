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
from stages.schema import LAST_TS, PLAYED_AT, TRACK_IDX, USER_IDX, SchemaError

PAIR = (USER_IDX, TRACK_IDX)
Strategy = Literal["temporal", "user-temporal", "user-random", "held-out-users"]
STRATEGIES: tuple[Strategy, ...] = ("temporal", "user-temporal", "user-random", "held-out-users")
TEMPORAL: tuple[Strategy, ...] = ("temporal", "user-temporal")
_TEST = "_test"


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
    if params.strategy == "temporal":
        if cutoff is None:
            msg = "split_users: the temporal strategy needs a cutoff"
            raise ValueError(msg)
        return _cut_plays(plays.with_columns((pl.col(PLAYED_AT) >= cutoff).alias(_TEST)), cutoff)
    if params.strategy == "user-temporal":
        return _cut_plays(_mark_last_plays(plays, params), None)
    pairs = aggregate_pairs(plays, keys=PAIR)
    if params.strategy == "held-out-users":
        if held_out is None:
            msg = "split_users: the held-out-users strategy needs the held-out users"
            raise ValueError(msg)
        pairs = pairs.join(
            held_out.select(USER_IDX).with_columns(pl.lit(value=True).alias("_held")),
            on=USER_IDX,
            how="left",
        )
    marked = _mark_random_tracks(pairs, params).drop("_held", strict=False)
    train = marked.filter(~pl.col(_TEST)).drop(_TEST).sort(PAIR)
    test = _known_users(marked.filter(pl.col(_TEST)).drop(_TEST), train).sort(PAIR)
    return Split(train=train, test=test, replay=test, cutoff=None)


def _cut_plays(plays: pl.LazyFrame, cutoff: dt.datetime | None) -> Split:
    """Aggregate plays on each side of the boolean _TEST column."""
    train = aggregate_pairs(plays.filter(~pl.col(_TEST)), keys=PAIR).sort(PAIR)
    later = aggregate_pairs(plays.filter(pl.col(_TEST)), keys=PAIR)
    replay = _known_users(later, train).sort(PAIR)
    test = replay.join(train.select(PAIR), on=PAIR, how="anti", maintain_order="left")
    return Split(train=train, test=test, replay=replay, cutoff=cutoff)


def _known_users(candidates: pl.LazyFrame, train: pl.LazyFrame) -> pl.LazyFrame:
    return candidates.join(train.select(USER_IDX).unique(), on=USER_IDX, how="semi")


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
        plays.join(cuts, on=USER_IDX, how="left")
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
