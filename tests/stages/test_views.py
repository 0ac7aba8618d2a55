import math

import numpy as np
import polars as pl
import pytest

from stages.evaluate.views import (
    activity_segments,
    artist_coverage,
    artist_lists,
    artist_ranks,
    by_segment,
    new_artists,
    score_groups,
    segment_labels,
    user_groups,
    view_means,
    view_rows,
)
from stages.schema import MODEL, RANK, TRACK_IDX, USER_IDX

U32 = pl.UInt32
# tracks 0-5; artists: 0 -> a, 1 -> a, 2 -> b, 3 -> c, 4 -> c, 5 unknown
TRACKS = pl.LazyFrame(
    {TRACK_IDX: [0, 1, 2, 3, 4, 5], "artist": [1, 1, 2, 3, 3, None]},
    schema={TRACK_IDX: U32, "artist": U32},
)


def _recs(lists: dict[int, list[int]], model: str = "m") -> pl.LazyFrame:
    rows = [(model, u, r, t) for u, ts in lists.items() for r, t in enumerate(ts, start=1)]
    return pl.LazyFrame(
        rows,
        schema={MODEL: pl.String, USER_IDX: U32, RANK: pl.UInt16, TRACK_IDX: U32},
        orient="row",
    )


def _shuffled_lists(
    rng: np.random.Generator, n_tracks: int, *, artists: int, users: int, length: int, cut: int
) -> tuple[pl.LazyFrame, dict[int, list[int]], pl.LazyFrame]:
    """Tracks with random artists, and two models' lists of them (model b's cut at `cut`),
    rows shuffled."""
    tracks = pl.LazyFrame(
        {TRACK_IDX: np.arange(n_tracks), "artist": rng.integers(0, artists, n_tracks)},
        schema={TRACK_IDX: U32, "artist": U32},
    )
    lists = {u: rng.choice(n_tracks, length, replace=False).tolist() for u in range(users)}
    recs = pl.concat([_recs(lists, "a"), _recs(lists, "b").filter(pl.col(RANK) <= cut)])
    return tracks, lists, recs.collect().sample(fraction=1.0, shuffle=True, seed=1).lazy()


def _pairs(rows: list[tuple[int, int]]) -> pl.LazyFrame:
    return pl.LazyFrame(rows, schema={USER_IDX: U32, TRACK_IDX: U32}, orient="row")


def test_artist_lists_keep_each_artists_best_rank_and_renumber():
    got = artist_lists(_recs({0: [0, 1, 5, 2, 3, 4]}), TRACKS).sort(RANK).collect()
    # tracks 0 and 1 are both artist 1; track 5 has no artist: artists 1, 2, 3 at ranks 1, 2, 3
    assert got.select(RANK, TRACK_IDX).rows() == [(1, 1), (2, 2), (3, 3)]


def test_artist_lists_equal_each_artists_best_rank_ranked_within_its_list():
    # random lists of 2 models with many repeated artists, rows shuffled; the reference is the
    # definition: an artist's best rank in the list, ordinal rank of those within the list
    rng = np.random.default_rng(3)
    n_tracks = 300
    tracks, lists, recs = _shuffled_lists(rng, n_tracks, artists=25, users=50, length=40, cut=30)
    want = (
        recs.join(tracks, on=TRACK_IDX)
        .group_by(MODEL, USER_IDX, "artist")
        .agg(pl.col(RANK).min())
        .with_columns(pl.col(RANK).rank("ordinal").over(MODEL, USER_IDX).cast(U32))
        .select(MODEL, USER_IDX, RANK, pl.col("artist").alias(TRACK_IDX))
    )
    key = (MODEL, USER_IDX, RANK)
    got = artist_lists(recs, tracks).collect().sort(key)
    assert got.height > 0
    assert got.equals(want.collect().sort(key))


def test_new_artists_are_test_artists_the_user_never_played_in_train():
    train = _pairs([(0, 0), (1, 3)])
    test = _pairs([(0, 1), (0, 2), (1, 4), (1, 0), (1, 5)])
    got = new_artists(test, train, TRACKS).sort(USER_IDX, TRACK_IDX).collect()
    # user 0 knew artist 1 (track 0): only artist 2 is new; user 1 knew artist 3: artist 1 is new
    assert got.rows() == [(0, 2), (1, 1)]


def test_artist_view_scores_distinct_artists():
    train = _pairs([(0, 0)])
    test = _pairs([(0, 2), (0, 3)])  # new artists 2 and 3
    recs = _recs({0: [1, 2, 4]})  # artists 1 (known), 2 (hit at artist rank 2), 3 (hit at 3)
    rows = view_rows(artist_lists(recs, TRACKS), new_artists(test, train, TRACKS), ks=(2,))
    got = view_means(rows, ks=(2,)).row(0, named=True)
    assert got["recall@2"] == pytest.approx(1 / 2)
    assert got["ndcg@2"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert got["n_users"] == 1


def test_artist_coverage_is_the_share_of_catalogue_artists_in_top_k():
    recs = _recs({0: [0, 2, 3], 1: [1, 5, 4]})
    ranks = artist_ranks(recs, _pairs([(0, 0), (1, 0)]), TRACKS, ks=(1, 3))
    got = artist_coverage(ranks, TRACKS, ks=(1, 3))
    # top 1: artist 1 (tracks 0 and 1) = 1 of 3; top 3: artists 1, 2, 3 = 3 of 3
    assert got.row(0, named=True) == {
        MODEL: "m",
        "artist_coverage@1": 1 / 3,
        "artist_coverage@3": 1.0,
    }


def test_segment_labels_and_membership_at_the_edges():
    assert segment_labels((1, 5, 20)) == ["0", "1-4", "5-19", "20+"]
    train = _pairs(
        [(1, t) for t in range(4)] + [(2, t) for t in range(5)] + [(3, t) for t in range(20)]
    )
    got = activity_segments(train, _pairs([(u, 0) for u in range(4)]), edges=(1, 5, 20))
    assert got.sort(USER_IDX).select(USER_IDX, "n_train_tracks", "segment").collect().rows() == [
        (0, 0, "0"),
        (1, 4, "1-4"),
        (2, 5, "5-19"),
        (3, 20, "20+"),
    ]


def test_by_segment_averages_each_segment_separately():
    per_user = pl.DataFrame(
        {MODEL: ["m"] * 3, USER_IDX: [0, 1, 2], "ndcg@5": [0.0, 0.4, 0.8]},
        schema={MODEL: pl.String, USER_IDX: U32, "ndcg@5": pl.Float64},
    )
    segments = pl.DataFrame(
        {USER_IDX: [0, 1, 2], "segment": ["0", "1-4", "1-4"]},
        schema={USER_IDX: U32, "segment": pl.String},
    )
    got = by_segment(per_user, segments, edges=(1, 5))
    assert got.rows() == [("m", "0", 1, 0.0), ("m", "1-4", 2, pytest.approx(0.6))]


def test_user_groups_put_every_user_in_exactly_one_range():
    users = pl.DataFrame({USER_IDX: [0, 1, 2, 3, 4, 5, 6, 7, 9, 1000]}, schema={USER_IDX: U32})
    groups = user_groups(8, groups=3)  # edges 2 and 5; 1000 is past n_users
    got = [users.filter(where)[USER_IDX].to_list() for where in groups]
    assert got == [[0, 1], [2, 3, 4], [5, 6, 7, 9, 1000]]
    assert users.filter(user_groups(8, groups=1)[0]).height == users.height


def test_weighted_user_groups_share_the_weight_and_keep_every_user_once():
    users = pl.DataFrame({USER_IDX: [*range(12), 50]}, schema={USER_IDX: U32})
    # user 0 alone weighs half: it is a range of its own, the rest share the other half
    weights = np.array([11.0, *[1.0] * 11])
    got = [users.filter(w)[USER_IDX].to_list() for w in user_groups(12, groups=2, weights=weights)]
    assert got == [[0], [*range(1, 12), 50]]
    rng = np.random.default_rng(3)
    weights = rng.pareto(1.2, 1000) + 1
    every = pl.DataFrame({USER_IDX: np.arange(1000)}, schema={USER_IDX: U32})
    members = [
        every.filter(w)[USER_IDX].to_numpy() for w in user_groups(1000, groups=8, weights=weights)
    ]
    assert np.array_equal(np.sort(np.concatenate(members)), np.arange(1000))
    assert all(weights[m].sum() <= weights.sum() / 8 + weights.max() for m in members)


@pytest.mark.parametrize("weighted", [False, True])
def test_views_by_user_groups_equal_all_users_at_once(weighted: bool):
    # two models' shuffled lists with repeated artists; replay and new-artist truth of some
    # users only, a replay user without lists, a test user beyond the groups' n_users
    rng = np.random.default_rng(5)
    n_tracks = 60
    tracks, lists, recs = _shuffled_lists(rng, n_tracks, artists=12, users=45, length=15, cut=9)

    def pairs(users: range, n: int) -> pl.LazyFrame:
        return _pairs([(u, int(t)) for u in users for t in rng.choice(n_tracks, n, replace=False)])

    test, train = pairs(range(0, 46, 2), 4), pairs(range(46), 6)
    replay = pl.concat([test, pairs(range(1, 50, 3), 3)])
    ks = (1, 3, 5)
    whole = {
        "replay": view_rows(recs, replay, ks=ks),
        "new_artists": view_rows(
            artist_lists(recs, tracks), new_artists(test, train, tracks), ks=ks
        ),
    }
    grouped = score_groups(
        recs,
        test,
        groups=user_groups(40, groups=4, weights=rng.pareto(1.0, 40) + 1 if weighted else None),
        ks=ks,
        replay=replay,
        train=train,
        tracks=tracks,
    )
    for view, rows in whole.items():
        want = view_means(rows, ks=ks)
        assert want["n_users"].sum() > 0
        assert view_means(grouped[view].lazy(), ks=ks).equals(want)
    want = artist_coverage(artist_ranks(recs, test, tracks, ks=ks), tracks, ks=ks)
    assert artist_coverage(grouped["artist_ranks"].lazy(), tracks, ks=ks).equals(want)
