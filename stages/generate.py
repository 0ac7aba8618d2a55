"""Synthetic listening logs with the shape and the mess of real ones.

Users have genre tastes (so collaborative filtering has signal to find), user activity and track
popularity are Zipf-like, plays are spread over one year with skips, and names are messy the way
real exports are: case and spacing noise, accents dropped, "feat." credits, "The" moved, and
versions of one song ("- Remastered 2011", "(Live)") as separate catalogue tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from stages import generate_names as wording
from stages.schema import (
    ARTIST_NAME,
    AUDIO_FEATURES,
    GENRE,
    MS_PLAYED,
    PLAYED_AT,
    SKIPPED,
    TIMESTAMP,
    TRACK_NAME,
    TRACK_URI,
    USER_ID,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class World:
    """The hidden structure behind a synthetic log: catalogue, tastes and popularity.

    Attributes:
        catalog: One row per track (version): track_uri, artist_name, track_name, genre,
            duration_ms and the eight audio features.
        track_cdf: (n_tracks,) float64; inside genre g the values rise from g to g + 1, so
            `searchsorted(track_cdf, g + u)` draws a track of genre g by popularity.
        user_cdf: (n_users,) float64 cumulative activity share of each user.
        user_genres: (n_users, 2) int64 primary and secondary genre of each user.
        duration_ms: (n_tracks,) int64 track length.
        artist_spellings: (n_tracks * len(wording.ARTIST_NOISE),) spellings of each track's artist,
            track t's variant v at t * len(wording.ARTIST_NOISE) + v.
        title_spellings: (n_tracks * len(wording.TITLE_NOISE),) spellings of each track's title.
        user_ids: (n_users,) the users' external ids.
    """

    catalog: pl.DataFrame
    track_cdf: npt.NDArray[np.float64]
    user_cdf: npt.NDArray[np.float64]
    user_genres: npt.NDArray[np.int64]
    duration_ms: npt.NDArray[np.int64]
    artist_spellings: pl.Series
    title_spellings: pl.Series
    user_ids: pl.Series


def _ids(prefix: str, values: npt.NDArray[np.int64], width: int) -> pl.Series:
    """Zero-padded string ids such as "user_0000042"."""
    digits = pl.Series(values).cast(pl.String).str.zfill(width)
    return pl.select(pl.concat_str(pl.lit(prefix), pl.lit(digits))).to_series()


def make_world(*, n_users: int, n_tracks: int, n_genres: int, seed: int) -> World:
    """Draw the catalogue, genre tastes and popularity of a synthetic world.

    About 20% of tracks are extra versions (remaster, live, ...) of another track of the same
    artist. Audio features are drawn around a per-genre centre so that content has signal.
    """
    rng = np.random.default_rng(seed)
    n_songs = max(1, int(n_tracks / 1.25))
    n_artists = max(1, n_songs // 8)
    song_artist = np.sort(rng.integers(0, n_artists, n_songs))
    artist_genre = rng.integers(0, n_genres, n_artists)
    n_versions = n_tracks - n_songs
    track_song = np.concatenate([np.arange(n_songs), rng.integers(0, n_songs, n_versions)])
    version = np.concatenate(
        [np.full(n_songs, -1), rng.integers(0, len(wording.VERSIONS), n_versions)]
    )
    artist = song_artist[track_song]
    genre = artist_genre[artist]

    artist_names = wording.names(wording.FIRST, wording.SECOND, np.arange(n_artists)).gather(artist)
    titles = wording.names(
        wording.WORDS, wording.WORDS, rng.permutation(max(n_songs, 1))[track_song] + 7
    )
    suffix = pl.Series(wording.VERSIONS + [""]).gather(
        np.where(version < 0, len(wording.VERSIONS), version)
    )

    centres = rng.uniform(0.1, 0.9, (n_genres, len(AUDIO_FEATURES)))
    audio = np.clip(centres[genre] + rng.normal(0, 0.08, (n_tracks, len(AUDIO_FEATURES))), 0, 1)
    audio[:, AUDIO_FEATURES.index("tempo")] = 60 + 140 * audio[:, AUDIO_FEATURES.index("tempo")]
    duration = rng.integers(120_000, 360_000, n_tracks)
    catalog = pl.DataFrame(
        {
            TRACK_URI: _ids("gen:track:", np.arange(n_tracks), 8),
            ARTIST_NAME: artist_names,
            TRACK_NAME: titles + suffix,
            GENRE: _ids("genre_", genre, 2),
            "duration_ms": duration,
        }
    ).with_columns(
        [pl.Series(name, audio[:, i]).cast(pl.Float32) for i, name in enumerate(AUDIO_FEATURES)]
    )

    # popularity: Zipf inside each genre; versions are less popular than the original
    weight = 1.0 / (rng.permutation(n_tracks) + 1.0) ** 0.9 * np.where(version < 0, 1.0, 0.15)
    order = np.lexsort((-weight, genre))
    weight, sorted_genre = weight[order], genre[order]
    genre_total = np.bincount(sorted_genre, weights=weight, minlength=n_genres)
    within = np.cumsum(weight) - np.concatenate([[0.0], np.cumsum(genre_total)])[sorted_genre]
    track_cdf = sorted_genre + within / genre_total[sorted_genre]
    catalog = catalog[order]

    activity = 1.0 / (np.arange(n_users) + 10.0) ** 0.85
    user_genres = rng.integers(0, n_genres, (n_users, 2))
    names = catalog.select(ARTIST_NAME, TRACK_NAME).with_columns(
        catalog[ARTIST_NAME].gather(rng.integers(0, n_tracks, n_tracks)).alias("featured")
    )
    return World(
        catalog=catalog,
        track_cdf=track_cdf,
        user_cdf=np.cumsum(activity) / activity.sum(),
        user_genres=user_genres,
        duration_ms=duration[order],
        artist_spellings=names.select(pl.concat_list(wording.artist_spellings()))
        .to_series()
        .explode(),
        title_spellings=names.select(pl.concat_list(wording.title_spellings()))
        .to_series()
        .explode(),
        user_ids=_ids("user_", np.arange(n_users), 7),
    )


Indices = npt.NDArray[np.int64]


def draw_plays(
    world: World, n_events: int, rng: np.random.Generator, *, n_genres: int
) -> tuple[Indices, Indices, npt.NDArray[np.bool_]]:
    """(user, track, skipped) of `n_events` plays: the first draws of `make_events`, in order.

    Each play picks a user by activity, a genre from the user's taste (60% primary, 25%
    secondary, 15% any of `n_genres`) and a track of that genre by popularity; 25% of plays
    are skips.
    """
    n_users = len(world.user_cdf)
    user = np.minimum(np.searchsorted(world.user_cdf, rng.random(n_events)), n_users - 1)
    pick = rng.random(n_events)
    genre = np.where(
        pick < 0.6,
        world.user_genres[user, 0],
        np.where(pick < 0.85, world.user_genres[user, 1], rng.integers(0, n_genres, n_events)),
    )
    track = np.searchsorted(world.track_cdf, genre + rng.random(n_events) * 0.999999)
    track = np.minimum(track, len(world.track_cdf) - 1)
    return user, track, rng.random(n_events) < 0.25


def make_events(world: World, *, n_events: int, seed: int, year: int = 2024) -> pl.DataFrame:
    """Draw `n_events` plays from `world`: one row per play, columns of the raw log.

    Who plays what is `draw_plays`; then how long, when and under which spelling.
    """
    rng = np.random.default_rng(seed)
    # ceil of the last cdf value: one genre more than the world has when the float sum lands
    # above the genre count (the default world: 21 for 20); that genre's plays go to the last
    # track. Kept as it is, so generated data stays what it was.
    n_genres = int(np.ceil(world.track_cdf[-1]))
    user, track, skipped = draw_plays(world, n_events, rng, n_genres=n_genres)
    full = world.duration_ms[track]
    ms_played = np.where(skipped, rng.integers(1_000, 30_000, n_events), full)
    start = np.datetime64(f"{year}-01-01T00:00:00", "us").astype(np.int64)
    played_at = start + rng.integers(0, 365 * 86_400, n_events) * 1_000_000  # whole seconds

    n_artist, n_title = len(wording.ARTIST_NOISE), len(wording.TITLE_NOISE)
    artist_variant = np.searchsorted(
        np.cumsum(wording.ARTIST_NOISE), rng.random(n_events) * 100, side="right"
    )
    title_variant = np.searchsorted(
        np.cumsum(wording.TITLE_NOISE), rng.random(n_events) * 100, side="right"
    )
    return pl.DataFrame(
        [
            world.user_ids.gather(user).alias(USER_ID),
            pl.Series(PLAYED_AT, played_at).cast(TIMESTAMP),
            world.catalog[TRACK_URI].gather(track),
            world.artist_spellings.gather(track * n_artist + artist_variant).alias(ARTIST_NAME),
            world.title_spellings.gather(track * n_title + title_variant).alias(TRACK_NAME),
            pl.Series(MS_PLAYED, ms_played).cast(pl.Int32),
            pl.Series(SKIPPED, skipped),
        ]
    )
