"""Podcast shows in mixed Spotify account logs and names tables of play-count tables (issue 17)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from stages.preprocess import mapped, parse, quality, shows
from stages.preprocess.columns import SOURCE_FILE, UNKNOWN_ARTIST

MIN = 60_000


def _raw(rows: list[tuple[str, str, int]]) -> pl.LazyFrame:
    """Account-data rows (artist, title, ms_played) of one user, a minute apart."""
    start = dt.datetime(2023, 5, 1, tzinfo=dt.UTC)
    return pl.LazyFrame(
        {
            SOURCE_FILE: ["f.json"] * len(rows),
            "user_id": ["me"] * len(rows),
            "played_at": [start + dt.timedelta(minutes=i) for i in range(len(rows))],
            "artist_name": [a for a, _, _ in rows],
            "track_name": [t for _, t, _ in rows],
            "ms_played": [m for _, _, m in rows],
        }
    )


# a show (episodes played long, one stopped early), an ambient artist with one 41-minute
# track among short ones, and a song artist
ROWS = [
    ("Daily Show", "Ep. 1: Rain", 42 * MIN),
    ("Daily Show", "Ep. 2: Sun", 38 * MIN),
    ("Daily Show", "Ep. 3: Wind", 2 * MIN),
    ("Ambient One", "Ocean Waves", 41 * MIN),
    ("Ambient One", "Quiet", 4 * MIN),
    ("Ambient One", "Night", 5 * MIN),
    ("Band", "Song", 3 * MIN),
]


def test_long_play_rule_finds_the_show_not_the_artist_with_one_long_song() -> None:
    found = shows.long_play_shows(_raw(ROWS), minutes=15).collect()
    assert found.to_dicts() == [{"artist_name": "Daily Show", "plays": 3, "long_plays": 2}]
    assert shows.long_play_shows(_raw(ROWS), minutes=0).collect().height == 0
    # a per-play rule would have taken the ambient track: the rule is per artist on purpose
    assert shows.long_play_shows(_raw(ROWS), minutes=40).collect().height == 0


def test_shows_are_dropped_by_their_rule_and_counted_per_file() -> None:
    marked = shows.mark_shows(_raw(ROWS), listed=[" band "], found=["Daily Show"])
    parsed = parse.parse_raw(
        marked,
        ts_min=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        ts_max=dt.datetime(2100, 1, 1, tzinfo=dt.UTC),
        min_ms_played=30_000,
    ).collect()
    assert parsed["drop_reason"].to_list() == [
        *["show_long_plays"] * 3, None, None, None, "show_listed",
    ]  # fmt: skip
    files = quality.input_files(
        parse.file_reason_counts(parsed.lazy()).collect(), read=["f.json"], shown=["f.json"]
    )
    assert files[0]["rows_dropped"] == {"show_listed": 1, "show_long_plays": 3}
    assert (files[0]["rows_read"], files[0]["rows_kept"]) == (7, 3)


def test_a_listed_name_wins_over_the_long_play_rule() -> None:
    marked = shows.mark_shows(_raw(ROWS), listed=["DAILY SHOW"], found=["Daily Show"])
    assert marked.collect()[shows.SHOW].to_list()[:3] == ["listed"] * 3


def test_names_table_is_found_by_its_columns_beside_an_id_table() -> None:
    heads = {
        "10000.txt": ["b80344d0", "SOAKIMP12A8C130995", "1"],
        "song_data.csv": ["user_id", "song_id", "listen_count", "title", "release",
                          "artist_name", "year"],
        "song_df.csv": ["", "user_id", "song_id", "listen_count", "title", "artist_name"],
    }  # fmt: skip
    assert sorted(mapped.names_files(heads)) == ["song_data.csv", "song_df.csv"]
    # a count table with names alone is plays, not a names table
    assert mapped.names_files({"song_data.csv": heads["song_data.csv"]}) == []
    assert mapped.names_columns(["user", "artist", "plays"]) is None


def test_ids_get_their_names_and_unnamed_ids_stay_ids() -> None:
    raw = pl.LazyFrame(
        {
            "user_id": ["u1", "u1", "u2"],
            "artist_name": [UNKNOWN_ARTIST] * 3,
            "track_name": ["SOA", "SOB", "SOA"],
            "track_uri": ["SOA", "SOB", "SOA"],
            "play_count": ["3", "1", "2"],
        }
    )
    native = pl.LazyFrame(
        {
            SOURCE_FILE: ["n.csv"] * 3,
            "song_id": ["SOA", "SOA", "SOC"],  # the first row of an id wins
            "title": ["Undo", "Other", "Gone"],
            "artist_name": ["Björk", "X", "Y"],
        }
    )
    names = mapped.names_table(native, "n.csv")
    got = mapped.attach_names(raw, names).collect()
    assert got.select("artist_name", "track_name", "track_uri").rows() == [
        ("Björk", "Undo", "SOA"), (UNKNOWN_ARTIST, "SOB", "SOB"), ("Björk", "Undo", "SOA"),
    ]  # fmt: skip
