"""The k-core and the renumbering on Spark give the Polars engine's users, tracks and rows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from stages.preprocess import encode
from stages.schema import INTERACTIONS, TRACK_IDX, USER_IDX
from stages.spark import kcore as spark_kcore
from stages.spark import polars_cast, to_spark_arrow
from stages.spark.preprocess import schema_of


def _pairs(rng: np.random.Generator, n: int = 600) -> pl.DataFrame:
    """Aggregated pairs with a long tail: many users and tracks fall below small minimums."""
    users = (rng.pareto(1.2, n) * 3).astype(int) % 60
    tracks = (rng.pareto(1.0, n) * 4).astype(int) % 80
    plays = pl.DataFrame({USER_IDX: users, TRACK_IDX: tracks, "played_at": None})
    plays = plays.with_columns(
        pl.lit(1_000).alias("ms_played"), pl.lit(value=False).alias("skipped")
    ).cast({USER_IDX: pl.UInt32, TRACK_IDX: pl.UInt32, "played_at": pl.Datetime("us", "UTC")})
    pairs = encode.aggregate_sorted_plays(plays.sort(USER_IDX, TRACK_IDX).lazy()).collect()
    return pairs.select(list(INTERACTIONS)).unique([USER_IDX, TRACK_IDX]).sort(USER_IDX, TRACK_IDX)


@pytest.mark.parametrize(
    ("min_user_tracks", "min_track_users", "max_rounds"),
    [
        (3, 3, 10),
        pytest.param(5, 2, 10, marks=pytest.mark.slow),
        pytest.param(4, 4, 1, marks=pytest.mark.slow),  # stopped by max_rounds
        pytest.param(1, 1, 10, marks=pytest.mark.slow),  # nothing removed
        pytest.param(500, 1, 10, marks=pytest.mark.slow),  # everything removed
    ],
)
def test_spark_kcore_keeps_the_polars_users_and_tracks(
    spark, min_user_tracks, min_track_users, max_rounds
):
    pairs = _pairs(np.random.default_rng(7))
    settings = {
        "min_user_tracks": min_user_tracks,
        "min_track_users": min_track_users,
        "max_rounds": max_rounds,
    }
    want_users, want_tracks, want_rounds = encode.kcore(pairs.lazy(), **settings)
    got_users, got_tracks, got_rounds = spark_kcore.kcore(
        spark.createDataFrame(to_spark_arrow(pairs)), **settings
    )
    assert_frame_equal(got_users, want_users)
    assert_frame_equal(got_tracks, want_tracks)
    assert got_rounds == want_rounds
    if (min_user_tracks, max_rounds) == (3, 10):  # the case is not trivial: several rounds ran
        assert want_rounds > 2
        assert 0 < want_users.height < pairs[USER_IDX].n_unique()


def test_spark_reindex_gives_the_polars_rows_in_order(spark):
    pairs = _pairs(np.random.default_rng(3))
    users, tracks, _ = encode.kcore(
        pairs.lazy(), min_user_tracks=3, min_track_users=3, max_rounds=10
    )
    lookups = {
        "users": encode.index_lookup(
            encode.new_index(users.lazy(), column=USER_IDX).collect(), size=60
        ),
        "tracks": encode.index_lookup(
            encode.new_index(tracks.lazy(), column=TRACK_IDX).collect(), size=80
        ),
    }
    want = encode.reindex(pairs.lazy(), **lookups).collect()
    frame = spark.createDataFrame(to_spark_arrow(pairs)).orderBy(USER_IDX, TRACK_IDX)
    got = spark_kcore.reindex(frame, schema=schema_of(lambda f: f, INTERACTIONS), **lookups)
    got_rows = polars_cast(pl.from_arrow(got.toArrow()).lazy(), INTERACTIONS).collect()
    assert_frame_equal(got_rows, want)  # same rows, same order
    assert 0 < want.height < pairs.height
