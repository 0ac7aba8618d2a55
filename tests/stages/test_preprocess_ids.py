"""Names second, ids first: the name rules never join two recordings the data's ids keep apart.

A MusicBrainz recording id names one recording (MusicBrainz merges duplicates), so spellings
with two different ones stay two tracks, however alike their names; a Spotify track URI names a
release's track (one recording has one per album, single and compilation), so it joins
spellings but never splits same-named ones (issue 17).
"""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.preprocess import names

M1, M2, M3 = (f"{d}" * 8 + "-1111-1111-1111-" + f"{d}" * 12 for d in "123")


def _canon(rows: list[tuple[str, str, str | None, str | None, int]]) -> pl.DataFrame:
    """canonicalise of (artist, title, track_uri, track_mbid, plays) spellings."""
    frame = pl.LazyFrame(
        rows,
        schema={"artist_name": pl.String, "track_name": pl.String, "track_uri": pl.String,
                "track_mbid": pl.String, "n_plays": pl.Int64},
        orient="row",
    ).with_columns(pl.lit(None, pl.String).alias("artist_mbid"))  # fmt: skip
    return names.canonicalise(frame).collect()


def _track_of(canon: pl.DataFrame) -> dict[tuple[str, str | None, str | None], str]:
    rows = canon.select("track_name", "track_uri", "track_mbid", "track_id").rows()
    return {(t, u, m): tid for t, u, m, tid in rows}


def test_same_names_with_two_recording_ids_are_two_tracks() -> None:
    canon = _canon([("A", "Song", None, M1, 5), ("A", "Song", None, M2, 2),
                    ("A", "Song", None, None, 1)])  # fmt: skip
    got = _track_of(canon)
    assert got[("Song", None, M1)] == got[("Song", None, None)] == "a - song"
    assert got[("Song", None, M2)] == f"a - song [{M2}]"


def test_folded_names_with_different_recording_ids_stay_apart() -> None:
    canon = _canon([("Dune", "Song", None, M1, 3), ("Dúné", "Song", None, M2, 1)])
    assert canon["track_id"].n_unique() == 2


def test_same_names_with_two_spotify_uris_are_one_track() -> None:
    """One recording on an album and a single: the names join them (URIs never split)."""
    canon = _canon([("Miley Cyrus", "Flowers", "spotify:track:a", None, 4),
                    ("Miley Cyrus", "Flowers", "spotify:track:b", None, 1)])  # fmt: skip
    assert canon["track_id"].unique().to_list() == ["miley cyrus - flowers"]


def test_a_shared_uri_does_not_join_two_recordings() -> None:
    """ "y - other" (recording M2) shares URI u with "x - song" (M1) in its most played spelling."""
    canon = _canon([
        ("X", "Song", "u", None, 10), ("X", "Song", None, M1, 1),
        ("Y", "Other", None, M2, 3), ("Y", "Other", "u", None, 5),
    ])  # fmt: skip
    tracks = dict(canon.select("track_name", "track_id").unique().rows())
    assert tracks == {"Song": "x - song", "Other": "y - other"}


def test_a_uri_still_joins_a_spelling_without_a_recording_id() -> None:
    canon = _canon([
        ("X", "Song", "u", None, 10), ("X", "Song", None, M1, 1),
        ("X.", "Song (Remastered)", "u", None, 2),
    ])  # fmt: skip
    assert canon["track_id"].unique().to_list() == ["x - song"]


def test_two_recordings_moved_onto_one_track_without_an_id_part_again() -> None:
    """Both link by URI to "z - hub" (no MBID): the more played recording stays, one returns."""
    canon = _canon([
        ("Z", "Hub", "u1", None, 20), ("Z", "Hub", "u2", None, 20),
        ("P", "One", "u1", None, 9), ("P", "One", None, M1, 1),
        ("Q", "Two", "u2", None, 5), ("Q", "Two", None, M2, 1),
    ])  # fmt: skip
    tracks = dict(canon.select("track_name", "track_id").unique().rows())
    assert tracks == {"Hub": "z - hub", "One": "z - hub", "Two": "q - two"}


_ARTISTS = st.sampled_from(["Dune", "Dúné", "DUNE", "The Rose", "Rosé", "ROSÉ"])
_TITLES = st.sampled_from(["Song", "song", "Song (Live)", "Sóng"])
_URIS = st.sampled_from([None, "u1", "u2", "u3"])
_MBIDS = st.sampled_from([None, M1, M2, M3])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(_ARTISTS, _TITLES, _URIS, _MBIDS, st.integers(1, 9)), min_size=1,
                max_size=14, unique_by=lambda r: r[:4]))  # fmt: skip
def test_no_track_ever_holds_two_recording_ids(rows: list) -> None:
    canon = _canon(rows)
    per_track = canon.group_by("track_id").agg(pl.col("track_mbid").drop_nulls().n_unique())
    assert per_track["track_mbid"].max() <= 1


_NO_MBID_URIS = st.sampled_from([None, "u1", "u2", "u3", "u4"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_ARTISTS, _TITLES, _NO_MBID_URIS, st.integers(1, 99)), min_size=1,
                max_size=14, unique_by=(lambda r: r[:3], lambda r: r[3])))  # fmt: skip
def test_spellings_without_recording_ids_take_the_uri_path_to_the_same_tracks(rows: list) -> None:
    """No MBID anywhere skips the recording guards (recordings._by_uri): the same track ids.

    One unrelated spelling with an MBID (its own artist, no URI) sends the same rows through
    the full path, where it joins nothing; every other spelling must get the same ids. Play
    counts differ: between two targets of equal plays the move picks by row order in either
    path (`_move_to_rep` sorts by n_plays alone; changing that would change outputs).
    """
    spellings = [(a, t, u, None, n) for a, t, u, n in rows]
    fast = _canon(spellings)
    full = _canon([*spellings, ("Elsewhere", "Alone", None, M1, 1)]).filter(
        pl.col("artist_name") != "Elsewhere"
    )
    key = ["artist_name", "track_name", "track_uri"]
    assert fast.sort(key, nulls_last=True).equals(full.sort(key, nulls_last=True))


def test_a_uri_joins_spellings_without_any_recording_id() -> None:
    """Hand-made: "x - song" (10 plays on u) takes "x. - song remastered" (u) and nothing else."""
    canon = _canon([
        ("X", "Song", "u", None, 10), ("X.", "Song (Remastered)", "u", None, 2),
        ("X.", "Song (Remastered)", "v", None, 1), ("W", "Other", None, None, 4),
    ])  # fmt: skip
    tracks = dict(canon.select("track_uri", "track_id").rows())
    assert tracks == {"u": "x - song", "v": "x - song", None: "w - other"}
