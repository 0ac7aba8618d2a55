"""run_<stage>(cfg): scan inputs, check schemas, call the stage functions, write outputs.

One module per stage; each run_<stage> returns the one-line summary the CLI prints. Stages read
only earlier stages' artifacts (checked against their manifests) or raw data.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

from musicrec_cli import __version__, lineage
from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import stage_dir
from musicrec_cli.codehash import source_fingerprint
from musicrec_cli.config import Config, engine_of, table_dict
from musicrec_cli.lineage import SCOPE_USERS, check_chain
from musicrec_cli.sources import resolve_raw

# rows of one user group that a Spark Python worker holds at once (stages.spark.apply_by_users)
SPARK_GROUP_ROWS = 2_000_000


def spark_groups(n_rows: int) -> int:
    """Number of user groups for `n_rows` rows: at least 8, at most SPARK_GROUP_ROWS rows each."""
    return max(8, -(-n_rows // SPARK_GROUP_ROWS))


class Measure:
    """Wall time and peak RSS of a stage, for its manifest."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def record(self) -> dict[str, float]:
        """Seconds since construction and the peak RSS (MiB) of this process or its children."""
        peak_kb = max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        return {
            "wall_seconds": round(time.perf_counter() - self.start, 3),
            "peak_rss_mb": round(peak_kb / 1024, 1),
        }


def upstream_inputs(root: Path, *stages: str) -> dict[str, Any]:
    """Fingerprints of the upstream manifests, after checking they form one run (lineage)."""
    check_chain(root, stages)
    return art.fingerprint_inputs([stage_dir(root, s) / art.MANIFEST for s in stages])


def is_up_to_date(cfg: Config, stage: str) -> bool:
    """True if the stage's outputs are intact and were made from the same config, inputs and code.

    The code is the package version and the sha256 of the stage's source (musicrec_cli.codehash).
    """
    root = Path(cfg.paths.artifacts)
    manifest = art.read_manifest(root, stage)
    if manifest is None or manifest.get("config") != table_dict(getattr(cfg, stage)):
        return False
    if manifest.get("summary", {}).get("scope") == SCOPE_USERS:
        return False  # predict --users with nothing to merge into: not the full run
    if (manifest.get("musicrec_version"), manifest.get("source_sha256")) != (
        __version__,
        source_fingerprint(stage),
    ):
        return False
    if manifest.get("engine", "polars") != engine_of(cfg, stage):
        return False
    if stage == "preprocess":
        # where the outputs go ([paths].artifacts) does not change them; what is read does
        recorded, now = manifest.get("paths", {}), table_dict(resolve_raw(cfg.paths))
        if any(recorded.get(key) != now[key] for key in ("raw", "catalog")):
            return False
    # upstream stages are compared in this artifacts folder (by stage, not by the recorded
    # path, which may be another copy of the artifacts); raw files by their recorded path
    upstream = lineage.upstream_paths(manifest)
    for up, sha in lineage.recorded_upstream(manifest).items():
        current = stage_dir(root, up) / art.MANIFEST
        if art.read_manifest(root, up) is None or art.sha256_file(current) != sha:
            return False
    return all(
        art.file_matches(Path(path), rec)
        for path, rec in manifest.get("inputs", {}).items()
        if path not in upstream
    )
