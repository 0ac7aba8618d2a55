"""Stage folders, atomic writes and manifests: the only code that writes under artifacts/.

A stage writes into `artifacts/.NN_<stage>.partial/`, manifest last, then the folder is renamed
into place. A folder whose manifest is missing, or whose files no longer match the sizes and
sha256 fingerprints in it, counts as absent.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from musicrec_cli import __version__

STAGES = ("preprocess", "split", "features", "train", "predict", "evaluate")
MANIFEST = "manifest.json"

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
TRAIN_MATRIX = "train_matrix.npz"
TEST_MATRIX = "test_matrix.npz"
FEATURES_TRAIN = "features_train.parquet"
FEATURES_TEST = "features_test.parquet"
ITEM_FEATURES = "item_features.parquet"
USER_FEATURES = "user_features.parquet"
MODELS_JSON = "models.json"
METRICS_JSON = "metrics.json"
PREDICTIONS = "predictions.parquet"
PER_USER_METRICS = "per_user_metrics.parquet"


class ArtifactError(RuntimeError):
    """An artifact is missing, incomplete or does not match its manifest."""


def stage_dir(root: Path, stage: str) -> Path:
    """`root/NN_<stage>` for one of STAGES."""
    return root / f"{STAGES.index(stage) + 1:02d}_{stage}"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fingerprint(path: Path) -> dict[str, Any]:
    """Size, modification time and sha256 of one file."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path)}


def fingerprint_inputs(paths: list[Path]) -> dict[str, Any]:
    """Fingerprints of input files (directories expanded to the files in them, sorted)."""
    files: list[Path] = []
    for path in paths:
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(p): fingerprint(p) for p in files}


def _matches(path: Path, recorded: Mapping[str, Any]) -> bool:
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


def read_manifest(root: Path, stage: str) -> dict[str, Any] | None:
    """The stage's manifest if the stage is complete and its files are intact, else None."""
    path = stage_dir(root, stage) / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        outputs = manifest["outputs"]
    except (OSError, ValueError, KeyError):
        return None
    folder = stage_dir(root, stage)
    if all(_matches(folder / name, rec) for name, rec in outputs.items()):
        return manifest
    return None


def require_stage(root: Path, stage: str) -> dict[str, Any]:
    """The upstream stage's manifest, or an ArtifactError naming the command to run."""
    manifest_path = stage_dir(root, stage) / MANIFEST
    manifest = read_manifest(root, stage)
    if manifest is None:
        state = "not found" if not manifest_path.exists() else "does not match its files"
        msg = f"{manifest_path} {state}; run `musicrec {stage}` first."
        raise ArtifactError(msg)
    return manifest


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@dataclass(slots=True)
class StageWriter:
    """Collects a stage's outputs in a partial folder; `commit_stage` renames it into place."""

    root: Path
    stage: str
    partial: Path
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        """Where to write output `name` inside the partial folder."""
        return self.partial / name

    def _record(self, name: str, **extra: Any) -> None:
        self.outputs[name] = fingerprint(self.path(name)) | extra

    def sink_parquet(self, frame: pl.LazyFrame, name: str) -> int:
        """Stream a LazyFrame to Parquet (zstd); returns its row count."""
        frame.sink_parquet(self.path(name), compression="zstd")
        rows = pl.scan_parquet(self.path(name)).select(pl.len()).collect().item()
        self._record(name, rows=rows)
        return int(rows)

    def write_parquet(self, frame: pl.DataFrame, name: str) -> int:
        """Write a DataFrame to Parquet (zstd); returns its row count."""
        frame.write_parquet(self.path(name), compression="zstd")
        self._record(name, rows=frame.height)
        return frame.height

    def add_file(self, name: str, **extra: Any) -> None:
        """Record a file already written to `path(name)` by other code (e.g. a streaming writer)."""
        self._record(name, **extra)

    def write_matrix(self, matrix: sp.csr_matrix, name: str) -> None:
        """Save a CSR matrix with scipy.sparse.save_npz."""
        sp.save_npz(self.path(name), matrix.tocsr())
        self._record(name, shape=list(matrix.shape), nnz=int(matrix.nnz))

    def write_arrays(self, arrays: Mapping[str, npt.NDArray[np.generic]], name: str) -> None:
        """Save named arrays to an uncompressed NPZ (loaded with allow_pickle=False)."""
        with self.path(name).open("wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]
        self._record(name, arrays={k: list(v.shape) for k, v in arrays.items()})

    def write_json(self, data: Any, name: str) -> None:
        """Write JSON (indented, keys sorted)."""
        self.path(name).write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        self._record(name)


@contextlib.contextmanager
def open_stage(root: Path, stage: str) -> Iterator[StageWriter]:
    """A fresh partial folder for `stage`; removed again if the block raises."""
    partial = root / f".{stage_dir(root, stage).name}.partial"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
    except OSError as exc:
        msg = f"{partial}: cannot create the stage folder: {exc.strerror or exc}."
        raise ArtifactError(msg) from exc
    writer = StageWriter(root=root, stage=stage, partial=partial)
    try:
        yield writer
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def commit_stage(writer: StageWriter, manifest: dict[str, Any]) -> Path:
    """Write the manifest last, then swap the partial folder into place; returns the folder."""
    final = stage_dir(writer.root, writer.stage)
    full = {
        "stage": writer.stage,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "musicrec_version": __version__,
        "git_revision": _git_revision(),
        **manifest,
        "outputs": writer.outputs,
    }
    (writer.partial / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True, default=str))
    old = writer.root / f".{final.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.replace(old)
    writer.partial.replace(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


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
