"""Output and input hashes on the stage writer's background thread: same manifest, errors kept."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from click.testing import Result
from typer.testing import CliRunner

from musicrec_cli import artifacts as art
from musicrec_cli.app import app

FRAME = pl.DataFrame({"user_idx": [0, 1, 2], "score": [0.5, 0.25, 0.125]})
REAL_SHA256 = art.sha256_file


class Boom(Exception):
    """Raised by a patched hash."""


def _hashlib(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("musicrec-hash")]


@pytest.fixture
def slow_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each hash starts 50 ms late: a commit that does not wait for it writes no sha256."""

    def late(path: Path, stop: threading.Event | None = None) -> str:
        time.sleep(0.05)
        return REAL_SHA256(path, stop)

    monkeypatch.setattr(art, "sha256_file", late)


@pytest.fixture
def threads() -> Iterator[None]:
    """The test leaves no thread running behind it (but the CLI's once-per-process watchdog)."""
    watchdog = "musicrec-signals"
    before = threading.active_count() - sum(t.name == watchdog for t in threading.enumerate())
    yield
    after = threading.active_count() - sum(t.name == watchdog for t in threading.enumerate())
    assert after == before, threading.enumerate()


@pytest.mark.usefixtures("slow_hash", "threads")
def test_manifest_sha256_is_that_of_each_written_file(tmp_path: Path) -> None:
    with art.open_stage(tmp_path, "train") as out:
        out.write_parquet(FRAME, art.TRAIN)
        out.sink_parquet(FRAME.lazy(), art.TEST)
        out.write_matrix(sp.csr_matrix(np.eye(3, dtype=np.float32)), art.TRAIN_MATRIX)
        out.write_arrays({"user_factors": np.ones((3, 2), np.float32)}, "als.npz")
        out.path("extra.bin").write_bytes(b"written by other code")
        out.add_file("extra.bin", rows=1)
        out.write_json({"version": 1}, art.METRICS_JSON)
        out.write_json({"version": 2}, art.METRICS_JSON)  # rewritten: the last one counts
        folder = art.commit_stage(out, {"config": {}})
    assert not _hash_threads()  # joined when the block ended, not left to the garbage collector
    outputs = json.loads((folder / art.MANIFEST).read_text())["outputs"]
    assert sorted(outputs) == sorted(
        [art.TRAIN, art.TEST, art.TRAIN_MATRIX, "als.npz", "extra.bin", art.METRICS_JSON]
    )
    for name, recorded in outputs.items():
        path = folder / name
        assert recorded["sha256"] == _hashlib(path), name
        assert recorded["size"] == path.stat().st_size, name
        assert recorded["mtime_ns"] == path.stat().st_mtime_ns, name
    assert json.loads((folder / art.METRICS_JSON).read_text()) == {"version": 2}
    assert outputs[art.TRAIN]["rows"] == 3
    assert outputs["extra.bin"]["rows"] == 1
    assert art.read_manifest(tmp_path, "train") is not None


@pytest.mark.usefixtures("threads")
def test_a_file_gone_before_its_hash_raises_from_commit(tmp_path: Path) -> None:
    def commit_after_unlink() -> None:
        gate = threading.Event()
        with art.open_stage(tmp_path, "split") as out:
            out.background(gate.wait)  # the hash thread is busy until the file is gone
            out.write_parquet(FRAME, art.TRAIN)
            out.path(art.TRAIN).unlink()
            gate.set()
            art.commit_stage(out, {"config": {}})

    with pytest.raises(FileNotFoundError) as caught:
        commit_after_unlink()
    assert any(entry.name == "sha256_file" for entry in caught.traceback)  # the worker's frames
    assert not (tmp_path / "02_split").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("threads")
def test_an_error_in_the_hash_reaches_the_caller_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: Path, stop: threading.Event | None = None) -> str:
        msg = f"cannot hash {path.name}"
        raise Boom(msg)

    def commit() -> None:
        with art.open_stage(tmp_path, "split") as out:
            out.write_parquet(FRAME, art.TRAIN)
            art.commit_stage(out, {"config": {}})

    monkeypatch.setattr(art, "sha256_file", broken)
    with pytest.raises(Boom, match="cannot hash train.parquet"):
        commit()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("threads")
def test_a_failed_stage_stops_its_running_hash_and_cancels_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, hashed, outcomes = threading.Event(), list[str](), list[str]()

    def watched(path: Path, stop: threading.Event | None = None) -> str:
        started.set()
        hashed.append(path.name)
        try:
            digest = REAL_SHA256(path, stop)
        except art.HashStopped:
            outcomes.append("stopped")
            raise
        outcomes.append("finished")
        return digest

    def fail_while_hashing() -> None:
        with art.open_stage(tmp_path, "split") as out:
            out.path("big.bin").write_bytes(bytes(4 << 20))
            out.add_file("big.bin")
            out.write_parquet(FRAME, art.TRAIN)  # queued behind big.bin
            assert started.wait(5)
            _ = 1 / 0

    assert not _hash_threads()
    monkeypatch.setattr(art, "sha256_file", watched)
    monkeypatch.setattr(art, "HASH_CHUNK", 1)  # one byte per read: seconds for 4 MiB
    with pytest.raises(ZeroDivisionError):
        fail_while_hashing()
    assert outcomes == ["stopped"]  # the running hash gave up, it did not read to the end
    assert hashed == ["big.bin"]  # train.parquet's hash was cancelled
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("threads")
def test_a_stage_that_never_records_starts_no_thread(tmp_path: Path) -> None:
    with art.open_stage(tmp_path, "split") as out:
        assert not _hash_threads()
        art.commit_stage(out, {"config": {}})
    assert json.loads((tmp_path / "02_split" / art.MANIFEST).read_text())["outputs"] == {}


def _listens(folder: Path) -> Path:
    raw = folder / "raw"
    raw.mkdir()
    rows = {
        "user_id": ["u1", "u1", "u2", "u2"],
        "played_at": ["2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z"] * 2,
        "artist_name": ["Björk", "Stranglers", "Björk", "Stranglers"],
        "track_name": ["Jóga", "Golden Brown", "Jóga", "Golden Brown"],
        "ms_played": [200_000] * 4,
    }
    pl.DataFrame(rows).write_csv(raw / "listens.csv")
    return raw


def _preprocess(raw: Path, artifacts: Path) -> Result:
    args = [
        "--set", f"paths.raw={raw}",
        "--set", 'paths.catalog=""',
        "--set", f"paths.artifacts={artifacts}",
        "--set", "preprocess.min_user_tracks=1",
        "--set", "preprocess.min_track_users=1",
        "preprocess",
    ]  # fmt: skip
    return CliRunner().invoke(app, args)


@pytest.mark.usefixtures("slow_hash", "threads")
def test_preprocess_records_each_input_with_its_sha256(tmp_path: Path) -> None:
    raw = _listens(tmp_path)
    result = _preprocess(raw, tmp_path / "art")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "art" / "01_preprocess" / art.MANIFEST).read_text())
    source = raw / "listens.csv"
    assert manifest["inputs"] == {
        str(source): {
            "size": source.stat().st_size,
            "mtime_ns": source.stat().st_mtime_ns,
            "sha256": _hashlib(source),
        }
    }


@pytest.mark.usefixtures("threads")
def test_preprocess_raises_an_input_hash_error_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: Path, stop: threading.Event | None = None) -> str:
        if path.suffix == ".csv":
            msg = f"cannot hash {path.name}"
            raise Boom(msg)
        return REAL_SHA256(path, stop)

    monkeypatch.setattr(art, "sha256_file", broken)
    result = _preprocess(_listens(tmp_path), tmp_path / "art")
    assert result.exit_code != 0
    assert isinstance(result.exception, Boom), result.output
    assert str(result.exception) == "cannot hash listens.csv"
    assert sorted(p.name for p in (tmp_path / "art").iterdir() if p.is_dir()) == []


@pytest.mark.usefixtures("threads")
def test_the_code_fingerprint_is_computed_on_the_hash_thread_once_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    called: list[tuple[str, str]] = []

    def fingerprint(stage: str) -> str:
        called.append((stage, threading.current_thread().name.split("_")[0]))
        return f"code of {stage}"

    monkeypatch.setattr(art, "source_fingerprint", fingerprint)
    with art.open_stage(tmp_path, "split") as out:
        out.write_parquet(FRAME, art.TRAIN)
        split = art.commit_stage(out, {"config": {}})
    with art.open_stage(tmp_path, "train") as out:  # records nothing: no thread to use
        train = art.commit_stage(out, {"config": {}})
    assert called == [("split", "musicrec-hash"), ("train", "MainThread")]
    for folder, stage in ((split, "split"), (train, "train")):
        manifest = json.loads((folder / art.MANIFEST).read_text())
        assert manifest["source_sha256"] == f"code of {stage}"
