"""The fault and bad-input catalogue (docs/faults.md), one parametrised case per row.

Every failing case asserts the behaviour, not the wording: the exit code, exactly one `error:`
line on stderr and no traceback, the file, column or key named in that line, the previous
artifacts byte-identical and no partial folder left. Accepted inputs assert what was kept.
Each test starts from a copy of one complete tiny pipeline run (built once per module).
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import io
import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import stages.predict
import stages.split
from musicrec_cli import lineage
from musicrec_cli.config import ConfigError
from tests.faultkit import (
    Outcome,
    copy_tree,
    invoke,
    leftovers,
    raw_events,
    snapshot,
    write_config,
    write_csv,
)

EXIT_USER, EXIT_USAGE, EXIT_LOCKED, EXIT_RESOURCE = 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class World:
    """A copy of the complete tiny pipeline: raw log, artifacts, config."""

    folder: Path
    raw: Path
    art: Path
    config: Path
    before: dict[str, bytes]

    def table(self, stage_folder: str, name: str) -> pl.DataFrame:
        """A Parquet output of the current artifacts."""
        return pl.read_parquet(self.art / stage_folder / name)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("baseline")
    raw = write_csv(raw_events(), folder / "raw" / "listens.csv")
    config = write_config(folder, raw=raw, art=folder / "art")
    outcome = invoke(config, "all")
    assert outcome.code == 0, outcome.stderr
    return folder


@pytest.fixture
def world(baseline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.chdir(tmp_path)
    copy_tree(baseline / "raw", tmp_path / "raw")
    art = copy_tree(baseline / "art", tmp_path / "art")
    raw = tmp_path / "raw" / "listens.csv"
    config = write_config(tmp_path, raw=raw, art=art)
    return World(tmp_path, raw, art, config, snapshot(art))


def assert_refused(world: World, outcome: Outcome, code: int, *names: str) -> str:
    """The run failed cleanly: code, one error line naming `names`, artifacts untouched."""
    assert outcome.code == code, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert len(outcome.error_lines) == 1, outcome.stderr
    line = outcome.error_lines[0]
    for name in names:
        assert name in line, line
    assert snapshot(world.art) == world.before
    assert leftovers(world.art) == []
    return line


def _rewrite_raw(world: World, name: str, data: bytes) -> Path:
    world.raw.unlink()
    path = world.raw.parent / name
    path.write_bytes(data)
    write_config(world.folder, raw=path, art=world.art)
    return path


def _csv(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_csv(buf)
    return buf.getvalue()


# ---------------------------------------------------------------- raw input, refused (exit 1)

REFUSED_RAW: dict[str, tuple[str, Callable[[pl.DataFrame, bytes], bytes], str]] = {
    # id: (file name, raw bytes from (events, good CSV bytes), what the line must name)
    "empty_file": ("listens.csv", lambda ev, good: b"", "{path}"),
    "header_only": ("listens.csv", lambda ev, good: good.split(b"\n")[0] + b"\n", "{path}"),
    "wrong_delimiter": ("listens.csv", lambda ev, good: good.replace(b",", b";"), "'user_id'"),
    "missing_required_column": (
        "listens.csv",
        lambda ev, good: _csv(ev.drop("track_name")),
        "'track_name'",
    ),
    "garbage_timestamps": (
        "listens.csv",
        lambda ev, good: _csv(ev.with_columns(pl.lit("yesterday at noon").alias("played_at"))),
        "'played_at'",
    ),
    "truncated_gzip": ("listens.csv.gz", lambda ev, good: gzip.compress(good)[:2000], "{path}"),
    "truncated_parquet": (
        "listens.parquet",
        lambda ev, good: _parquet(ev)[: len(_parquet(ev)) // 2],
        "{path}",
    ),
    "parquet_not_parquet": ("listens.parquet", lambda ev, good: b"PAR1 this is text", "{path}"),
}


def _parquet(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


@pytest.mark.parametrize("case", list(REFUSED_RAW))
def test_bad_raw_input_is_refused_in_one_line(world: World, case: str) -> None:
    name, make, names = REFUSED_RAW[case]
    events = pl.read_csv(world.raw, try_parse_dates=True)
    path = _rewrite_raw(world, name, make(events, world.raw.read_bytes()))
    outcome = invoke(world.config, "preprocess")
    assert_refused(world, outcome, EXIT_USER, names.format(path=path))


def test_directory_with_no_matching_files(world: World) -> None:
    folder = world.folder / "drop"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a log")
    write_config(world.folder, raw=folder, art=world.art)
    assert_refused(world, invoke(world.config, "preprocess"), EXIT_USER, str(folder))


def test_glob_matching_only_a_directory(world: World) -> None:
    (world.folder / "raw" / "listens.d").mkdir()
    spec = f"{world.folder}/raw/listens.d*"
    (world.folder / "musicrec.toml").write_text(
        world.config.read_text().replace(str(world.raw), spec)
    )
    assert_refused(world, invoke(world.config, "preprocess"), EXIT_USER, spec)


def test_missing_raw_path(world: World) -> None:
    gone = world.folder / "nowhere" / "listens.csv"
    write_config(world.folder, raw=gone, art=world.art)
    assert_refused(world, invoke(world.config, "preprocess"), EXIT_USER, str(gone))


def test_all_users_filtered_out_by_the_thresholds(world: World) -> None:
    outcome = invoke(world.config, "--set", "preprocess.min_user_tracks=100000", "preprocess")
    assert_refused(world, outcome, EXIT_USER, "min_user_tracks")


def test_test_set_with_no_overlap_with_train(world: World) -> None:
    # the last 20% of the time range holds only new users playing new tracks
    late = pl.DataFrame(
        {
            "user_id": [f"late_{u}" for u in range(5) for _ in range(4)],
            "played_at": [f"2026-06-0{t + 1}T12:00:00Z" for _ in range(5) for t in range(4)],
            "track_uri": [f"late:{t}" for _ in range(5) for t in range(4)],
            "artist_name": ["Late Band"] * 20,
            "track_name": [f"Late Song {t}" for _ in range(5) for t in range(4)],
            "ms_played": [200_000] * 20,
            "skipped": [False] * 20,
        }
    )
    early = pl.read_csv(world.raw, infer_schema=False)
    world.raw.write_bytes(_csv(pl.concat([early, late.cast(pl.String)])))
    assert invoke(world.config, "preprocess").code == 0
    before = snapshot(world.art)
    outcome = invoke(world.config, "split")
    assert outcome.code == EXIT_USER
    assert len(outcome.error_lines) == 1
    assert "Traceback" not in outcome.stderr
    assert "02_split" in outcome.error_lines[0]
    assert "test_fraction" in outcome.error_lines[0]
    assert snapshot(world.art) == before
    assert leftovers(world.art) == []


# ----------------------------------------------------- raw input, accepted (exit 0, values kept)


def _plays(world: World) -> pl.DataFrame:
    return world.table("01_preprocess", "plays.parquet")


def test_one_unreadable_value_in_a_column_is_counted_not_fatal(world: World) -> None:
    """Mixed types: one ms_played of 2,000 is text; under max_bad_share it is dropped and
    counted, with the row as an example (past 1% the stage fails: garbage_timestamps)."""
    events = raw_events().with_columns(pl.col("ms_played").cast(pl.String))
    events = events.with_columns(
        pl.when(pl.int_range(pl.len()) == 1500)
        .then(pl.lit("abc"))
        .otherwise(pl.col("ms_played"))
        .alias("ms_played")
    )
    _rewrite_raw(world, "listens.csv", _csv(events))
    outcome = invoke(world.config, "preprocess")
    assert outcome.code == 0, outcome.stderr
    report = json.loads((world.art / "01_preprocess" / "quality_report.json").read_text())
    assert report["unparseable"]["rows"] == 1
    assert report["unparseable"]["examples"][0]["drop_reason"] == "bad_ms_played"
    parse = next(step for step in report["steps"] if step["step"] == "parse")
    assert parse["dropped"] == {"bad_ms_played": 1}


def test_extra_columns_are_accepted_and_ignored(world: World) -> None:
    before = world.table("01_preprocess", "events.parquet")
    events = pl.read_csv(world.raw, infer_schema=False)
    world.raw.write_bytes(_csv(events.with_columns(pl.lit("phone").alias("device"))))
    assert invoke(world.config, "preprocess").code == 0
    assert world.table("01_preprocess", "events.parquet").equals(before)


def test_iso_timestamps_with_offsets_are_read_as_utc(world: World) -> None:
    before = _plays(world)
    events = pl.read_csv(world.raw, try_parse_dates=True)
    shifted = events.with_columns(
        pl.col("played_at")
        .dt.convert_time_zone("Europe/Paris")
        .dt.strftime("%Y-%m-%dT%H:%M:%S%.f%:z")
    )
    world.raw.write_bytes(_csv(shifted))
    assert invoke(world.config, "preprocess").code == 0
    assert _plays(world)["played_at"].equals(before["played_at"])


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_epoch_timestamps_are_read_in_the_right_unit(world: World, unit: str) -> None:
    """Epoch seconds or milliseconds give the same instants as the ISO run."""
    before = _plays(world)
    events = pl.read_csv(world.raw, try_parse_dates=True)
    world.raw.write_bytes(
        _csv(events.with_columns(pl.col("played_at").dt.truncate("1s").dt.epoch(unit)))
    )
    outcome = invoke(world.config, "preprocess")
    assert outcome.code == 0, outcome.stderr
    assert (
        _plays(world)["played_at"].dt.truncate("1s").equals(before["played_at"].dt.truncate("1s"))
    )


def test_far_future_timestamps_are_dropped(world: World) -> None:
    before = _plays(world)
    events = pl.read_csv(world.raw, infer_schema=False)
    future = events.head(50).with_columns(pl.col("played_at").str.replace(r"^\d{4}", "2999"))
    world.raw.write_bytes(_csv(pl.concat([events, future])))
    assert invoke(world.config, "preprocess").code == 0
    assert _plays(world).equals(before)


def test_negative_ms_played_dropped_and_absurd_kept_without_overflow(world: World) -> None:
    events = pl.read_csv(world.raw, try_parse_dates=True)
    events = events.with_columns(pl.col("ms_played").cast(pl.Int64))
    negative = events.head(40).with_columns(pl.lit(-5, pl.Int64).alias("ms_played"))
    absurd = events.slice(0, 1).with_columns(pl.lit(10**12, pl.Int64).alias("ms_played"))
    world.raw.write_bytes(_csv(pl.concat([absurd, events.slice(1), negative])))
    assert invoke(world.config, "preprocess").code == 0
    plays = _plays(world)
    assert plays["ms_played"].min() >= 30_000
    assert plays["ms_played"].max() == 10**12
    assert world.table("01_preprocess", "events.parquet")["total_ms_played"].max() >= 10**12


def test_non_utf8_bytes_are_refused_naming_the_file(world: World) -> None:
    """Latin-1 names in a UTF-8 CSV: refused in one line naming the file, nothing written."""
    path = _rewrite_raw(
        world, "listens.csv", world.raw.read_bytes().replace(b"Kites", "Kités".encode("latin-1"))
    )
    assert_refused(world, invoke(world.config, "preprocess"), EXIT_USER, str(path))


def _rows_valid(world: World) -> int:
    report = json.loads((world.art / "01_preprocess" / "quality_report.json").read_text())
    parse = next(step for step in report["steps"] if step["step"] == "parse")
    return int(parse["rows_out"])


def test_nul_bytes_inside_names_keep_every_play(world: World) -> None:
    n_before = _rows_valid(world)
    world.raw.write_bytes(world.raw.read_bytes().replace(b"Kites", b"Ki\x00tes", 5))
    assert invoke(world.config, "preprocess").code == 0
    assert _rows_valid(world) == n_before


def test_very_long_names_are_kept(world: World) -> None:
    n_before = _rows_valid(world)
    long_name = "Долгая Kites " * 1_600  # 20,800 characters
    events = pl.read_csv(world.raw, infer_schema=False)
    one_track = (pl.col("artist_name") == events["artist_name"][0]) & (
        pl.col("track_name") == events["track_name"][0]
    )
    world.raw.write_bytes(
        _csv(
            events.with_columns(
                pl.when(one_track)
                .then(pl.lit(long_name))
                .otherwise(pl.col("artist_name"))
                .alias("artist_name")
            )
        )
    )
    assert invoke(world.config, "preprocess").code == 0
    items = world.table("01_preprocess", "items.parquet")
    assert items["artist_name"].str.len_chars().max() == len(long_name.strip())
    assert _rows_valid(world) == n_before


# ------------------------------------------------------------------------- config (exit 1)

CONFIG_CASES: dict[str, tuple[list[str], str, tuple[str, ...]]] = {
    # id: (--set overrides, extra TOML text, names in the line)
    "key_misspelt": (["train.factor=8"], "", ("'factor'", "'factors'")),
    "key_misspelt_in_file": ([], "[split]\ntest_fracton = 0.3\n", ("test_fracton", "[split]")),
    "value_of_wrong_type": (['train.factors="eight"'], "", ("factors", "an integer")),
    "value_out_of_range": (["split.test_fraction=1.5"], "", ("test_fraction",)),
    "unknown_model_name": (['train.models=["als", "svd"]'], "", ("models", "popularity")),
    "unknown_table": (["trian.factors=8"], "", ("'trian'", "'train'")),
    "set_without_equals": (["train.factors"], "", ("--set", "train.factors")),
    "not_toml": ([], "[train\nfactors = 8\n", ("musicrec.toml",)),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config_is_refused_in_one_line(world: World, case: str) -> None:
    overrides, extra, names = CONFIG_CASES[case]
    if extra:
        world.config.write_text(world.config.read_text() + extra)
    args = [a for o in overrides for a in ("--set", o)]
    assert_refused(world, invoke(world.config, *args, "train"), EXIT_USER, *names)


def test_missing_config_file_named(world: World) -> None:
    gone = world.folder / "nope.toml"
    outcome = invoke(gone, "train")
    assert_refused(world, outcome, EXIT_USER, str(gone))


# ---------------------------------------------------------------- upstream artifacts (exit 1)


def test_upstream_manifest_missing_is_refused_naming_it(world: World) -> None:
    (world.art / "03_features" / "manifest.json").unlink()
    before = snapshot(world.art)
    outcome = invoke(world.config, "train")
    assert outcome.code == EXIT_USER
    assert "Traceback" not in outcome.stderr
    assert len(outcome.error_lines) == 1
    assert "03_features/manifest.json" in outcome.error_lines[0]
    assert "musicrec features" in outcome.error_lines[0]
    assert snapshot(world.art) == before


@pytest.mark.parametrize(
    ("folder", "name", "command"),
    [
        ("02_split", "train.parquet", "features"),  # truncated
        ("04_train", "als.npz", "predict"),  # same size, one byte changed
        ("01_preprocess", "manifest.json", "split"),  # manifest not JSON
    ],
)
def test_upstream_artifact_altered_is_refused_naming_it(
    world: World, folder: str, name: str, command: str
) -> None:
    path = world.art / folder / name
    data = path.read_bytes()
    if name.endswith(".parquet"):
        path.write_bytes(data[: len(data) // 2])
    elif name.endswith(".npz"):
        path.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    else:
        path.write_bytes(data[:20])
    before = snapshot(world.art)
    outcome = invoke(world.config, command)
    assert outcome.code == EXIT_USER
    assert "Traceback" not in outcome.stderr
    assert len(outcome.error_lines) == 1
    assert f"{folder}/manifest.json" in outcome.error_lines[0]
    assert snapshot(world.art) == before


def test_altered_stage_is_not_up_to_date_and_is_redone(world: World) -> None:
    path = world.art / "04_train" / "als.npz"
    data = path.read_bytes()
    path.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    outcome = invoke(world.config, "all")
    assert outcome.code == 0, outcome.stderr
    assert "train: up to date" not in outcome.stderr
    assert path.read_bytes() == data
    lineage.check_chain(world.art, ("evaluate",))  # one consistent run after `all`


# ---------------------------------------------------------- machine: disk, memory, read-only


def test_out_of_disk_while_writing_names_the_file(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pl.DataFrame.write_parquet

    def full_disk(self: pl.DataFrame, file: object, *args: object, **kwargs: object) -> None:
        if str(file).endswith("events.parquet"):
            Path(str(file)).write_bytes(b"PAR1 half a file")
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        real(self, file, *args, **kwargs)  # type: ignore[arg-type]

    real_sink = pl.LazyFrame.sink_parquet

    def full_disk_sink(self: pl.LazyFrame, path: object, *args: object, **kwargs: object) -> None:
        if str(path).endswith("events.parquet"):
            Path(str(path)).write_bytes(b"PAR1 half a file")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_sink(self, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full_disk)
    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", full_disk_sink)
    outcome = invoke(world.config, "preprocess")
    assert_refused(world, outcome, EXIT_RESOURCE, "events.parquet", "No space left")


def test_out_of_memory_while_writing_names_the_file(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(np, "savez", no_memory)
    outcome = invoke(world.config, "train")
    assert_refused(world, outcome, EXIT_RESOURCE, ".npz", "out of memory")


def test_out_of_memory_while_computing_names_the_command(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(stages.predict, "scorer", no_memory)
    outcome = invoke(world.config, "predict")
    assert_refused(world, outcome, EXIT_RESOURCE, "musicrec predict", "out of memory")


def test_artifacts_path_is_a_file(world: World) -> None:
    """Stands in for an unwritable directory: as root, chmod does not stop writes."""
    blocker = world.folder / "blocked"
    blocker.write_text("a file where the artifacts directory should be")
    write_config(world.folder, raw=world.raw, art=blocker)
    outcome = invoke(world.config, "preprocess")
    assert outcome.code == EXIT_RESOURCE
    assert "Traceback" not in outcome.stderr
    assert len(outcome.error_lines) == 1
    assert str(blocker) in outcome.error_lines[0]
    assert blocker.read_text().startswith("a file")


def test_read_only_artifacts_directory(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only mount, simulated: opening anything under artifacts/ for writing gives EROFS.

    (Tests run as root, where chmod does not stop writes, and a real read-only bind mount needs
    privileges the CI does not have.)
    """
    real_open, real_mkdir = os.open, Path.mkdir
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def ro_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if str(path).startswith(str(world.art)) and flags & writing:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    def ro_mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if str(self).startswith(str(world.art)):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", ro_open)
    monkeypatch.setattr(Path, "mkdir", ro_mkdir)
    outcome = invoke(world.config, "all", "--force")
    assert_refused(world, outcome, EXIT_RESOURCE, str(world.art), "Read-only")


# ------------------------------------------------------------------------------- the lock


def _hold_lock(art: Path, owner: dict[str, object]) -> int:
    fd = os.open(art / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(owner).encode())
    return fd


def test_second_run_stops_naming_the_owner(world: World) -> None:
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": "musicrec all"}
    fd = _hold_lock(world.art, owner | {"started_at": "2026-01-01T00:00:00+00:00"})
    try:
        outcome = invoke(world.config, "train")
    finally:
        os.close(fd)
    assert_refused(world, outcome, EXIT_LOCKED, ".lock", f"pid {os.getpid()}", "--wait")


def test_wait_option_waits_for_the_owner(world: World) -> None:
    fd = _hold_lock(world.art, {"pid": os.getpid(), "host": "here", "command": "musicrec all"})
    timer = threading.Timer(0.5, os.close, args=(fd,))
    timer.start()
    try:
        outcome = invoke(world.config, "--wait", "30", "evaluate")
    finally:
        timer.join()
    assert outcome.code == 0, outcome.stderr


def test_stale_lock_of_a_dead_process_is_taken_over(world: World) -> None:
    child = subprocess.Popen(["true"])  # noqa: S607
    child.wait()
    owner = {"pid": child.pid, "host": socket.gethostname(), "command": "musicrec all"}
    (world.art / ".lock").write_text(json.dumps(owner | {"started_at": "2026-01-01"}))
    outcome = invoke(world.config, "evaluate")
    assert outcome.code == 0, outcome.stderr
    assert f"pid {child.pid}" in outcome.stderr
    assert "stale" in outcome.stderr
    assert (world.art / ".lock").read_text() == ""  # released cleanly: no owner recorded


# --------------------------------------------------------------- errors, usage, bugs, debug


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["recommend", "no_such_user"], "no_such_user"),
        (["recommend", "--liked", "Nobody - Nothing At All"], "Nobody - Nothing At All"),
        (["similar", "no such artist - no such title"], "no such artist - no such title"),
        (["explain", "no_such_user", "x - y"], "no_such_user"),
        (["recommend", "--model", "svd", "u1"], "svd"),
    ],
    ids=[
        "unknown_user",
        "unknown_liked_track",
        "unknown_track",
        "explain_unknown_user",
        "unknown_model_to_serve",
    ],
)
def test_serving_unknown_ids_is_refused_in_one_line(
    world: World, args: list[str], named: str
) -> None:
    assert_refused(world, invoke(world.config, *args), EXIT_USER, named)


def test_usage_error_exits_2(world: World) -> None:
    outcome = invoke(world.config, "train", "--no-such-option")
    assert outcome.code == EXIT_USAGE
    assert "Traceback" not in outcome.stderr
    assert snapshot(world.art) == world.before


def test_debug_shows_the_traceback_of_a_user_error(world: World) -> None:
    outcome = invoke(world.config, "--debug", "--set", "train.factor=8", "train")
    assert isinstance(outcome.exception, ConfigError)
    assert "factor" in str(outcome.exception)


def test_a_real_bug_keeps_its_traceback(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        return 1 // 0  # type: ignore[return-value]

    monkeypatch.setattr(stages.split, "period_pairs", broken)
    outcome = invoke(world.config, "split")
    assert isinstance(outcome.exception, ZeroDivisionError)
    assert outcome.error_lines == []
    assert snapshot(world.art) == world.before
    assert leftovers(world.art) == []
