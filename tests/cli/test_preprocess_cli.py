"""`musicrec preprocess` end to end: outputs, quality report, bucketing and bad inputs."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from musicrec_cli.app import app
from musicrec_cli.runner import preprocess as preprocess_runner
from stages.generate import make_events, make_world

UTC = dt.UTC
OUTPUTS = (
    "plays.parquet",
    "events.parquet",
    "items.parquet",
    "users.parquet",
    "id_map_tracks.parquet",
    "id_map_artists.parquet",
)


def _run(raw: Path, art: Path, *extra: str) -> tuple[int, str]:
    args = [
        "--set", f"paths.raw={raw}",
        "--set", 'paths.catalog=""',
        "--set", f"paths.artifacts={art}",
        "--set", "preprocess.min_user_tracks=1",
        "--set", "preprocess.min_track_users=1",
        *extra,
        "preprocess",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def _t(hour: int, minute: int = 0) -> str:
    return dt.datetime(2024, 3, 1, hour, minute, tzinfo=UTC).isoformat()


LOG = [
    # user, played_at, artist, title, ms_played
    ("u1", _t(10), "Björk", "Jóga", 200_000),
    ("u1", _t(11), "Bjork", "Joga", 180_000),
    ("u1", _t(11), "Bjork", "Joga", 180_000),  # exact duplicate
    ("u1", _t(12), "björk feat. Someone", "Jóga (Live)", 240_000),
    ("u1", _t(13), "Björk", "Jóga", 10_000),  # short
    ("u2", _t(10), "The Stranglers", "Golden Brown", 200_000),
    ("u2", _t(12), "Stranglers", "Golden Brown - Remastered 2011", 200_000),
    ("u2", "yesterday", "Stranglers", "Golden Brown", 200_000),  # bad timestamp
    ("", _t(12), "Stranglers", "Golden Brown", 200_000),  # no user
]


def _write_log(folder: Path, rows: list[tuple]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame(
        rows, schema=["user_id", "played_at", "artist_name", "track_name", "ms_played"],
        orient="row",
    )  # fmt: skip
    frame.write_csv(folder / "listens.csv")
    return folder


def test_preprocess_small_log_known_answer(tmp_path: Path) -> None:
    raw = _write_log(tmp_path / "raw", LOG)
    code, output = _run(raw, tmp_path / "art", "--set", "preprocess.max_bad_share=0.2")
    assert code == 0, output
    out = tmp_path / "art" / "01_preprocess"
    report = json.loads((out / "quality_report.json").read_text())
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["parse"]["rows_in"] == 9
    assert steps["parse"]["dropped"] == {"bad_timestamp": 1, "missing_user": 1}
    assert steps["min_ms_played"]["dropped"] == {"short_play": 1}
    assert steps["dedupe"]["dropped"] == {"duplicate_plays": 1}
    assert report["unparseable"]["rows"] == 1
    assert report["unparseable"]["examples"][0]["raw_value"] == "yesterday"
    canonical = report["canonical"]
    assert canonical["canonical_artists"] == 2  # björk, stranglers
    assert canonical["canonical_tracks"] == 4  # jóga, jóga live, golden brown (+ remaster)
    assert canonical["track_groups"] == 2
    items = pl.read_parquet(out / "items.parquet")
    assert items.select("track_id", "artist_name", "track_name", "play_count").rows() == [
        ("bjork - joga", "Bjork", "Joga", 2),  # the most played spelling
        ("bjork - joga live", "björk feat. Someone", "Jóga (Live)", 1),
        ("stranglers - golden brown", "The Stranglers", "Golden Brown", 1),
        ("stranglers - golden brown remastered 2011", "Stranglers",
         "Golden Brown - Remastered 2011", 1),
    ]  # fmt: skip
    assert (
        items["track_group_id"].to_list()
        == ["bjork - joga"] * 2 + ["stranglers - golden brown"] * 2
    )
    events = pl.read_parquet(out / "events.parquet")
    assert events.select("user_idx", "track_idx", "play_count", "total_ms_played").rows() == [
        (0, 0, 2, 380_000),
        (0, 1, 1, 240_000),
        (1, 2, 1, 200_000),
        (1, 3, 1, 200_000),
    ]
    plays = pl.read_parquet(out / "plays.parquet")
    assert plays.height == 5
    assert plays["played_at"].dtype == pl.Datetime("us", "UTC")
    matrix = sp.load_npz(out / "interaction_matrix.npz")
    assert matrix.toarray().tolist() == [[2, 1, 0, 0], [0, 0, 1, 1]]
    id_map = pl.read_parquet(out / "id_map_tracks.parquet")
    assert id_map.filter(pl.col("artist_name") == "Bjork")["track_idx"].to_list() == [0]


def test_unreadable_share_above_limit_fails_and_keeps_earlier_artifacts(tmp_path: Path) -> None:
    art = tmp_path / "art"
    good = _write_log(tmp_path / "good", LOG[:2])
    assert _run(good, art)[0] == 0
    manifest = (art / "01_preprocess" / "manifest.json").read_text()
    bad = _write_log(tmp_path / "bad", LOG)  # 1 unreadable row of 9 > 1%
    code, output = _run(bad, art)
    assert code == 1
    assert "1 of 9 rows (11.1%) have unreadable values" in output
    assert "max_bad_share = 0.01" in output
    assert (art / "01_preprocess" / "manifest.json").read_text() == manifest
    assert not list(art.glob(".*partial"))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("generated")
    world = make_world(n_users=60, n_tracks=200, n_genres=4, seed=3)
    for part in range(2):
        events = make_events(world, n_events=6_000, seed=part)
        events.write_parquet(folder / f"part-{part}.parquet")
    return folder


def test_bucketed_batched_and_single_pass_outputs_are_identical(
    generated: Path, tmp_path: Path
) -> None:
    runs = {}
    # 3 user buckets; a survey batch per input file (partial counts merged per partition); both
    # (each batch of files sunk into the buckets on its own)
    both = ["batch_bytes=1", "buckets=3"]
    runs_of = (("one", []), ("buckets", ["buckets=3"]), ("batches", ["batch_bytes=1"]))
    for label, extra in (*runs_of, ("both", both)):
        art = tmp_path / label
        sets = [a for e in extra for a in ("--set", f"preprocess.{e}")]
        code, output = _run(generated, art, "--set", "preprocess.buckets=1", *sets)
        assert code == 0, output
        runs[label] = art / "01_preprocess"
    report = json.loads((runs["buckets"] / "quality_report.json").read_text())
    assert report["n_buckets"] == 3
    art_report = "quality_report.json"
    for label in ("buckets", "batches", "both"):
        for name in OUTPUTS:
            one, other = pl.read_parquet(runs["one"] / name), pl.read_parquet(runs[label] / name)
            assert one.height > 0
            assert one.equals(other), (label, name)
        matrices = [sp.load_npz(runs[r] / "interaction_matrix.npz") for r in ("one", label)]
        assert np.array_equal(matrices[0].toarray(), matrices[1].toarray())
        reports = [json.loads((runs[r] / art_report).read_text()) for r in ("one", label)]
        assert reports[0]["steps"] == reports[1]["steps"]
        assert reports[0]["canonical"] == reports[1]["canonical"]
    events = pl.read_parquet(runs["one"] / "events.parquet")
    assert events.equals(events.sort("user_idx", "track_idx"))


def test_generated_names_collapse_to_the_true_catalogue(generated: Path, tmp_path: Path) -> None:
    code, output = _run(generated, tmp_path / "art")
    assert code == 0, output
    canonical = json.loads(
        (tmp_path / "art" / "01_preprocess" / "quality_report.json").read_text()
    )["canonical"]
    # make_world: 200 tracks = 160 songs (+40 versions) by 160 // 8 = 20 artists
    assert canonical["canonical_artists"] == 20
    assert canonical["raw_artist_names"] > 20
    assert canonical["track_groups"] <= 160
    assert canonical["canonical_tracks"] <= 200
    assert canonical["canonical_tracks"] >= 190


def test_format_option_rejects_unknown_format(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["preprocess", "--format", "myspace"])
    assert result.exit_code == 2
    assert "not a known format" in result.output


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty_csv", "has no rows"),
        ("zero_bytes", "listens.csv"),
        ("no_matching_files", "no listening history files for format 'generate'"),
        ("truncated_gzip", "listens.csv.gz: truncated or corrupt gzip file"),
        ("truncated_parquet", "part.parquet: not a readable Parquet file"),
        ("missing_column", "missing column(s) 'track_name'"),
    ],
)
def test_bad_inputs_fail_with_one_line(setup: str, message: str, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    header = "user_id,played_at,artist_name,track_name,ms_played\n"
    body = "".join(f"u{i},{_t(10, i)},A,T{i},200000\n" for i in range(50))
    if setup == "empty_csv":
        (raw / "listens.csv").write_text(header)
    elif setup == "zero_bytes":
        (raw / "listens.csv").write_bytes(b"")
    elif setup == "no_matching_files":
        (raw / "notes.txt").write_text("nothing here")
    elif setup == "truncated_gzip":
        data = gzip.compress((header + body * 50).encode())
        (raw / "listens.csv.gz").write_bytes(data[: len(data) // 2])
    elif setup == "truncated_parquet":
        pl.read_csv((header + body).encode()).write_parquet(raw / "part.parquet")
        data = (raw / "part.parquet").read_bytes()
        (raw / "part.parquet").write_bytes(data[: len(data) // 2])
    else:
        (raw / "listens.csv").write_text(header.replace("track_name", "title") + body)
    code, output = _run(raw, tmp_path / "art")
    assert code == 1
    assert message in " ".join(output.split())
    assert not (tmp_path / "art" / "01_preprocess").exists()


def test_generic_columns_setting_is_validated(tmp_path: Path) -> None:
    code, output = _run(tmp_path, tmp_path / "art", "--set", 'preprocess.columns=["bogus=x"]')
    assert code == 1
    assert ".columns = ['bogus=x']" in output
    assert "raw=source" in " ".join(output.split())


def test_spotify_export_through_the_cli(real_formats: Path, tmp_path: Path) -> None:
    code, output = _run(
        real_formats / "spotify-extended",
        tmp_path / "art",
        "--set",
        "preprocess.max_plays_per_day=0",
    )
    assert code == 1  # without --format the generate preset finds no Parquet/CSV files
    assert "no listening history files for format 'generate'" in " ".join(output.split())
    args = [
        "--set", f"paths.raw={real_formats / 'spotify-extended'}",
        "--set", 'paths.catalog=""',
        "--set", f"paths.artifacts={tmp_path / 'art'}",
        "--set", "preprocess.min_track_users=1",  # one listener: a single-user export
        "preprocess", "--format", "spotify",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "art" / "01_preprocess" / "quality_report.json").read_text())
    ignored = [(Path(f["path"]).name, f["reason"]) for f in report["ignored_files"]]
    assert ignored == [("Streaming_History_Video_2023.json", "video history, not music")]
    assert report["steps"][0]["dropped"] == {"non_music": 13}
    assert report["format"] == "spotify"
    users = pl.read_parquet(tmp_path / "art" / "01_preprocess" / "users.parquet")
    assert users["user_id"].to_list() == ["spotify-extended"]


def test_scratch_files_are_deleted_once_read(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket's scratch files are gone before it is de-duplicated, the pairs before plays."""
    from musicrec_cli import artifacts
    from stages.preprocess import encode

    art = tmp_path / "art"
    scratch = art / ".01_preprocess.partial" / "_scratch"
    left: list[list[str]] = []  # bucket folders on disk at each bucket's de-duplication
    hashed_left: list[int] = []  # the survey's hashed-plays files then
    dedupe, sink = encode.dedupe_bucket, artifacts.StageWriter.sink_parquet
    pairs_when: dict[str, bool] = {}

    def recording_dedupe(plays: pl.DataFrame) -> pl.DataFrame:
        left.append(sorted(p.name for p in scratch.glob("buckets/*/bucket=*")))
        hashed_left.append(len(list(scratch.glob("hashed/*"))))
        return dedupe(plays)

    def recording_sink(self: artifacts.StageWriter, frame: pl.LazyFrame, name: str) -> int:
        pairs_when[name] = (scratch / "pairs").exists()
        return sink(self, frame, name)

    monkeypatch.setattr(encode, "dedupe_bucket", recording_dedupe)
    monkeypatch.setattr(artifacts.StageWriter, "sink_parquet", recording_sink)
    sets = ["--set", "preprocess.buckets=3", "--set", "preprocess.batch_bytes=1"]
    code, output = _run(generated, art, *sets)
    assert code == 0, output
    # 2 input files -> 2 batches, each with a folder per bucket; bucket b's are read and gone
    assert left == [
        ["bucket=1", "bucket=1", "bucket=2", "bucket=2"],
        ["bucket=2", "bucket=2"],
        [],
    ]
    assert hashed_left == [0, 0, 0]  # each batch's file deleted once sunk into the buckets
    assert pairs_when == {"events.parquet": True, "plays.parquet": False}
    assert not scratch.exists()


@pytest.mark.parametrize("batch_bytes", [1, 1 << 30])
def test_raw_files_are_parsed_in_the_survey_only(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_bytes: int
) -> None:
    """One batch or several, the plays are encoded from the survey's hashed plays."""
    parse_raw, survey = preprocess_runner._parse, preprocess_runner._survey
    parsed_after_survey: list[int] = []
    surveyed = threading.Event()

    def recording_parse(files: list[Path], *args: object, **kwargs: object) -> pl.LazyFrame:
        if surveyed.is_set():
            parsed_after_survey.append(len(files))
        return parse_raw(files, *args, **kwargs)  # type: ignore[arg-type]

    def recording_survey(*args: object, **kwargs: object) -> object:
        found = survey(*args, **kwargs)  # type: ignore[arg-type]
        surveyed.set()
        return found

    monkeypatch.setattr(preprocess_runner, "_parse", recording_parse)
    monkeypatch.setattr(preprocess_runner, "_survey", recording_survey)
    sets = ["--set", "preprocess.buckets=3", "--set", f"preprocess.batch_bytes={batch_bytes}"]
    code, output = _run(generated, tmp_path / "art", *sets)
    assert code == 0, output
    assert surveyed.is_set()
    assert parsed_after_survey == []


def test_one_bucket_stays_in_memory(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one bucket its plays and pairs stay in memory, never written to scratch files."""
    targets: list[object] = []
    write = pl.DataFrame.write_ipc

    def recording(self: pl.DataFrame, file: object, **kwargs: object) -> None:
        targets.append(file)
        write(self, file, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl.DataFrame, "write_ipc", recording)
    code, output = _run(generated, tmp_path / "art", "--set", "preprocess.buckets=1")
    assert code == 0, output
    assert targets == []


def test_one_batch_is_parsed_once_and_hash_collisions_parse_again(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log of one batch is encoded from the survey's hashed plays; where two spellings or two
    users share a hash, the raw files are parsed again and joined on the strings: same outputs."""
    parses: list[int] = []
    parse_files = preprocess_runner._parse

    def counting(files: list[Path], *args: object, **kwargs: object) -> pl.LazyFrame:
        parses.append(len(files))
        return parse_files(files, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(preprocess_runner, "_parse", counting)
    runs = {}
    for label in ("hashed", "collided"):
        if label == "collided":
            monkeypatch.setattr(preprocess_runner, "_distinct_hashes", lambda _: (False, False))
        parses.clear()
        code, output = _run(generated, tmp_path / label)
        assert code == 0, output
        runs[label] = (list(parses), tmp_path / label / "01_preprocess")
    assert runs["hashed"][0] == [2]  # the survey, both files at once
    assert runs["collided"][0] == [2, 2]  # and the encoding
    for name in OUTPUTS:
        hashed, collided = (pl.read_parquet(runs[k][1] / name) for k in runs)
        assert hashed.height > 0
        assert hashed.equals(collided), name


def test_id_maps_are_written_on_their_own_thread_beside_the_matrix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """id_map_tracks/artists need neither the matrix nor items: a second thread writes them."""
    from musicrec_cli import artifacts

    written: dict[str, str] = {}
    write = artifacts.StageWriter.write_parquet

    def recording_write(self: artifacts.StageWriter, frame: pl.DataFrame, name: str) -> int:
        written[name] = threading.current_thread().name.split("_")[0]
        return write(self, frame, name)

    monkeypatch.setattr(artifacts.StageWriter, "write_parquet", recording_write)
    raw = _write_log(tmp_path / "raw", LOG)
    code, output = _run(raw, tmp_path / "art", "--set", "preprocess.max_bad_share=0.2")
    assert code == 0, output
    assert written == {
        "items.parquet": "MainThread",
        "users.parquet": "MainThread",
        "id_map_tracks.parquet": "musicrec-id-maps",
        "id_map_artists.parquet": "musicrec-id-maps",
    }


@pytest.mark.parametrize("where", ["matrix", "id_maps"])
def test_a_failure_in_either_table_thread_leaves_no_folder_and_no_thread(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stages.preprocess import names, tables

    def broken(*args: object, **kwargs: object) -> pl.DataFrame:
        msg = f"broken {where}"
        raise RuntimeError(msg)

    monkeypatch.setattr(
        *((tables, "track_stats") if where == "matrix" else (names, "canonical_artists")), broken
    )
    result = CliRunner().invoke(
        app,
        [
            "--set", f"paths.raw={_write_log(tmp_path / 'raw', LOG)}",
            "--set", 'paths.catalog=""',
            "--set", f"paths.artifacts={tmp_path / 'art'}",
            "--set", "preprocess.min_user_tracks=1",
            "--set", "preprocess.min_track_users=1",
            "--set", "preprocess.max_bad_share=0.2",
            "preprocess",
        ],
    )  # fmt: skip
    assert str(result.exception) == f"broken {where}"
    assert not any(t.name.startswith("musicrec-id-maps") for t in threading.enumerate())
    assert [p.name for p in (tmp_path / "art").iterdir() if p.is_dir()] == []


def test_a_failed_plays_write_on_the_writer_thread_is_raised_as_itself(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket's plays are written on a second thread: its error reaches the caller unchanged,
    and the failed stage leaves no thread and no partial folder behind."""

    class FailedWriteError(RuntimeError):
        pass

    write = pl.DataFrame.write_ipc

    def failing(self: pl.DataFrame, file: object, **kwargs: object) -> None:
        if "plays" in str(file):
            msg = f"cannot write {file}"
            raise FailedWriteError(msg)
        write(self, file, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl.DataFrame, "write_ipc", failing)
    threads = threading.active_count()
    args = [
        "--set", f"paths.raw={generated}",
        "--set", 'paths.catalog=""',
        "--set", f"paths.artifacts={tmp_path / 'art'}",
        "--set", "preprocess.buckets=3",
        "preprocess",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, FailedWriteError), result.output
    assert threading.active_count() == threads
    assert not list((tmp_path / "art").glob(".*partial"))
