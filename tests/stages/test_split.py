import datetime as dt

import numpy as np
import polars as pl
import pytest

from stages.schema import PLAYED_AT, PLAYS, TRACK_IDX, USER_IDX, SchemaError
from stages.split import (
    STRATEGIES,
    SplitParams,
    choose_held_out_users,
    keep_known_tracks,
    period_pairs,
    resolve_strategy,
    runs_were_sorted,
    split_plays,
    split_users,
    temporal_cutoff,
    train_plays,
)

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PAIRS = [USER_IDX, TRACK_IDX]


def _plays(rows, *, timestamps=True):
    """rows: (user_idx, track_idx, day)"""
    return pl.LazyFrame(
        {
            USER_IDX: [r[0] for r in rows],
            TRACK_IDX: [r[1] for r in rows],
            PLAYED_AT: [T0 + dt.timedelta(days=float(r[2])) if timestamps else None for r in rows],
            "ms_played": [200_000] * len(rows),
            "skipped": [False] * len(rows),
        },
        schema=PLAYS,
    )


def _random_plays(seed, n=2000, users=40, tracks=60):
    rng = np.random.default_rng(seed)
    rows = zip(
        rng.integers(0, users, n), rng.integers(0, tracks, n), rng.integers(0, 100, n), strict=True
    )
    return _plays(list(rows))


def _pairs(frame):
    return frame.select(USER_IDX, TRACK_IDX, "play_count").collect().rows()


def test_cutoff_leaves_the_last_fraction_of_the_time_range():
    assert temporal_cutoff(
        (T0, T0 + dt.timedelta(days=100)), test_fraction=0.2
    ) == T0 + dt.timedelta(days=80)


def test_train_counts_only_plays_before_the_cutoff_and_test_only_new_pairs():
    plays = _plays(
        [
            (0, 0, 0),  # first play: the time range is days 0..100, cut-off day 80
            (0, 0, 2),
            (0, 0, 90),  # pair played before and after: train, count 2; replay only
            (0, 1, 85),  # new after cut-off, known user & track: test
            (1, 1, 3),
            (1, 2, 95),
            (1, 2, 100),  # track 2 unknown in train: dropped
            (2, 0, 88),  # user 2 unknown in train: dropped
        ]
    )
    parts = split_plays(plays, params=SplitParams(strategy="temporal", test_fraction=0.2))
    assert parts.cutoff == T0 + dt.timedelta(days=80)
    assert _pairs(parts.train) == [(0, 0, 2), (1, 1, 1)]
    assert _pairs(parts.test) == [(0, 1, 1)]
    assert _pairs(parts.replay) == [(0, 0, 1), (0, 1, 1)]


@pytest.mark.parametrize("strategy", ["temporal", "user-temporal"])
def test_a_play_exactly_at_the_cutoff_is_test_and_never_lost_15(strategy):
    # user 0: 5 plays on days 0..3 and one exactly at the cut-off (day 80 of 0..100); for
    # user-temporal the cut-off of user 1 is its last play (day 100, tied with track 7's play)
    rows = [(0, t, t) for t in range(4)] + [(0, 5, 80), (0, 6, 100)]
    rows += [(1, t, t) for t in range(5)] + [(1, 6, 100), (1, 7, 100), (1, 0, 100)]
    rows += [(2, 5, 1), (2, 6, 2), (2, 7, 3), (2, 0, 4)]  # makes tracks 5-7 known in train
    params = SplitParams(strategy=strategy, test_fraction=0.2, test_last_n=1, min_user_tracks=1)
    parts = split_plays(_plays(rows), params=params)
    train, test, replay = _pairs(parts.train), _pairs(parts.test), _pairs(parts.replay)
    if strategy == "temporal":
        assert (0, 5, 1) in test  # at the cut-off: test, not train, not lost
        assert (0, 5, 1) not in train
    else:  # user 1's last plays are tied at day 100: all three are test-period plays
        assert [p for p in test if p[0] == 1] == [(1, 6, 1), (1, 7, 1)]
        assert [p for p in replay if p[0] == 1] == [(1, 0, 1), (1, 6, 1), (1, 7, 1)]
        assert (1, 0, 1) in train  # its day-0 play only
    total = sum(c for *_, c in train) + sum(c for *_, c in replay)
    assert total == len(rows)  # every play counted once (all users and tracks known here)


def _check_no_leakage(plays, parts, strategy):
    train, test, replay = (f.collect() for f in (parts.train, parts.test, parts.replay))
    assert test.height > 0
    assert train.join(test, on=PAIRS, how="inner").height == 0
    assert test.join(replay, on=PAIRS, how="anti").height == 0
    for frame in (test, replay):
        assert frame.join(train.select(USER_IDX).unique(), on=USER_IDX, how="anti").height == 0
        assert frame.join(train.select(TRACK_IDX).unique(), on=TRACK_IDX, how="anti").height == 0
    if strategy == "temporal":
        assert train["last_ts"].max() < parts.cutoff <= replay["first_ts"].min()
    if strategy == "user-temporal":
        per_user = (
            train.group_by(USER_IDX)
            .agg(pl.col("last_ts").max())
            .join(replay.group_by(USER_IDX).agg(pl.col("first_ts").min()), on=USER_IDX)
        )
        assert (per_user["last_ts"] < per_user["first_ts"]).all()
    n_plays = plays.select(pl.len()).collect().item()
    n_lost = n_plays - train["play_count"].sum() - replay["play_count"].sum()
    assert n_lost >= 0  # plays of pairs dropped by the "known in train" rule


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("seed", [1, 2])
def test_no_test_pair_leaks_into_train(strategy, seed):
    plays = _random_plays(seed)
    params = SplitParams(strategy=strategy, test_fraction=0.25, held_out_share=0.3, seed=seed)
    _check_no_leakage(plays, split_plays(plays, params=params), strategy)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_same_split_other_seed_other_split(strategy):
    plays = _random_plays(5)
    runs = [
        split_plays(plays, params=SplitParams(strategy=strategy, held_out_share=0.3, seed=s))
        for s in (7, 7, 8)
    ]
    first, again, other = (r.test.collect() for r in runs)
    assert first.equals(again)
    assert runs[0].train.collect().equals(runs[1].train.collect())
    if strategy not in ("temporal", "user-temporal"):
        assert not first.equals(other)


def test_user_random_holds_out_the_fraction_of_each_users_tracks():
    # user 0: 10 tracks -> round(0.3 * 10) = 3 test; user 1: 4 tracks < min 5 -> all train
    rows = [(0, t, 0) for t in range(10) for _ in range(2)] + [(1, t, 0) for t in range(4)]
    parts = split_users(  # before the "known in train" rule
        _plays(rows, timestamps=False),
        params=SplitParams(strategy="user-random", test_fraction=0.3, min_user_tracks=5),
    )
    test = parts.test.collect()
    assert test[USER_IDX].to_list() == [0, 0, 0]
    assert test["play_count"].to_list() == [2, 2, 2]
    assert parts.train.collect().height == 7 + 4
    assert parts.replay.collect().equals(test)


def test_user_temporal_takes_each_users_last_plays():
    rows = [(0, t, t) for t in range(10)] + [(1, t, 50 + t) for t in range(5)]
    parts = split_users(  # before the "known in train" rule
        _plays(rows), params=SplitParams(strategy="user-temporal", test_fraction=0.2)
    )
    assert _pairs(parts.test) == [(0, 8, 1), (0, 9, 1), (1, 4, 1)]


def test_held_out_users_keep_their_known_tracks_in_train_and_others_all():
    rows = [(u, t, 0) for u in range(10) for t in range(u % 3 * 2 + 5)]
    params = SplitParams(strategy="held-out-users", test_fraction=0.2, held_out_share=0.3, seed=3)
    held = choose_held_out_users(pl.LazyFrame({USER_IDX: list(range(10))}), share=0.3, seed=3)
    held_users = held.collect()[USER_IDX].to_list()
    assert len(held_users) == 3
    parts = split_plays(_plays(rows, timestamps=False), params=params)
    test = parts.test.collect()
    assert sorted(set(test[USER_IDX].to_list())) == held_users
    n_tracks = {u: u % 3 * 2 + 5 for u in range(10)}
    per_user = test.group_by(USER_IDX).len().rows()
    assert dict(per_user) == {u: round(0.2 * n_tracks[u]) or 1 for u in held_users}
    assert parts.train.collect().height + test.height == sum(n_tracks.values())


def test_choose_held_out_users_is_seeded_and_exact():
    users = pl.LazyFrame({USER_IDX: list(range(1000))}, schema={USER_IDX: pl.UInt32})
    a = choose_held_out_users(users, share=0.1, seed=1).collect()
    assert a.height == 100
    assert a.equals(choose_held_out_users(users, share=0.1, seed=1).collect())
    assert not a.equals(choose_held_out_users(users, share=0.1, seed=2).collect())


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_splitting_user_groups_separately_gives_the_same_split(strategy):
    plays = _plays([*_rows(9), (0, 999, 90)])
    params = SplitParams(strategy=strategy, test_fraction=0.25, held_out_share=0.3)
    whole = split_plays(plays, params=params)
    held = choose_held_out_users(plays.select(USER_IDX).unique(), share=0.3, seed=params.seed)
    groups = [plays.filter(pl.col(USER_IDX) % 3 == g) for g in range(3)]
    parts = [split_users(g, params=params, cutoff=whole.cutoff, held_out=held) for g in groups]
    train = pl.concat([p.train for p in parts]).sort(PAIRS)
    test = keep_known_tracks(pl.concat([p.test for p in parts]), train=train).sort(PAIRS)
    assert train.collect().equals(whole.train.collect())
    assert test.collect().equals(whole.test.sort(PAIRS).collect())


def _rows(seed, n=3000):
    rng = np.random.default_rng(seed)
    return list(
        zip(rng.integers(0, 50, n), rng.integers(0, 80, n), rng.integers(0, 100, n), strict=True)
    )


def test_known_tracks_rule_needs_every_user():
    plays = _plays([*_rows(9), (0, 999, 90)])  # track 999 only ever played after the cut-off
    whole = split_plays(plays, params=SplitParams(strategy="temporal", test_fraction=0.25))
    parts = split_users(
        plays.filter(pl.col(USER_IDX) == 0),
        params=SplitParams(strategy="temporal"),
        cutoff=whole.cutoff,
    )
    assert 999 in parts.test.collect()[TRACK_IDX].to_list()
    assert 999 not in whole.test.collect()[TRACK_IDX].to_list()


def test_plays_without_timestamps_default_to_user_random_and_refuse_temporal():
    assert resolve_strategy("auto", has_timestamps=False, source="p") == "user-random"
    assert resolve_strategy("auto", has_timestamps=True, source="p") == "temporal"
    for strategy in ("temporal", "user-temporal"):
        with pytest.raises(SchemaError, match=r"plays.parquet: .*no timestamps.*user-random"):
            resolve_strategy(strategy, has_timestamps=False, source="plays.parquet")
    assert resolve_strategy("held-out-users", has_timestamps=False, source="p") == "held-out-users"


def test_one_users_log_defaults_to_a_per_user_temporal_split():
    """One person's export: the last fraction of their plays, whatever gaps their time range has."""
    assert resolve_strategy("auto", has_timestamps=True, source="p", n_users=1) == "user-temporal"
    assert resolve_strategy("auto", has_timestamps=False, source="p", n_users=1) == "user-random"
    assert resolve_strategy("temporal", has_timestamps=True, source="p", n_users=1) == "temporal"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_validation_carved_from_train_plays_stays_inside_train(strategy):
    plays = _random_plays(4)
    params = SplitParams(strategy=strategy, test_fraction=0.25, held_out_share=0.3)
    outer = split_plays(plays, params=params)
    inner_plays = train_plays(plays, outer)
    assert (
        inner_plays.select(pl.len()).collect().item() == outer.train.collect()["play_count"].sum()
    )
    inner = split_plays(inner_plays, params=params)
    outer_train = outer.train.collect()
    for frame in (inner.train, inner.test):
        assert frame.collect().join(outer_train, on=PAIRS, how="anti").height == 0
    assert inner.test.collect().join(outer.test.collect(), on=PAIRS, how="inner").height == 0


def _period_pairs(plays, strategy, *, sorted_plays):
    params = SplitParams(strategy=strategy, test_fraction=0.25, held_out_share=0.3)
    cutoff = T0 + dt.timedelta(days=70)
    held = choose_held_out_users(plays.select(USER_IDX).unique(), share=0.3, seed=params.seed)
    return period_pairs(
        plays, params=params, cutoff=cutoff, held_out=held, sorted_plays=sorted_plays
    ).collect()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_pairs_aggregated_over_sorted_runs_equal_the_hashed_ones(strategy):
    plays = _random_plays(5).collect().sample(fraction=1.0, shuffle=True, seed=1)
    in_order = plays.sort(USER_IDX, TRACK_IDX, PLAYED_AT).lazy()
    runs = _period_pairs(in_order, strategy, sorted_plays=True)
    assert runs_were_sorted(runs)
    assert runs.equals(_period_pairs(plays.lazy(), strategy, sorted_plays=False))


def test_runs_of_unsorted_plays_are_caught():
    plays = _random_plays(5).collect().sample(fraction=1.0, shuffle=True, seed=1).lazy()
    assert not runs_were_sorted(_period_pairs(plays, "temporal", sorted_plays=True))


def test_a_pair_on_both_sides_of_the_cut_is_replay_only():
    # day 80 is the cut: pair (0, 1) both sides (replay), (0, 2) after only (test), user 1 no train
    rows = [(0, 0, 0), (0, 1, 10), (0, 1, 90), (0, 1, 95), (0, 2, 85), (1, 3, 90), (2, 0, 100)]
    parts = split_users(
        _plays(rows), params=SplitParams(strategy="temporal"), cutoff=T0 + dt.timedelta(days=80)
    )
    assert _pairs(parts.train) == [(0, 0, 1), (0, 1, 1)]
    assert _pairs(parts.replay) == [(0, 1, 2), (0, 2, 1)]
    assert _pairs(parts.test) == [(0, 2, 1)]
