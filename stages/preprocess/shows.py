"""Podcast shows in a mixed log: Spotify's older account export lists episodes as tracks.

`StreamingHistory*.json` files from before Spotify split them into `_music_` and `_podcast_`
files give an episode as artistName = the show, trackName = the episode, with no field that
tells them from songs. Two rules drop them, each counted under its own drop reason:

- `listed` (`[preprocess].drop_shows`): every row whose artist is one of the names given
  (compared case-insensitively, spaces trimmed), in any format;
- `long_plays` (`[preprocess].show_minutes`, Spotify account data only): an artist more than
  half of whose plays (with a known ms_played), and at least two, lasted `show_minutes` or
  longer. Episodes run 20-60
  minutes and are mostly played long; songs of 15 minutes or more are rare, and an artist with
  a few of them (long ambient or classical works) still has most plays shorter. A per-play rule
  ("drop plays over 20 minutes") would drop those songs: on the real account sample it would
  have removed 12 plays of an ambient artist's 37 and no podcast.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from stages.schema import ARTIST_NAME, MS_PLAYED

SHOW = "show"  # raw column: null, or the rule that made the row's artist a show
LISTED = "listed"
LONG_PLAYS = "long_plays"
REASONS = {LISTED: "show_listed", LONG_PLAYS: "show_long_plays"}  # rule -> drop_reason


def _norm(name: pl.Expr) -> pl.Expr:
    return name.cast(pl.String).str.strip_chars().str.to_lowercase()


def long_play_shows(raw: pl.LazyFrame, *, minutes: float) -> pl.LazyFrame:
    """Artists with more than half, and two or more, of their plays `minutes` or longer.

    Args:
        raw: Raw columns with artist_name and ms_played (Int64, null where unknown).
        minutes: The play length of an episode; 0 finds none.

    Returns:
        artist_name, plays, long_plays (UInt32), one row per show found, sorted by plays.
    """
    timed = raw.filter(pl.col(MS_PLAYED).is_not_null() & pl.col(ARTIST_NAME).is_not_null())
    return (
        timed.group_by(ARTIST_NAME)
        .agg(
            pl.len().alias("plays"),
            (pl.col(MS_PLAYED) >= minutes * 60_000).sum().cast(pl.UInt32).alias("long_plays"),
        )
        .filter(
            (pl.col("long_plays") >= 2)
            & (pl.col("long_plays") * 2 > pl.col("plays"))
            & pl.lit(minutes > 0)
        )
        .sort(["plays", ARTIST_NAME], descending=[True, False])
    )


def mark_shows(raw: pl.LazyFrame, *, listed: Sequence[str], found: Sequence[str]) -> pl.LazyFrame:
    """`raw` with a `show` column: "listed", "long_plays" or null (a listed name wins).

    Args:
        raw: Raw columns with artist_name.
        listed: `[preprocess].drop_shows` (any case).
        found: Artist names as written, from `long_play_shows`.
    """
    artist = _norm(pl.col(ARTIST_NAME))
    wanted = pl.Series([n.strip().lower() for n in listed], dtype=pl.String)
    long = pl.Series(list(found), dtype=pl.String)
    return raw.with_columns(
        pl.when(artist.is_in(pl.lit(wanted).implode()))
        .then(pl.lit(LISTED))
        .when(pl.col(ARTIST_NAME).cast(pl.String).is_in(pl.lit(long).implode()))
        .then(pl.lit(LONG_PLAYS))
        .otherwise(pl.lit(None, pl.String))
        .alias(SHOW)
    )
