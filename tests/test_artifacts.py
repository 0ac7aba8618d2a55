"""Atomic stage folders, manifests and fingerprints, recovery after a kill, the lock."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import signal
import subprocess
import threading
from pathlib import Path

import polars as pl
import pytest

from musicrec_cli import artifacts as art
from musicrec_cli import atomic, lock, signals
from musicrec_cli.artifacts import ArtifactError, ResourceError

FRAME = pl.DataFrame({"user_idx": [0, 1, 2], "score": [0.5, 0.25, 0.125]})


def _commit(root: Path, stage: str = "split", *, rows: int = 3) -> Path:
    with art.open_stage(root, stage) as out:
        out.write_parquet(FRAME.head(rows), art.TRAIN)
        out.write_json({"rows": rows}, art.METRICS_JSON)
        return art.commit_stage(out, {"config": {"rows": rows}})


def test_commit_records_fingerprints_and_leaves_no_temporary_folder(tmp_path: Path) -> None:
    folder = _commit(tmp_path)
    assert folder == tmp_path / "02_split"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stage"] == "split"
    assert manifest["config"] == {"rows": 3}
    assert manifest["outputs"][art.TRAIN]["rows"] == 3
    assert manifest["outputs"][art.TRAIN]["sha256"] == art.sha256_file(folder / art.TRAIN)
    size = (folder / art.METRICS_JSON).stat().st_size
    assert manifest["outputs"][art.METRICS_JSON]["size"] == size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["02_split"]
    assert art.require_stage(tmp_path, "split") == manifest


def test_commit_fsyncs_outputs_manifest_and_folders_before_and_after_the_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    monkeypatch.setattr(atomic, "fsync", lambda path: synced.append(path.name))
    _commit(tmp_path)
    assert synced == [
        art.TRAIN,
        art.METRICS_JSON,
        "manifest.json",
        ".02_split.partial",
        tmp_path.name,
    ]


def test_each_output_is_fsynced_after_its_hash_on_the_hash_thread_before_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str, str]] = []  # (what, file, thread)
    real_sha256 = art.sha256_file

    def hashed(path: Path, stop: threading.Event | None = None) -> str:
        events.append(("hash", path.name, threading.current_thread().name))
        return real_sha256(path, stop)

    def synced(path: Path) -> None:
        events.append(("fsync", path.name, threading.current_thread().name))

    monkeypatch.setattr(art, "sha256_file", hashed)
    monkeypatch.setattr(atomic, "fsync", synced)
    _commit(tmp_path)
    worker = events[0][2]
    assert worker.startswith("musicrec-hash")
    main = threading.current_thread().name
    assert events == [
        ("hash", art.TRAIN, worker),
        ("fsync", art.TRAIN, worker),
        ("hash", art.METRICS_JSON, worker),
        ("fsync", art.METRICS_JSON, worker),
        ("fsync", "manifest.json", main),
        ("fsync", ".02_split.partial", main),
        ("fsync", tmp_path.name, main),
    ]


def test_second_commit_replaces_the_first(tmp_path: Path) -> None:
    _commit(tmp_path, rows=3)
    _commit(tmp_path, rows=2)
    assert pl.read_parquet(tmp_path / "02_split" / art.TRAIN).height == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["02_split"]


def test_failure_inside_the_block_removes_partial_and_keeps_previous(tmp_path: Path) -> None:
    _commit(tmp_path, rows=3)
    before = (tmp_path / "02_split" / art.TRAIN).read_bytes()

    def fail_midway() -> None:
        with art.open_stage(tmp_path, "split") as out:
            out.write_parquet(FRAME.head(1), art.TRAIN)
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        fail_midway()
    assert (tmp_path / "02_split" / art.TRAIN).read_bytes() == before
    assert not (tmp_path / ".02_split.partial").exists()
    assert set() == atomic.ACTIVE_PARTIALS


@pytest.mark.parametrize(
    "damage",
    ["manifest_missing", "manifest_not_json", "output_deleted", "output_truncated", "same_size"],
)
def test_damaged_stage_counts_as_not_done(tmp_path: Path, damage: str) -> None:
    folder = _commit(tmp_path)
    data = (folder / art.TRAIN).read_bytes()
    if damage == "manifest_missing":
        (folder / "manifest.json").unlink()
    elif damage == "manifest_not_json":
        (folder / "manifest.json").write_text("{not json")
    elif damage == "output_deleted":
        (folder / art.TRAIN).unlink()
    elif damage == "output_truncated":
        (folder / art.TRAIN).write_bytes(data[:-1])
    else:
        (folder / art.TRAIN).write_bytes(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])
    assert art.read_manifest(tmp_path, "split") is None
    state = "not found" if damage == "manifest_missing" else "does not match its files"
    expected = f"02_split/manifest.json {state}; run `musicrec split`"
    with pytest.raises(ArtifactError, match=expected):
        art.require_stage(tmp_path, "split")


def test_touched_but_unchanged_output_still_matches(tmp_path: Path) -> None:
    folder = _commit(tmp_path)
    os.utime(folder / art.TRAIN, ns=(0, 0))  # mtime differs: the hash decides
    assert art.read_manifest(tmp_path, "split") is not None


def test_missing_stage_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"03_features/manifest.json not found; run `musicrec"):
        art.require_stage(tmp_path, "features")


# ---------------------------------------------------------------- recovery after SIGKILL


def _state(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_recover_restores_old_when_killed_between_the_renames(tmp_path: Path) -> None:
    folder = _commit(tmp_path, rows=3)
    folder.replace(tmp_path / ".02_split.old")  # final -> old done, partial -> final not
    (tmp_path / ".02_split.partial").mkdir()  # incomplete: no manifest
    actions = art.recover(tmp_path)
    assert _state(tmp_path) == ["02_split"]
    assert art.read_manifest(tmp_path, "split") is not None
    assert len(actions) == 2


def test_recover_promotes_a_complete_partial(tmp_path: Path) -> None:
    _commit(tmp_path, rows=3)
    (tmp_path / "02_split").replace(tmp_path / ".02_split.partial")
    art.recover(tmp_path)
    assert _state(tmp_path) == ["02_split"]
    assert pl.read_parquet(tmp_path / "02_split" / art.TRAIN).height == 3


def test_recover_deletes_stale_folders_and_keeps_final(tmp_path: Path) -> None:
    _commit(tmp_path, rows=3)
    before = (tmp_path / "02_split" / art.TRAIN).read_bytes()
    (tmp_path / ".02_split.partial").mkdir()
    (tmp_path / ".02_split.partial" / art.TRAIN).write_bytes(b"half")
    (tmp_path / ".05_predict.partial").mkdir()
    assert len(art.recover(tmp_path)) == 2
    assert _state(tmp_path) == ["02_split"]
    assert (tmp_path / "02_split" / art.TRAIN).read_bytes() == before
    assert art.recover(tmp_path) == []


# --------------------------------------------------------------------- out of disk/memory


def test_out_of_disk_while_writing_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commit(tmp_path, rows=3)

    def full(self: Path, *args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with (
        pytest.raises(ResourceError, match=r"metrics.json: No space left on device while writ"),
        art.open_stage(tmp_path, "split") as out,
    ):
        out.write_json({}, art.METRICS_JSON)
    assert _state(tmp_path) == ["02_split"]


def _raise_while_writing(writer: art.StageWriter, error: BaseException) -> None:
    with writer.writing("x.parquet"):
        raise error


def test_polars_io_error_with_enospc_becomes_resource_error(tmp_path: Path) -> None:
    writer = art.StageWriter(root=tmp_path, stage="train", partial=tmp_path)
    error = pl.exceptions.ComputeError("failed to write: No space left (os error 28)")
    with pytest.raises(ResourceError, match="os error 28"):
        _raise_while_writing(writer, error)


def test_other_errors_pass_through_unchanged(tmp_path: Path) -> None:
    writer = art.StageWriter(root=tmp_path, stage="train", partial=tmp_path)
    with pytest.raises(FileNotFoundError):
        _raise_while_writing(writer, FileNotFoundError(errno.ENOENT, "gone"))
    with pytest.raises(pl.exceptions.ComputeError):
        _raise_while_writing(writer, pl.exceptions.ComputeError("bad value"))


def test_signals_during_the_swap_are_deferred_then_delivered(tmp_path: Path) -> None:
    _commit(tmp_path, rows=3)
    seen: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda *_: seen.append("term"))
    try:
        with atomic.signals_deferred():
            signals._on_signal(signal.SIGTERM, None)  # noqa: SLF001  # what the handler does
            seen.append("inside")
        seen.append("after")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == ["inside", "term", "after"]
    assert atomic.SWAP.pending == []


def test_sigterm_outside_a_swap_raises_terminated() -> None:
    signals.state.guarded += 1
    try:
        with pytest.raises(signals.Terminated):
            signals._on_signal(signal.SIGTERM, None)  # noqa: SLF001
    finally:
        signals.state.guarded -= 1
    with pytest.raises(KeyboardInterrupt):
        signals._on_signal(signal.SIGINT, None)  # noqa: SLF001


# ------------------------------------------------------------------------------- the lock


def test_lock_records_owner_and_is_reentrant(tmp_path: Path) -> None:
    first = lock.acquire(tmp_path, command="musicrec all")
    try:
        owner = json.loads((tmp_path / ".lock").read_text())
        assert owner["pid"] == os.getpid()
        assert owner["command"] == "musicrec all"
        assert lock.acquire(tmp_path, command="musicrec train") is first
    finally:
        lock.release(first)
    assert (tmp_path / ".lock").read_text() == ""
    assert lock.acquire(tmp_path, command="again").previous is None
    lock.release_all()


def _hold(path: Path, owner: dict[str, object]) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps(owner).encode())
    return fd


def test_held_lock_refuses_naming_the_owner(tmp_path: Path) -> None:
    owner = {"pid": 4242, "host": "box", "command": "musicrec all", "started_at": "noon"}
    fd = _hold(tmp_path / ".lock", owner)
    try:
        expected = r"pid 4242 on box \(`musicrec all`, started noon\)"
        with pytest.raises(lock.LockedError, match=expected):
            lock.acquire(tmp_path, command="musicrec train", wait_seconds=0.3)
    finally:
        os.close(fd)


def test_wait_takes_the_lock_once_released(tmp_path: Path) -> None:
    fd = _hold(tmp_path / ".lock", {"pid": 1})
    timer = threading.Timer(0.3, os.close, args=(fd,))
    timer.start()
    try:
        held = lock.acquire(tmp_path, command="musicrec train", wait_seconds=30)
    finally:
        timer.join()
    assert json.loads((tmp_path / ".lock").read_text())["command"] == "musicrec train"
    lock.release(held)


def test_stale_lock_is_taken_over_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    child = subprocess.Popen(["true"])  # noqa: S607
    child.wait()
    (tmp_path / ".lock").write_text(json.dumps({"pid": child.pid, "host": "h", "command": "x"}))
    with caplog.at_level(logging.WARNING):
        held = lock.acquire(tmp_path, command="musicrec all")
    lock.release(held)
    assert held.previous == {"pid": child.pid, "host": "h", "command": "x"}
    assert f"pid {child.pid}" in caplog.text
    assert "no longer running" in caplog.text


def test_lock_in_an_unwritable_place_is_a_resource_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ResourceError, match=r"file/.lock: cannot create the lock file"):
        lock.acquire(blocker, command="musicrec all")
