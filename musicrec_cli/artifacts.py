"""Stage folders, atomic writes and manifests: the only code that writes under artifacts/.

A stage writes into `artifacts/.NN_<stage>.partial/`, manifest last, then every file is
fsynced and the folder is swapped into place (final -> .old, partial -> final, .old deleted),
with SIGINT/SIGTERM deferred during the swap (the mechanics: musicrec_cli.atomic). Each output's
size and mtime are taken when it is recorded, its sha256 and then its fsync on the writer's one
background thread while the stage goes on (the chain writes ~36 GB at 800M events, all read
again to hash it); `commit_stage` waits for them before it writes the manifest. A folder
whose manifest is missing, or whose files no longer match the sizes and sha256 fingerprints in
it, counts as absent. `recover` (run under the lock before any stage) finishes a swap that a
SIGKILL interrupted and deletes stale partial folders.

Over 300 lines on purpose: the file names, the writer and the manifest check it writes for are
one contract (what `commit_stage` records is exactly what `read_manifest` verifies), and every
runner reaches all of it through the one name `art`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from musicrec_cli import __version__, atomic
from musicrec_cli.codehash import git_revision, source_fingerprint

STAGES = ("preprocess", "split", "features", "train", "predict", "evaluate")
MANIFEST = "manifest.json"
# zstd level 1: 40% faster to write than the default level, files 2% larger (75M plays)
ZSTD_LEVEL = 1
# bytes read per sha256 update: as fast as hashlib.file_digest, and a stop check per MiB
HASH_CHUNK = 1 << 20

P = ParamSpec("P")
T = TypeVar("T")

# file names, one place
PLAYS = "plays.parquet"
EVENTS = "events.parquet"
ITEMS = "items.parquet"
USERS = "users.parquet"
INTERACTION_MATRIX = "interaction_matrix.npz"
QUALITY_REPORT = "quality_report.json"
ID_MAP_TRACKS = "id_map_tracks.parquet"
ID_MAP_ARTISTS = "id_map_artists.parquet"
TRAIN = "train.parquet"
TEST = "test.parquet"
TEST_REPLAY = "test_replay.parquet"
TRAIN_MATRIX = "train_matrix.npz"
TEST_MATRIX = "test_matrix.npz"
FEATURES_TRAIN = "features_train.parquet"
FEATURES_TEST = "features_test.parquet"
ITEM_FEATURES = "item_features.parquet"
USER_FEATURES = "user_features.parquet"
MODELS_JSON = "models.json"
METRICS_JSON = "metrics.json"
PREDICTIONS = "predictions.parquet"
SIMILAR_TRACKS = "similar_tracks.parquet"
PER_USER_METRICS = "per_user_metrics.parquet"


log = logging.getLogger(__name__)

# errno values that mean "the machine cannot store this", not "the data is wrong"
RESOURCE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
)


def out_of_resources(exc: BaseException) -> str | None:
    """What ran out if `exc` means the machine could not store data (disk full, read-only, ...).

    OSError carries an errno; Polars and pyarrow put "(os error 28)" or the strerror in the text.
    """
    if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
        return exc.strerror or str(exc)
    if isinstance(exc, OSError | pl.exceptions.PolarsError):
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        marks = {f"(os error {code})" for code in RESOURCE_ERRNOS} | {
            os.strerror(code) for code in RESOURCE_ERRNOS
        }
        if any(mark in text for mark in marks):
            return text
    return None


class HashStopped(Exception):
    """A background hash given up because its stage was abandoned; never reaches a caller."""


class ArtifactError(RuntimeError):
    """An artifact is missing, incomplete or does not match its manifest."""


class ResourceError(ArtifactError):
    """The machine could not store an artifact: out of disk or memory, or not writable."""


def stage_dir(root: Path, stage: str) -> Path:
    """`root/NN_<stage>` for one of STAGES."""
    return root / f"{STAGES.index(stage) + 1:02d}_{stage}"


def model_file(model: str) -> str:
    """The NPZ file name of a trained model in 04_train, e.g. "als.npz"."""
    return f"{model}.npz"


def report_dir(root: Path) -> Path:
    """The default folder of `musicrec report`, beside the stage folders, never inside one.

    A rerun of evaluate replaces 06_evaluate whole; the report must survive it.
    """
    return root / "report"


def sha256_file(path: Path, stop: threading.Event | None = None) -> str:
    """Hex sha256 of a file's bytes; raises HashStopped once `stop` is set (checked per MiB)."""
    digest, buffer = hashlib.sha256(), bytearray(HASH_CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while size := handle.readinto(buffer):
            if stop is not None and stop.is_set():
                raise HashStopped(path)
            digest.update(view[:size])  # releases the GIL: the main thread runs on meanwhile
    return digest.hexdigest()


def fingerprint(path: Path, stop: threading.Event | None = None) -> dict[str, Any]:
    """Size, modification time and sha256 of one file."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path, stop)}


def fingerprint_inputs(paths: list[Path], stop: threading.Event | None = None) -> dict[str, Any]:
    """Fingerprints of input files (directories expanded to the files in them, sorted)."""
    files: list[Path] = []
    for path in paths:
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(p): fingerprint(p, stop) for p in files}


def file_matches(path: Path, recorded: Mapping[str, Any]) -> bool:
    """True if `path` still has the recorded content.

    The hash is recomputed only if size or mtime changed, as git's index does.
    """
    if not path.is_file():
        return False
    stat = path.stat()
    if stat.st_size != recorded["size"]:
        return False
    if stat.st_mtime_ns == recorded["mtime_ns"]:
        return True
    return bool(sha256_file(path) == recorded["sha256"])


def _folder_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of `folder` if it is complete and every output matches it, else None."""
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        outputs = manifest["outputs"]
        if all(file_matches(folder / name, rec) for name, rec in outputs.items()):
            return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None


def read_manifest(root: Path, stage: str) -> dict[str, Any] | None:
    """The stage's manifest if the stage is complete and its files are intact, else None."""
    return _folder_manifest(stage_dir(root, stage))


def require_stage(root: Path, stage: str) -> dict[str, Any]:
    """The upstream stage's manifest, or an ArtifactError naming the command to run."""
    manifest_path = stage_dir(root, stage) / MANIFEST
    manifest = read_manifest(root, stage)
    if manifest is None:
        state = "not found" if not manifest_path.exists() else "does not match its files"
        msg = f"{manifest_path} {state}; run `musicrec {stage}` first."
        raise ArtifactError(msg)
    return manifest


def _hash_and_sync(path: Path, stop: threading.Event) -> str:
    """sha256 of an output, then its fsync: both off the main thread, overlapping the stage.

    The fsync was the commit's, on the main thread (about 0.2 s at 10M events, seconds at
    800M); right after the hash the file's pages are fresh in the page cache anyway.
    """
    digest = sha256_file(path, stop)
    atomic.fsync(path)
    return digest


@dataclass(slots=True)
class StageWriter:
    """Collects a stage's outputs in a partial folder; `commit_stage` renames it into place.

    Each recorded output is hashed on one background thread owned by the writer (file reads and
    sha256 release the GIL); `open_stage` stops and joins it whatever way the stage ends.
    """

    root: Path
    stage: str
    partial: Path
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    _pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="musicrec-hash")
    )
    _sha256: dict[str, Future[str]] = field(default_factory=dict)
    _source: Future[str] | None = None

    def path(self, name: str) -> Path:
        """Where to write output `name` inside the partial folder."""
        return self.partial / name

    def background(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run `fn` on the writer's background thread, after the work submitted before it.

        For hashing: long work should take `self.stop` and give up once it is set.
        """
        if self._source is None:  # the thread starts: the manifest's code fingerprint first
            self._source = self._pool.submit(source_fingerprint, self.stage)
        return self._pool.submit(fn, *args, **kwargs)

    def source_sha256(self) -> str:
        """`codehash.source_fingerprint` of the stage, computed on the background thread.

        It parses every source file the stage imports (~0.15 CPU s), which at commit ran on
        the main thread after the stage's work; a stage that never recorded computes it here.
        """
        return source_fingerprint(self.stage) if self._source is None else self._source.result()

    def _record(self, name: str, **extra: Any) -> None:
        path = self.path(name)
        stat = path.stat()
        earlier = self._sha256.pop(name, None)
        if earlier is not None:  # written again since: only the last version's hash counts
            earlier.cancel()
        self.outputs[name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns} | extra
        self._sha256[name] = self.background(_hash_and_sync, path, self.stop)

    def wait_hashes(self) -> None:
        """Fill in every recorded output's sha256 once it is hashed and fsynced.

        A hash's or fsync's exception is raised here as it was (out of disk as ResourceError).
        """
        for name, future in self._sha256.items():
            with self.writing(name):
                self.outputs[name]["sha256"] = future.result()
        self._sha256.clear()

    def close(self) -> None:
        """Cancel pending background work, stop a running hash and join the thread."""
        self.stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[None]:
        """Turn out-of-disk/memory and permission errors while writing `name` into one line."""
        try:
            yield
        except MemoryError as exc:
            raise ResourceError(self._resource_message(name, "out of memory")) from exc
        except (OSError, pl.exceptions.PolarsError) as exc:
            what = out_of_resources(exc)
            if what is None:
                raise
            raise ResourceError(self._resource_message(name, what)) from exc

    def _resource_message(self, name: str, what: str) -> str:
        final = stage_dir(self.root, self.stage)
        return (
            f"{self.path(name)}: {what} while writing {name} for `musicrec {self.stage}`; "
            f"nothing was replaced ({final} is unchanged); free space or memory and rerun."
        )

    def sink_parquet(self, frame: pl.LazyFrame, name: str) -> int:
        """Stream a LazyFrame to Parquet (zstd); returns its row count."""
        with self.writing(name):
            frame.sink_parquet(self.path(name), compression="zstd", compression_level=ZSTD_LEVEL)
        rows = pl.scan_parquet(self.path(name)).select(pl.len()).collect().item()
        self._record(name, rows=rows)
        return int(rows)

    def write_parquet(self, frame: pl.DataFrame, name: str) -> int:
        """Write a DataFrame to Parquet (zstd); returns its row count."""
        with self.writing(name):
            frame.write_parquet(self.path(name), compression="zstd", compression_level=ZSTD_LEVEL)
        self._record(name, rows=frame.height)
        return frame.height

    def add_file(self, name: str, **extra: Any) -> None:
        """Record a file already written to `path(name)` by other code (e.g. a streaming writer)."""
        self._record(name, **extra)

    def write_matrix(self, matrix: sp.csr_matrix, name: str) -> None:
        """Save a CSR matrix with scipy.sparse.save_npz, uncompressed.

        zlib took 30 s for 30M entries (0.3 s without, files 1.9x larger): minutes at 300M.
        """
        with self.writing(name):
            sp.save_npz(self.path(name), matrix.tocsr(), compressed=False)
        self._record(name, shape=list(matrix.shape), nnz=int(matrix.nnz))

    def write_arrays(self, arrays: Mapping[str, npt.NDArray[np.generic]], name: str) -> None:
        """Save named arrays to an uncompressed NPZ (loaded with allow_pickle=False)."""
        with self.writing(name), self.path(name).open("wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]
        self._record(name, arrays={k: list(v.shape) for k, v in arrays.items()})

    def write_json(self, data: Any, name: str) -> None:
        """Write JSON (indented, keys sorted)."""
        text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
        with self.writing(name):
            self.path(name).write_text(text, encoding="utf-8")
        self._record(name)


def _partial(root: Path, stage: str) -> Path:
    return root / f".{stage_dir(root, stage).name}.partial"


def _old(root: Path, stage: str) -> Path:
    return root / f".{stage_dir(root, stage).name}.old"


@contextlib.contextmanager
def open_stage(root: Path, stage: str) -> Iterator[StageWriter]:
    """A fresh partial folder for `stage`; removed again if the block raises (or is interrupted)."""
    partial = _partial(root, stage)
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
    except OSError as exc:
        msg = (
            f"{partial}: cannot create the stage folder: {exc.strerror or exc}; expected "
            f"{root} to be a writable directory (set [paths].artifacts)."
        )
        raise ResourceError(msg) from exc
    writer = StageWriter(root=root, stage=stage, partial=partial)
    atomic.ACTIVE_PARTIALS.add(partial)
    try:
        yield writer
    except BaseException:
        writer.close()  # before the delete: no hash left reading the folder
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        writer.close()
        atomic.ACTIVE_PARTIALS.discard(partial)


def commit_stage(writer: StageWriter, manifest: dict[str, Any]) -> Path:
    """Wait for the outputs' hashes and fsyncs, write the manifest last, swap the folder in."""
    writer.wait_hashes()
    final = stage_dir(writer.root, writer.stage)
    full = {
        "stage": writer.stage,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "musicrec_version": __version__,
        "source_sha256": writer.source_sha256(),
        "git_revision": git_revision(),
        **manifest,
        "outputs": writer.outputs,
    }
    with writer.writing(MANIFEST):
        text = json.dumps(full, indent=2, sort_keys=True, default=str)
        (writer.partial / MANIFEST).write_text(text, encoding="utf-8")
        atomic.fsync(writer.partial / MANIFEST)
        atomic.fsync(writer.partial)
        atomic.swap_into_place(writer.partial, final, _old(writer.root, writer.stage))
    return final


def recover(root: Path) -> list[str]:
    """Clean up after runs that were killed (SIGKILL, power loss); call it holding the lock.

    A swap cut between its two renames leaves no final folder: the complete partial folder
    is promoted if its manifest matches its files, else the previous `.old` one is restored.
    Every other partial or old folder is deleted. Returns one line per action, for the log.
    """
    actions: list[str] = []
    if not root.is_dir():
        return actions
    for stage in STAGES:
        final, partial, old = stage_dir(root, stage), _partial(root, stage), _old(root, stage)
        if not final.exists():
            for candidate in (partial, old):
                if _folder_manifest(candidate) is not None:
                    candidate.replace(final)
                    actions.append(f"{final}: restored from {candidate.name}")
                    break
        for leftover in (partial, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
                actions.append(f"{leftover}: removed (left by an interrupted run)")
    for line in actions:
        log.info("%s", line)
    return actions


def load_matrix(root: Path, stage: str, name: str) -> sp.csr_matrix:
    """A CSR matrix written by `stage`."""
    return sp.csr_matrix(sp.load_npz(stage_dir(root, stage) / name))


def load_arrays(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    """Named arrays from an NPZ file, never unpickling anything."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def scan(root: Path, stage: str, name: str) -> pl.LazyFrame:
    """Lazily scan a Parquet output of `stage`."""
    return pl.scan_parquet(stage_dir(root, stage) / name)


def read_json(root: Path, stage: str, name: str) -> Any:
    """A JSON output of `stage`."""
    return json.loads((stage_dir(root, stage) / name).read_text(encoding="utf-8"))
