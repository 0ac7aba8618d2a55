import polars as pl
import pytest
from polars.testing import assert_frame_equal

from stages.generate import make_events, make_world
from stages.schema import ARTIST_NAME, GENRE, MS_PLAYED, TRACK_NAME, TRACK_URI, USER_ID


@pytest.fixture(scope="module")
def world():
    return make_world(n_users=400, n_tracks=600, n_genres=6, seed=3)


@pytest.fixture(scope="module")
def events(world):
    return make_events(world, n_events=60_000, seed=11)


def test_same_seed_gives_identical_events(world):
    assert_frame_equal(
        make_events(world, n_events=500, seed=5), make_events(world, n_events=500, seed=5)
    )
    assert not make_events(world, n_events=500, seed=5).equals(
        make_events(world, n_events=500, seed=6)
    )


def test_catalog_has_every_track_once_with_audio_features_in_range(world):
    catalog = world.catalog
    assert catalog.height == 600
    assert catalog[TRACK_URI].n_unique() == 600
    assert catalog["danceability"].is_between(0, 1).all()
    assert catalog["tempo"].is_between(60, 200).all()


def test_user_activity_is_heavy_tailed(events):
    plays = events.group_by(USER_ID).len().sort("len", descending=True)["len"].to_numpy()
    top_tenth = plays[: len(plays) // 10].sum() / plays.sum()
    assert top_tenth > 0.25  # uniform activity would give 0.10


def test_users_mostly_play_their_two_favourite_genres(world, events):
    genre_of = world.catalog.select(TRACK_URI, GENRE)
    by_user = (
        events.join(genre_of, on=TRACK_URI)
        .group_by(USER_ID, GENRE)
        .len()
        .with_columns((pl.col("len") / pl.col("len").sum().over(USER_ID)).alias("share"))
        .sort("share", descending=True)
        .group_by(USER_ID)
        .agg(pl.col("share").head(2).sum().alias("top2"), pl.col("len").sum().alias("n"))
        .filter(pl.col("n") >= 50)
    )
    # 85% of plays come from the two taste genres (plus a share of the 15% random picks)
    assert by_user["top2"].median() > 0.8


def test_a_quarter_of_plays_are_skips_under_30_seconds(events):
    share = (events[MS_PLAYED] < 30_000).mean()
    assert share == pytest.approx(0.25, abs=0.02)


def test_names_are_messy_like_real_logs(world, events):
    artists = set(events[ARTIST_NAME].unique().to_list())
    titles = events[TRACK_NAME].to_list()
    canonical = set(world.catalog[ARTIST_NAME].to_list())
    assert any(" feat. " in a for a in artists)
    assert any(a.isupper() for a in artists)
    assert any("(feat. " in t for t in titles)
    assert len(artists) > 2 * len(canonical & artists)  # several spellings per artist
    versions = world.catalog[TRACK_NAME].str.contains(
        r"Remaster|\(Live|Radio Edit|Remix|Mono|Acoustic"
    )
    assert 0.1 < versions.mean() < 0.3
