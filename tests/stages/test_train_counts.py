import numpy as np
import polars as pl

from stages.evaluate.counts import count_sorted_pairs
from stages.evaluate.views import activity_segments
from stages.interactions import count_users, listener_share
from stages.schema import LISTENERS, TRACK_IDX, USER_IDX


def _pairs(rng: np.random.Generator) -> pl.DataFrame:
    users = rng.integers(0, 300, 5000)
    tracks = rng.integers(0, 200, 5000)
    return (
        pl.DataFrame(
            {USER_IDX: users, TRACK_IDX: tracks}, schema={USER_IDX: pl.UInt32, TRACK_IDX: pl.UInt32}
        )
        .unique()
        .sort(USER_IDX, TRACK_IDX)
    )


def _counts(pairs: pl.DataFrame):  # noqa: ANN202
    return count_sorted_pairs(pairs[USER_IDX].to_numpy(), pairs[TRACK_IDX].to_numpy(), chunk=97)


def test_sorted_pair_counts_equal_the_group_bys(rng):
    pairs = _pairs(rng)
    got = _counts(pairs)
    assert got is not None
    assert got.n_users == count_users(pairs.lazy()).collect().item()
    want = listener_share(pairs.lazy(), n_users=1).select(TRACK_IDX, LISTENERS).sort(TRACK_IDX)
    assert got.listeners.sort(TRACK_IDX).equals(want.collect())
    users = pl.LazyFrame({USER_IDX: np.arange(320)}, schema={USER_IDX: pl.UInt32})
    segments = activity_segments(pairs.lazy(), users, edges=(5, 20)).sort(USER_IDX).collect()
    fast = activity_segments(pl.LazyFrame(), users, edges=(5, 20), counts=got.per_user.lazy()).sort(
        USER_IDX
    )
    assert segments["n_train_tracks"].max() > 0
    assert fast.collect().equals(segments)


def test_pairs_out_of_order_or_repeated_are_not_counted(rng):
    pairs = _pairs(rng)
    assert _counts(pairs.reverse()) is None
    assert _counts(pl.concat([pairs.head(150), pairs.slice(149)])) is None  # one pair twice
    swapped = pairs.with_columns(pl.col(TRACK_IDX).reverse().over(USER_IDX))
    assert _counts(swapped) is None
    empty = _counts(pairs.head(0))
    assert empty is not None
    assert (empty.n_users, empty.listeners.height, empty.per_user.height) == (0, 0, 0)
