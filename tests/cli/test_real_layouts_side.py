"""Older mixed Spotify account exports with podcasts, and count tables with a names table.

Fixtures in their real layout, built in code (issue 17); see test_real_layouts.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from tests.cli.test_real_layouts import SONGS, _preprocess

MIN = 60_000


def _mixed_history() -> list[dict[str, Any]]:
    """Songs (3-4 min, one 41-minute ambient track) and two shows' episodes, as one file."""
    rows = [
        {"endTime": f"2020-03-{d:02d} 1{i}:00", "artistName": a, "trackName": t,
         "msPlayed": (41 if (d, i) == (1, 0) else 3) * MIN}
        for d in (1, 2) for i, (a, t) in enumerate(SONGS)
    ]  # fmt: skip
    rows += [
        {"endTime": f"2020-03-0{d} 08:00", "artistName": "Morning Talk",
         "trackName": f"#{d} The news", "msPlayed": 45 * MIN}
        for d in (1, 2, 3)
    ]  # fmt: skip
    rows.append({"endTime": "2020-03-04 09:00", "artistName": "Short Takes",
                 "trackName": "Episode 9", "msPlayed": 6 * MIN})  # fmt: skip
    return rows


def test_podcasts_in_a_mixed_account_export_are_dropped_and_counted(tmp_path: Path) -> None:
    raw = tmp_path / "MyData"
    raw.mkdir()
    (raw / "StreamingHistory0.json").write_text(json.dumps(_mixed_history()))
    code, output, report = _preprocess(
        raw, tmp_path / "art", "--set", 'preprocess.drop_shows=["short takes"]'
    )
    assert code == 0, output
    items = pl.read_parquet(tmp_path / "art" / "01_preprocess" / "items.parquet")
    assert sorted(set(items["artist_name"])) == sorted(a for a, _ in SONGS)
    assert report["shows"]["long_plays"]["found"] == [
        {"artist_name": "Morning Talk", "plays": 3, "long_plays": 3}
    ]
    assert report["shows"]["rows_dropped"] == {"listed": 1, "long_plays": 3}
    (entry,) = report["files"]
    assert entry["rows_dropped"] == {"show_listed": 1, "show_long_plays": 3}
    assert (entry["rows_read"], entry["rows_kept"]) == (16, 12)


def test_show_rule_can_be_turned_off(tmp_path: Path) -> None:
    raw = tmp_path / "MyData"
    raw.mkdir()
    (raw / "StreamingHistory0.json").write_text(json.dumps(_mixed_history()))
    code, output, report = _preprocess(raw, tmp_path / "art", "--set", "preprocess.show_minutes=0")
    assert code == 0, output
    assert report["shows"]["long_plays"]["applies"] is False
    items = pl.read_parquet(tmp_path / "art" / "01_preprocess" / "items.parquet")
    assert "Morning Talk" in set(items["artist_name"])


def _taste_folder(raw: Path) -> None:
    raw.mkdir()
    counts = [("u1", "SOA", 5), ("u1", "SOB", 1), ("u2", "SOA", 2), ("u2", "SOZ", 4)]
    (raw / "10000.txt").write_text("".join(f"{u}\t{s}\t{n}\n" for u, s, n in counts))
    # the tutorial merge: user, id, count and the names (its pairs must not count twice)
    (raw / "song_data.csv").write_text(
        "user_id,song_id,listen_count,title,release,artist_name,year\n"
        'u1,SOA,5,Undo,Vespertine,Björk,2001\nu9,SOB,1,"Dirty Movies"" (Album Version)",R,'
        "Ra Ra Riot,2008\n"
    )


def test_names_table_beside_a_count_table_names_the_ids(tmp_path: Path) -> None:
    raw = tmp_path / "msd"
    _taste_folder(raw)
    code, output, report = _preprocess(raw, tmp_path / "art")
    assert code == 0, output
    assert report["rows_in"] == 4  # song_data.csv's rows are names, not plays
    assert report["names_tables"]["files"] == [str(raw / "song_data.csv")]
    assert [f["reason"] for f in report["ignored_files"]][0].startswith("names of the ids")
    items = pl.read_parquet(tmp_path / "art" / "01_preprocess" / "items.parquet")
    got = {(a, t): n for a, t, n in items.select("artist_name", "track_name", "play_count").rows()}
    assert got == {
        ("Björk", "Undo"): 7, ("Ra Ra Riot", 'Dirty Movies" (Album Version)'): 1,
        ("[unknown artist]", "SOZ"): 4,
    }  # fmt: skip


def test_names_setting_names_a_table_elsewhere(tmp_path: Path) -> None:
    raw = tmp_path / "msd"
    _taste_folder(raw)
    names = tmp_path / "names.tsv"
    names.write_text("song_id\ttitle\tartist_name\nSOZ\tLast\tZed\n")
    code, output, report = _preprocess(
        raw / "10000.txt", tmp_path / "art", "--set", f"preprocess.names={names}"
    )
    assert code == 0, output
    items = pl.read_parquet(tmp_path / "art" / "01_preprocess" / "items.parquet")
    assert ("Zed", "Last") in set(items.select("artist_name", "track_name").rows())
    assert report["names_tables"] == {"files": [str(names)], "ids": 1}
