import datetime as dt
import math

import polars as pl
import pytest

from stages.features import confidence_weights, item_features, user_features
from stages.schema import INTERACTIONS

CUTOFF = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def _train():
    day = dt.timedelta(days=1)
    return pl.LazyFrame(
        {
            "user_idx": [0, 0, 1],
            "track_idx": [0, 1, 0],
            "play_count": [3, 1, 7],
            "total_ms_played": [600_000, 200_000, 1_400_000],
            "first_ts": [CUTOFF - 100 * day, CUTOFF - 10 * day, CUTOFF - 50 * day],
            "last_ts": [CUTOFF - 90 * day, CUTOFF - 10 * day, CUTOFF],
            "skip_count": [1, 0, 2],
        },
        schema=INTERACTIONS,
    )


def test_weight_is_log_plays_decayed_by_recency_down_to_the_floor():
    weights = confidence_weights(_train(), cutoff=CUTOFF, half_life_days=90.0, recency_floor=0.5)
    got = weights.collect()["weight"].to_list()
    expected = [
        math.log1p(3) * (0.5 + 0.5 * 0.5),  # last played one half-life ago
        math.log1p(1) * (0.5 + 0.5 * 2 ** (-10 / 90)),
        math.log1p(7) * 1.0,  # played at the cut-off
    ]
    assert got == pytest.approx(expected, rel=1e-6)


def test_item_features_count_listeners_and_fill_unheard_tracks_with_zero():
    items = pl.LazyFrame(
        {"track_idx": pl.Series([0, 1, 2], dtype=pl.UInt32), "energy": [0.1, 0.5, 0.9]}
    )
    got = item_features(_train(), items, n_users=2).collect()
    # popularity: share of the 2 users with training history
    assert got.select("track_idx", "train_plays", "train_listeners", "popularity").to_dicts() == [
        {"track_idx": 0, "train_plays": 10, "train_listeners": 2, "popularity": 1.0},
        {"track_idx": 1, "train_plays": 1, "train_listeners": 1, "popularity": 0.5},
        {"track_idx": 2, "train_plays": 0, "train_listeners": 0, "popularity": 0.0},
    ]
    assert got["energy"].to_list() == pytest.approx([0.1, 0.5, 0.9])


def test_user_features_describe_activity_and_recency():
    got = user_features(_train(), cutoff=CUTOFF).collect()
    assert got.select("user_idx", "n_plays", "n_tracks", "n_skips").to_dicts() == [
        {"user_idx": 0, "n_plays": 4, "n_tracks": 2, "n_skips": 1},
        {"user_idx": 1, "n_plays": 7, "n_tracks": 1, "n_skips": 2},
    ]
    assert got["days_since_last_play"].to_list() == pytest.approx([10.0, 0.0])
    assert got["active_days"].to_list() == pytest.approx([90.0, 50.0])


def test_weight_without_timestamps_is_log_plays_17():
    """A play-count table has no times: no recency decay, and no error (issue 17)."""
    untimed = _train().with_columns(pl.lit(None, INTERACTIONS["last_ts"]).alias("last_ts"))
    got = confidence_weights(untimed, cutoff=None, half_life_days=90.0, recency_floor=0.5)
    expected = [math.log1p(3), math.log1p(1), math.log1p(7)]
    assert got.collect()["weight"].to_list() == pytest.approx(expected, rel=1e-6)
    users = user_features(untimed, cutoff=None).collect()
    assert users["days_since_last_play"].null_count() == 2


def test_item_features_listeners_and_popularity_are_listener_shares():
    """train has one row per pair: counting rows gives listener_share's distinct users."""
    import numpy as np

    from stages.interactions import count_users, listener_share

    rng = np.random.default_rng(7)
    keys = np.unique(rng.integers(0, 30 * 20, 250))
    train = pl.LazyFrame(
        {
            "user_idx": keys // 20,
            "track_idx": keys % 20,
            "play_count": rng.integers(1, 9, len(keys)),
            "total_ms_played": [1] * len(keys),
            "first_ts": [CUTOFF] * len(keys),
            "last_ts": [CUTOFF] * len(keys),
            "skip_count": [0] * len(keys),
        },
        schema=INTERACTIONS,
    )
    n_users = count_users(train).collect().item()
    items = pl.LazyFrame({"track_idx": pl.Series(range(25), dtype=pl.UInt32)})
    got = item_features(train, items, n_users=n_users).collect()
    want = listener_share(train, n_users=n_users).collect()
    joined = got.join(want, on="track_idx", how="left").fill_null(0)
    assert joined["train_listeners"].to_list() == joined["listeners"].to_list()
    assert joined["popularity"].to_list() == joined["popularity_right"].to_list()
    assert got.filter(pl.col("track_idx") >= 20)["train_listeners"].to_list() == [0] * 5
