"""`musicrec preprocess --input PATH` on exports laid out as people download them (issue 17).

Every fixture is built here, in code, in the real layout: nested `alice/MyData` folders, the zip
archives Spotify and ListenBrainz send, wrapped ListenBrainz JSON, a Last.fm TSV with a header
line beside `userid-profile.tsv`, Spotify's extended history converted to CSV, and play-count
tables with and without a header. The format is left to `--format auto` unless a test says so.
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from musicrec_cli.app import app

UTC = dt.UTC
SONGS = [
    ("Björk", "Jóga"), ("Radiohead", "Reckoner"), ("Massive Attack", "Teardrop"),
    ("Portishead", "Roads"), ("Air", "La femme d'argent"), ("Moby", "Porcelain"),
]  # fmt: skip


def _preprocess(
    raw: Path, art: Path, *settings: str, fmt: str | None = None
) -> tuple[int, str, dict[str, Any]]:
    """`musicrec [settings] preprocess --input raw [--format fmt]`: (exit code, output, report)."""
    args = [
        "--set", f"paths.artifacts={art}",
        "--set", "preprocess.min_user_tracks=1",
        "--set", "preprocess.min_track_users=1",
        *settings,
        "preprocess", "--input", str(raw), *(["--format", fmt] if fmt else []),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    report_path = art / "01_preprocess" / "quality_report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return result.exit_code, " ".join(result.output.split()), report


def _account_rows(day: int, n: int = 6) -> list[dict[str, Any]]:
    return [
        {
            "endTime": f"2023-05-{day:02d} {10 + i:02d}:{i:02d}",
            "artistName": artist,
            "trackName": title,
            "msPlayed": 200_000,
        }
        for i, (artist, title) in enumerate(SONGS[:n])
    ]


def _users(art: Path) -> list[str]:
    return sorted(pl.read_parquet(art / "01_preprocess" / "users.parquet")["user_id"].to_list())


def test_account_exports_in_default_folders_stay_apart(tmp_path: Path) -> None:
    """Three people's `MyData` folders are three users, named by their path under the root."""
    raw = tmp_path / "exports"
    for person, day in (("alice", 1), ("bob", 2), ("carol", 3)):
        folder = raw / person / "MyData"
        folder.mkdir(parents=True)
        (folder / "StreamingHistory0.json").write_text(json.dumps(_account_rows(day)))
    # the newer layout splits podcasts out: they are listed as ignored, never read
    (raw / "bob" / "MyData" / "StreamingHistory_podcast_0.json").write_text(
        json.dumps([{"endTime": "2023-05-02 09:00", "podcastName": "Show", "msPlayed": 1}])
    )
    code, output, report = _preprocess(raw, tmp_path / "art")
    assert code == 0, output
    assert "spotify-account" in output  # says which format it chose
    assert _users(tmp_path / "art") == ["alice", "bob", "carol"]
    assert report["format"] == "spotify-account"
    per_file = {Path(f["path"]).parent.parent.name: f for f in report["files"]}
    assert {k: (f["rows_read"], f["rows_kept"], f["user_ids"]) for k, f in per_file.items()} == {
        "alice": (6, 6, ["alice"]),
        "bob": (6, 6, ["bob"]),
        "carol": (6, 6, ["carol"]),
    }
    assert report["user_ids"] == {"alice": 1, "bob": 1, "carol": 1}
    ignored = {Path(f["path"]).name: f["reason"] for f in report["ignored_files"]}
    assert "podcast" in ignored["StreamingHistory_podcast_0.json"]


def test_user_id_setting_fixed_and_regex(tmp_path: Path) -> None:
    raw = tmp_path / "exports"
    for person in ("alice", "bob"):
        (raw / person / "MyData").mkdir(parents=True)
        (raw / person / "MyData" / "StreamingHistory0.json").write_text(
            json.dumps(_account_rows(1))
        )
    code, output, _ = _preprocess(raw, tmp_path / "a1", "--set", 'preprocess.user_id="fixed:me"')
    assert code == 0, output
    assert _users(tmp_path / "a1") == ["me"]
    regex = "preprocess.user_id='regex:^(\\w)'"  # first letter of the path under the root
    code, output, _ = _preprocess(raw, tmp_path / "a2", "--set", regex)
    assert code == 0, output
    assert _users(tmp_path / "a2") == ["a", "b"]


def test_spotify_zip_archive_is_read_without_unpacking(tmp_path: Path) -> None:
    raw = tmp_path / "downloads"
    (raw / "dana").mkdir(parents=True)
    with zipfile.ZipFile(raw / "dana" / "my_spotify_data.zip", "w") as archive:
        archive.writestr(
            "Spotify Account Data/StreamingHistory_music_0.json", json.dumps(_account_rows(4))
        )
        archive.writestr("Spotify Account Data/Userdata.json", json.dumps({"username": "x"}))
        archive.writestr("Spotify Account Data/Read Me First.pdf", b"%PDF-1.4")
    code, output, report = _preprocess(raw, tmp_path / "art")
    assert code == 0, output
    assert _users(tmp_path / "art") == ["dana"]
    assert report["output"]["plays"] == 6
    assert sum(f["rows_read"] for f in report["files"]) == 6
    assert any("Userdata.json" in f["path"] for f in report["ignored_files"])
    assert not list(tmp_path.rglob("StreamingHistory_music_0.json"))  # nothing left unpacked


def _listen(ts: int, artist: str, title: str, user: str = "rob") -> dict[str, Any]:
    return {
        "listened_at": ts,
        "user_name": user,
        "track_metadata": {"artist_name": artist, "track_name": title, "additional_info": {}},
    }


def test_listenbrainz_wrapped_json_and_overlapping_snapshots(tmp_path: Path) -> None:
    raw = tmp_path / "lb"
    raw.mkdir()
    listens = [_listen(1_700_000_000 + 600 * i, a, t) for i, (a, t) in enumerate(SONGS)]
    # two daily snapshots overlapping on the middle two listens, in both wrapped forms
    (raw / "day1.json").write_text(json.dumps({"listens": listens[:4]}))
    api = {"payload": {"count": 4, "user_id": "rob", "listens": listens[2:]}}
    (raw / "day2.json").write_text(json.dumps(api))
    code, output, report = _preprocess(raw, tmp_path / "art")
    assert code == 0, output
    assert report["format"] == "listenbrainz"
    assert report["rows_in"] == 8
    assert report["output"]["plays"] == 6  # the unique listens


def test_listenbrainz_export_archive(tmp_path: Path) -> None:
    raw = tmp_path / "listenbrainz_rob_1700000000.zip"
    lines = [json.dumps(_listen(1_700_000_000 + 60 * i, a, t)) for i, (a, t) in enumerate(SONGS)]
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("user.json", json.dumps({"user_id": 1, "username": "rob"}))
        archive.writestr("listens/2023/11.jsonl", "\n".join(lines[:3]) + "\n")
        archive.writestr("listens/2023/12.jsonl", "\n".join(lines[3:]) + "\n")
        archive.writestr("feedback.jsonl", json.dumps({"recording_mbid": "x", "score": 1}))
    code, output, report = _preprocess(raw, tmp_path / "art")
    assert code == 0, output
    assert report["format"] == "listenbrainz"
    assert report["output"]["plays"] == 6
    assert _users(tmp_path / "art") == ["rob"]


LASTFM_HEADER = "userid\ttimestamp\tartid\tartname\ttraid\ttraname\n"


def test_lastfm_header_line_and_profile_file(tmp_path: Path) -> None:
    raw = tmp_path / "lastfm-dataset-1K"
    raw.mkdir()
    rows = [
        f"user_000001\t2009-05-04T{10 + i:02d}:00:00Z\t\t{a}\t\t{t}\n"
        for i, (a, t) in enumerate(SONGS)
    ]
    (raw / "userid-timestamp-artid-artname-traid-traname.tsv").write_text(
        LASTFM_HEADER + "".join(rows)
    )
    (raw / "userid-profile.tsv").write_text(
        "#id\tgender\tage\tcountry\tregistered\nuser_000001\tm\t\tJapan\tAug 13, 2006\n"
    )
    code, output, report = _preprocess(raw, tmp_path / "art")
    assert code == 0, output
    assert report["format"] == "lastfm1k"
    assert report["rows_in"] == 6  # the header is not a row
    assert report["unparseable"]["rows"] == 0
    ignored = {Path(f["path"]).name: f["reason"] for f in report["ignored_files"]}
    assert "not a listening log" in ignored["userid-profile.tsv"]


def _extended_csv(path: Path, skipped: list[str]) -> None:
    header = "ts,ms_played,master_metadata_track_name,master_metadata_album_artist_name,"
    header += "spotify_track_uri,episode_name,shuffle,skipped,offline,incognito_mode\n"
    lines = [
        f"2023-02-25T1{i}:00:00Z,{200_000 - 180_000 * (s == 'True')},{t},{a},"
        f"spotify:track:{i:022d},,True,{s},False,false\n"
        for i, ((a, t), s) in enumerate(zip(SONGS, skipped, strict=True))
    ]
    path.write_text(header + "".join(lines))


def test_spotify_extended_history_as_csv_with_boolean_columns(tmp_path: Path) -> None:
    raw = tmp_path / "Spotify Extended Streaming History"
    raw.mkdir()
    _extended_csv(raw / "streaming_history.csv", ["False", "True", "", "false", "1", "0"])
    code, output, report = _preprocess(raw, tmp_path / "art")
    assert code == 0, output
    assert report["format"] == "spotify"
    plays = pl.read_parquet(tmp_path / "art" / "01_preprocess" / "plays.parquet")
    assert plays.height == 5  # the "True" row is a 20 s play, dropped as short
    assert plays["skipped"].to_list().count(True) == 1  # the "1"


def test_unreadable_boolean_names_file_and_column(tmp_path: Path) -> None:
    raw = tmp_path / "ext"
    raw.mkdir()
    _extended_csv(raw / "history.csv", ["maybe", "True", "True", "True", "True", "True"])
    code, output, _ = _preprocess(raw, tmp_path / "art", "--set", "preprocess.max_bad_share=0")
    assert code == 1
    assert "history.csv" in output
    assert "'skipped'" in output
    assert "maybe" in output
    assert not (tmp_path / "art" / "01_preprocess").exists()


def test_count_table_without_header_stays_counts(tmp_path: Path) -> None:
    """A Taste-Profile-like table: user, song id, count; tab separated, no header."""
    raw = tmp_path / "10000.txt"
    counts = {("u1", "SOA"): 796, ("u1", "SOB"): 1, ("u2", "SOA"): 3, ("u2", "SOC"): 2}
    raw.write_text("".join(f"{u}\t{s}\t{n}\n" for (u, s), n in counts.items()))
    code, output, report = _preprocess(raw, tmp_path / "art")
    assert code == 0, output
    assert report["format"] == "counts"
    out = tmp_path / "art" / "01_preprocess"
    events = pl.read_parquet(out / "events.parquet").join(
        pl.read_parquet(out / "users.parquet"), on="user_idx"
    )
    got = {(u, n) for u, n in events.select("user_id", "play_count").iter_rows()}
    assert got == {("u1", 796), ("u1", 1), ("u2", 3), ("u2", 2)}
    assert pl.read_parquet(out / "plays.parquet").height == 4  # one row per pair, not 802
    assert report["aggregated"] is True
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["bots"]["dropped"] == {"users": 0, "plays": 0}
    assert "aggregated" in steps["bots"]["note"]


def test_count_table_with_header_and_quoted_names(tmp_path: Path) -> None:
    raw = tmp_path / "user_artists.csv"
    raw.write_text(
        "user,artist,plays\n"
        'u1,"Guns N\' Roses",12\n'
        'u1,"Weird Al"" Yankovic",3\n'
        'u2,"Earth, Wind & Fire",7\n'
        'u2,"Guns N\' Roses",1\n'
    )
    code, output, report = _preprocess(raw, tmp_path / "art")
    assert code == 0, output
    assert report["format"] == "counts"
    items = pl.read_parquet(tmp_path / "art" / "01_preprocess" / "items.parquet")
    assert sorted(items["artist_name"].to_list()) == [
        "Earth, Wind & Fire", "Guns N' Roses", 'Weird Al" Yankovic',
    ]  # fmt: skip
    assert items.filter(pl.col("artist_name") == "Guns N' Roses")["play_count"].item() == 13


def test_unrecognised_file_names_what_to_set(tmp_path: Path) -> None:
    raw = tmp_path / "notes.csv"
    raw.write_text("a,b\n1,2\n")
    code, output, _ = _preprocess(raw, tmp_path / "art")
    assert code == 1
    assert "notes.csv" in output
    assert "--format" in output
    assert not (tmp_path / "art" / "01_preprocess").exists()
    assert "--catalog" not in output


def test_audio_feature_catalogue_given_as_input_points_to_catalog(tmp_path: Path) -> None:
    """A track catalogue passed as --input (real-formats/catalog's layout) names --catalog."""
    raw = tmp_path / "tracks.csv"
    raw.write_text(
        "id,name,genre,url,popularity,acousticness,danceability,energy,instrumentalness\n"
        "1,Song,rock,http://x,50,0.1,0.5,0.7,0.0\n"
    )
    code, output, _ = _preprocess(raw, tmp_path / "art")
    assert code == 1
    flat = " ".join(output.split())
    assert "tracks.csv" in flat
    assert "track catalogue" in flat
    assert "--catalog" in flat
    assert not (tmp_path / "art" / "01_preprocess").exists()


@pytest.mark.parametrize("fmt", ["lastfm1k", "listenbrainz"])
def test_explicit_format_is_kept(tmp_path: Path, fmt: str) -> None:
    """`--format F` is obeyed; a mismatch says what was expected (no guessing over the user)."""
    raw = tmp_path / "x"
    raw.mkdir()
    (raw / "StreamingHistory0.json").write_text(json.dumps(_account_rows(1)))
    code, output, _ = _preprocess(raw, tmp_path / "art", fmt=fmt)
    assert code == 1
    assert fmt in output


def test_catalog_in_its_own_schema_is_mapped(tmp_path: Path) -> None:
    """An audio-feature CSV with its own column names joins through catalog_columns."""
    raw = tmp_path / "ext"
    raw.mkdir()
    _extended_csv(raw / "history.csv", ["False"] * 6)
    catalog = tmp_path / "features.csv"
    catalog.write_text(
        "uri,danceability,energy\n"
        + "".join(f"spotify:track:{i:022d},0.{i + 1},0.5\n" for i in range(3))
    )
    mapping = "preprocess.catalog_columns=['track_uri=uri']"
    args = ("--set", mapping)
    result = CliRunner().invoke(
        app,
        [
            "--set", f"paths.artifacts={tmp_path / 'a1'}",
            "--set", "preprocess.min_track_users=1", "--set", "preprocess.min_user_tracks=1",
            *args, "preprocess", "--input", str(raw), "--catalog", str(catalog),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    items = pl.read_parquet(tmp_path / "a1" / "01_preprocess" / "items.parquet")
    assert items["danceability"].drop_nulls().sort().to_list() == [0.1, 0.2, 0.3]
    report = json.loads((tmp_path / "a1" / "01_preprocess" / "quality_report.json").read_text())
    assert report["catalog"] == {
        "tracks": items.height,
        "matched_by": {"track_mbid": 0, "track_uri": 3, "names": 0, "unmatched": items.height - 3},
    }
    bad = CliRunner().invoke(
        app,
        ["--set", f"paths.artifacts={tmp_path / 'a2'}", "preprocess", "--input", str(raw),
         "--catalog", str(catalog)],
    )  # fmt: skip
    assert bad.exit_code == 1
    assert "catalog_columns" in " ".join(bad.output.split())
