"""Format presets: tiny fixtures written in code in each real format, and the real files."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from musicrec_cli.sources import InputError, find_files, scan_groups
from stages.preprocess import formats, layout, parse
from stages.preprocess.columns import UNKNOWN_ARTIST
from stages.schema import SchemaError

UTC = dt.UTC
RANGE = {
    "ts_min": dt.datetime(2000, 1, 1, tzinfo=UTC),
    "ts_max": dt.datetime(2100, 1, 1, tzinfo=UTC),
}


def _parse(spec: Path, fmt: str, columns: tuple[str, ...] = ()) -> pl.DataFrame:
    preset = formats.PRESETS[fmt]
    files, _ = find_files(str(spec), what="raw", preset=preset)
    mapping = formats.parse_mapping(columns)
    raws = [
        formats.to_raw(lf, fmt=fmt, mapping=mapping, source=label)
        for label, lf in scan_groups(files, preset=preset)
    ]
    raw = pl.concat(raws, how="diagonal_relaxed")
    root = spec if spec.is_dir() else spec.parent
    rels = [f.relative_to(root).as_posix() for f in files]
    users = pl.DataFrame(
        {"source_file": [str(f) for f in files],
         layout.FILE_USER: layout.file_user_ids(rels, rule="auto", root=root.name)}
    )  # fmt: skip
    raw = layout.assign_users(raw, users, rule="auto")
    return parse.parse_raw(raw, min_ms_played=30_000, **RANGE).collect()


def _reasons(parsed: pl.DataFrame) -> dict[str | None, int]:
    return dict(parse.count_reasons(parse.user_reason_counts(parsed.lazy())).collect().iter_rows())


def test_lastfm1k_headerless_tsv_with_stray_quotes(tmp_path: Path) -> None:
    mbid = "a7f7df4a-77d8-4f12-8acd-5c60c93f4de8"
    lines = [
        f"user_000001\t2009-05-04T13:54:10Z\t{mbid}\t坂本龍一\t\tHibari (Live_2009_4_15)",
        'user_000001\t2009-05-04T13:42:11Z\t\t"Weird Al" Yankovic\t\tEat It"',
        "user_000002\tnot a time\t\tA\t\tB",
    ]
    path = tmp_path / "userid-timestamp-artid-artname-traid-traname.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    out = _parse(tmp_path, "lastfm1k")
    assert out["artist_name"].to_list() == ["坂本龍一", '"Weird Al" Yankovic', "A"]
    assert out["track_name"][1] == 'Eat It"'
    assert out["artist_mbid"].to_list() == [mbid, None, None]
    assert out["played_at"][0] == dt.datetime(2009, 5, 4, 13, 54, 10, tzinfo=UTC)
    assert out["drop_reason"].to_list() == [None, None, "bad_timestamp"]


def _spotify_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "ts": "2023-02-25T11:20:37Z",
        "ms_played": 61839,
        "master_metadata_track_name": "Forever",
        "master_metadata_album_artist_name": "Labrinth",
        "master_metadata_album_album_name": "Euphoria",
        "spotify_track_uri": "spotify:track:6potEImiklXkwD9qFzpu15",
        "episode_name": None,
        "spotify_episode_uri": None,
        "skipped": True,
    }
    return row | overrides


def test_spotify_extended_skips_podcasts_and_ignores_video(tmp_path: Path) -> None:
    export = tmp_path / "alice"
    export.mkdir()
    audio = [
        _spotify_row(),
        _spotify_row(
            master_metadata_track_name=None,
            master_metadata_album_artist_name=None,
            spotify_track_uri=None,
            episode_name="Welcome to Mythical Monsters",
            spotify_episode_uri="spotify:episode:x",
        ),
        _spotify_row(ms_played=5000, skipped=None),
    ]
    (export / "Streaming_History_Audio_2023.json").write_text(json.dumps(audio))
    (export / "Streaming_History_Video_2023.json").write_text(json.dumps([_spotify_row()]))
    files, ignored = find_files(str(export), what="raw", preset=formats.PRESETS["spotify"])
    assert [f.name for f in files] == ["Streaming_History_Audio_2023.json"]
    assert [f.name for f in ignored] == ["Streaming_History_Video_2023.json"]
    out = _parse(export, "spotify")
    assert out["user_id"].to_list() == ["alice"] * 3
    assert out["drop_reason"].to_list() == [None, "non_music", "short_play"]
    assert out["track_uri"][0] == "spotify:track:6potEImiklXkwD9qFzpu15"
    assert out["skipped"].to_list() == [True, True, True]  # null filled from ms < 30 s


def test_spotify_old_endsong_uses_username_and_ms_offline_timestamp(tmp_path: Path) -> None:
    rows = [
        _spotify_row(username="bob", offline_timestamp=1632253124315),
        _spotify_row(username="bob", ts=None, offline_timestamp=1632253124315),
    ]
    (tmp_path / "endsong_1.json").write_text(json.dumps(rows, separators=(",", ":")))
    out = _parse(tmp_path, "spotify")
    assert out["user_id"].to_list() == ["bob", "bob"]
    assert out["played_at"].to_list() == [
        dt.datetime(2023, 2, 25, 11, 20, 37, tzinfo=UTC),
        dt.datetime(2021, 9, 21, 19, 38, 44, 315000, tzinfo=UTC),
    ]


def test_spotify_account_minute_resolution(tmp_path: Path) -> None:
    rows = [
        {"endTime": "2020-08-11 12:47", "artistName": "Prefuse 73", "trackName": "Perverted",
         "msPlayed": 31101},
        {"endTime": "2020-08-11 12:49", "artistName": "Shaan", "trackName": "Love",
         "msPlayed": 556},
    ]  # fmt: skip
    (tmp_path / "StreamingHistory0.json").write_text(json.dumps(rows))
    out = _parse(tmp_path, "spotify-account")
    assert out["played_at"][0] == dt.datetime(2020, 8, 11, 12, 47, tzinfo=UTC)
    assert out["drop_reason"].to_list() == [None, "short_play"]
    assert out["user_id"][0] == tmp_path.name


def test_listenbrainz_lines_documents_and_invalid_lines(tmp_path: Path) -> None:
    mbid = "a96d82a0-cdca-40bf-b4c8-3d7ec178d85b"
    lines = [
        {"listened_at": 1748964167, "user_name": "carol", "track_metadata": {
            "artist_name": "The Stranglers", "track_name": "Golden Brown",
            "mbid_mapping": {"artist_mbids": [mbid], "recording_mbid": mbid}}},
        {"listened_at": 1748967955, "track_metadata": {"artist_name": "", "track_name": "X"}},
    ]  # fmt: skip
    text = "\n".join(json.dumps(x) for x in lines) + "\nnot json at all\n"
    (tmp_path / "listens.jsonl").write_text(text)
    listen = {
        "listened_at": 1486449409000000000,
        "track_metadata": {"artist_name": "Kanye West", "track_name": "\u0000Fade"},
    }
    doc = {"listen_type": "import", "payload": [listen]}
    (tmp_path / "export.json").write_text(json.dumps(doc))
    out = _parse(tmp_path, "listenbrainz").sort("played_at", nulls_last=True)
    assert out["drop_reason"].to_list() == [None, None, "missing_artist", "invalid_line"]
    assert out["played_at"][0] == dt.datetime(2017, 2, 7, 6, 36, 49, tzinfo=UTC)
    assert out["user_id"].to_list()[:2] == [tmp_path.name, "carol"]
    assert out["artist_mbid"][1] == mbid
    assert out["track_mbid"][1] == mbid


def test_generic_mapping_with_track_ids_only(tmp_path: Path) -> None:
    pl.DataFrame({"who": ["u1", "u2"], "when": ["1709294400000", "1709294400"],
                  "song": ["t1", "t2"]}).write_csv(tmp_path / "log.csv")  # fmt: skip
    out = _parse(tmp_path, "generic", ("user_id=who", "played_at=when", "track_uri=song"))
    assert out["artist_name"].to_list() == [UNKNOWN_ARTIST] * 2
    assert out["track_name"].to_list() == ["t1", "t2"]
    assert out["played_at"].n_unique() == 1
    assert out["drop_reason"].null_count() == 2


def test_generic_mapping_error_names_file_columns_and_mapping(tmp_path: Path) -> None:
    pl.DataFrame({"who": ["u1"], "when": ["2024-01-01"]}).write_csv(tmp_path / "log.csv")
    columns = ("user_id=who", "played_at=when", "artist_name=artist", "track_name=title")
    with pytest.raises(SchemaError, match=r"log\.csv.*artist_name=artist.*found 'who', 'when'"):
        _parse(tmp_path, "generic", columns)


def test_preset_on_the_wrong_file_names_missing_columns(tmp_path: Path) -> None:
    pl.DataFrame({"a": [1]}).write_parquet(tmp_path / "x.parquet")
    with pytest.raises(SchemaError, match=r"x\.parquet.*missing column\(s\) 'user_id'.*found 'a'"):
        _parse(tmp_path, "generate")


def test_directory_without_matching_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"no raw files for format 'spotify'"):
        find_files(str(tmp_path), what="raw", preset=formats.PRESETS["spotify"])


@pytest.mark.parametrize(
    ("fmt", "folder", "rows", "reasons"),
    [
        ("lastfm1k", "lastfm-1k", 5000, {None: 5000}),
        ("spotify", "spotify-extended", 1470, {None: 777, "non_music": 13, "short_play": 680}),
        ("spotify", "spotify-extended-old", 2080,
         {None: 1601, "missing_artist": 1, "short_play": 478}),
        ("spotify-account", "spotify-account", 11931,
         {None: 9531, "short_play": 2400}),
        ("listenbrainz", "listenbrainz", 15, {None: 10, "missing_artist": 3, "missing_track": 2}),
    ],
)  # fmt: skip
def test_real_exports(
    real_formats: Path, fmt: str, folder: str, rows: int, reasons: dict[str | None, int]
) -> None:
    out = _parse(real_formats / folder, fmt)
    assert out.height == rows
    assert _reasons(out) == reasons
    kept = out.filter(pl.col("drop_reason").is_null())
    assert kept["played_at"].null_count() == 0
    assert kept["user_id"].null_count() == 0


@pytest.mark.parametrize(
    ("file_users", "rule", "expected"),
    [
        (["me", "me"], "auto", ["a", "me", "b", "me"]),  # one user for every file: no join
        (["me", "me"], "folder", ["me", "me", "me", "me"]),
        (["x", "y"], "auto", ["a", "x", "b", "y"]),  # per file: joined on the file
        (["x", "y"], "folder", ["x", "x", "y", "y"]),
    ],
)
def test_assign_users_fills_or_replaces_from_the_file(
    file_users: list[str], rule: str, expected: list[str]
) -> None:
    raw = pl.LazyFrame({"source_file": ["f1", "f1", "f2", "f2"], "user_id": ["a", None, "b", None]})
    files = pl.DataFrame({"source_file": ["f1", "f2"], layout.FILE_USER: file_users})
    out = layout.assign_users(raw, files, rule=rule).collect()
    assert out["user_id"].to_list() == expected
    assert out["source_file"].to_list() == ["f1", "f1", "f2", "f2"]
