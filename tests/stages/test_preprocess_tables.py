"""Output tables and the quality report of preprocess, on tiny frames with hand-computed answers."""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from stages.preprocess import names, tables
from stages.preprocess.quality import Counts, Survey, quality_report, survey_problem

SPELLINGS = pl.LazyFrame(
    {
        "artist_name": ["The Band", "Band", "Band", "Other", "BAND", "band", "The  Band", "Band"],
        "track_name": ["Song", "song", "Song (Live)", "Tune", "Song", "SONG", "song", "Song "],
        "artist_mbid": [None] * 8,
        "track_uri": [None] * 8,
        "n_plays": [5, 2, 1, 4, 1, 1, 1, 1],
    },
    schema_overrides={"artist_mbid": pl.String, "track_uri": pl.String},
)


def _numbered() -> tuple[pl.DataFrame, pl.DataFrame]:
    id_map = names.canonicalise(SPELLINGS).collect()
    tracks = tables.number_tracks(names.canonical_tracks(id_map.lazy())).collect()
    return tables.number_spellings(id_map.lazy(), tracks=tracks.lazy()).collect(), tracks


def test_tracks_are_numbered_in_track_id_order_and_spellings_point_at_them() -> None:
    id_map, tracks = _numbered()
    assert tracks.select("track_idx", "track_id").rows() == [
        (0, "band - song"),
        (1, "band - song live"),
        (2, "other - tune"),
    ]
    assert tracks.schema["track_idx"] == pl.UInt32
    by_name = dict(zip(id_map["track_name"], id_map["track_idx"], strict=False))
    assert by_name == {"Song": 0, "song": 0, "SONG": 0, "Song ": 0, "Song (Live)": 1, "Tune": 2}
    # sorted by track_idx, then spelling_hash
    assert id_map["track_idx"].is_sorted()
    assert id_map.filter(pl.col("track_idx") == 0)["spelling_hash"].is_sorted()


def test_track_stats_sums_plays_and_counts_listeners_of_played_tracks() -> None:
    matrix = sp.csr_matrix(np.array([[2, 0, 0, 1], [3, 0, 0, 0]], dtype=np.float32))
    stats = tables.track_stats(matrix)
    assert stats.rows() == [(0, 5, 2), (3, 1, 1)]  # tracks 1 and 2 have no listener
    assert stats.schema == pl.Schema(
        {"track_idx": pl.UInt32, "play_count": pl.Int64, "n_listeners": pl.UInt32}
    )


def test_track_stats_counted_in_blocks_equal_one_count(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    dense = rng.integers(0, 4, size=(40, 9)).astype(np.float32) * (rng.random((40, 9)) < 0.4)
    matrix = sp.csr_matrix(dense)
    monkeypatch.setattr(tables, "_BLOCK", 7)  # blocks end inside rows and between them
    stats = tables.track_stats(matrix)
    played = np.flatnonzero((dense > 0).sum(axis=0))
    assert stats["track_idx"].to_list() == played.tolist()
    assert stats["play_count"].to_list() == dense.sum(axis=0)[played].astype(int).tolist()
    assert stats["n_listeners"].to_list() == (dense > 0).sum(axis=0)[played].tolist()


def test_items_users_and_id_map_follow_the_final_indexes() -> None:
    id_map, tracks = _numbered()
    # the k-core kept tracks 0 and 2 (renumbered 0 and 1) and user "b" (provisional 1)
    track_map = pl.LazyFrame(
        {"old": [0, 2], "new": [0, 1]}, schema=[("old", pl.UInt32), ("new", pl.UInt32)]
    )
    stats = pl.LazyFrame(
        {"track_idx": [0, 1], "play_count": [7, 4], "n_listeners": [2, 1]},
        schema={"track_idx": pl.UInt32, "play_count": pl.Int64, "n_listeners": pl.UInt32},
    )
    items = tables.items_table(
        tracks.lazy(), track_map=track_map, stats=stats, catalog=None, id_map=id_map.lazy()
    ).collect()
    assert items.columns[0] == "track_idx"
    assert items.select("track_idx", "track_id", "play_count").rows() == [
        (0, "band - song", 7),
        (1, "other - tune", 4),
    ]
    users0 = pl.LazyFrame(
        {"user_id": ["a", "b"], "user_idx": [0, 1], "bucket": [0, 0]},
        schema={"user_id": pl.String, "user_idx": pl.UInt32, "bucket": pl.UInt32},
    )
    user_map = pl.LazyFrame(
        {"old": [1], "new": [0]}, schema=[("old", pl.UInt32), ("new", pl.UInt32)]
    )
    activity = pl.LazyFrame(
        {
            "user_id": ["a", "b"],
            "n_plays": [3, 9],
            "plays_per_day": [1.0, 4.5],
            "is_bot": [False] * 2,
        }
    )
    users = tables.users_table(users0, user_map=user_map, activity=activity).collect()
    assert users.rows() == [(0, "b", 9, 4.5)]
    assert users.columns == ["user_idx", "user_id", "n_plays", "plays_per_day"]
    final = tables.final_id_map(id_map.lazy(), track_map=track_map).collect()
    assert final["track_name"].to_list() == id_map["track_name"].to_list()  # order kept
    by_name = dict(zip(final["track_name"], final["track_idx"], strict=True))
    assert by_name == {
        "Song": 0, "song": 0, "SONG": 0, "Song ": 0, "Song (Live)": None, "Tune": 1,
    }  # fmt: skip
    assert "spelling_hash" not in final.columns


def _survey(reasons: dict[str, int], *, bots: int = 0) -> Survey:
    id_map, tracks = _numbered()
    activity = pl.DataFrame({"user_id": ["a", "b"], "n_plays": [bots, 6], "is_bot": [True, False]})
    return Survey(
        reasons=reasons, id_map=id_map, tracks=tracks, activity=activity, examples=[{"row": 1}]
    )


def test_survey_problem_names_the_first_reason_the_log_is_unusable() -> None:
    fine = _survey({"kept": 98, "bad_timestamp": 1, "short_play": 1})
    assert survey_problem(fine, fmt="spotify", max_bad_share=0.01) is None
    empty = survey_problem(_survey({}), fmt="lastfm1k", max_bad_share=0.01)
    assert empty == "the raw listening log has no rows; expected plays in format 'lastfm1k'."
    bad = survey_problem(
        _survey({"kept": 97, "bad_timestamp": 2, "bad_ms_played": 1}),
        fmt="spotify",
        max_bad_share=0.01,
    )
    assert bad is not None
    assert bad.startswith("3 of 100 rows (3.0%) have unreadable values (column 'played_at': 2, ")
    assert "first: {'row': 1}" in bad
    none_kept = survey_problem(_survey({"short_play": 4}), fmt="spotify", max_bad_share=0.01)
    assert none_kept == "no valid plays among 4 rows (short_play 4); check the format."


def test_quality_report_steps_chain_rows_out_into_rows_in() -> None:
    survey = _survey({"kept": 90, "missing_user": 6, "short_play": 4}, bots=10)
    counts = Counts(deduped=75, pairs=30, events=24, plays=70, rounds=2, n_buckets=1, users=1)
    items = pl.DataFrame({"track_idx": [0, 1], "danceability": [0.5, None]})
    report = quality_report(survey, counts, fmt="generate", max_bad_share=0.01, items=items)
    steps = {s["step"]: (s["rows_in"], s["rows_out"], s["dropped"]) for s in report["steps"]}
    assert steps == {
        "parse": (100, 94, {"missing_user": 6}),
        "min_ms_played": (94, 90, {"short_play": 4}),
        "bots": (90, 80, {"users": 1, "plays": 10}),
        "dedupe": (80, 75, {"duplicate_plays": 5}),
        "min_counts": (30, 24, {"pairs": 6}),
    }
    assert report["canonical"] == {
        "raw_artist_names": 6,
        "canonical_artists": 2,
        "raw_tracks": 8,
        "canonical_tracks": 3,
        "track_groups": 2,
        "artist_reduction": round(1 - 2 / 6, 4),
        "track_reduction": round(1 - 3 / 8, 4),
    }
    assert report["output"] == {
        "plays": 70, "pairs": 24, "users": 1, "tracks": 2, "tracks_with_audio_features": 1,
    }  # fmt: skip
    assert report["unparseable"] == {"rows": 0, "max_share": 0.01, "examples": [{"row": 1}]}
