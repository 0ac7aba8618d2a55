"""run_<stage>(cfg): scan inputs, check schemas, call the stage functions, write outputs.

One module per stage; each run_<stage> returns the one-line summary the CLI prints. Stages read
only earlier stages' artifacts (checked against their manifests) or raw data.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

from musicrec_cli import __version__
from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, stage_dir
from musicrec_cli.codehash import source_fingerprint
from musicrec_cli.config import Config, engine_of, table_dict
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
    """Fingerprints of the upstream manifests, after checking each stage is complete."""
    for stage in stages:
        require_stage(root, stage)
    return art.fingerprint_inputs([stage_dir(root, s) / art.MANIFEST for s in stages])


def is_up_to_date(cfg: Config, stage: str) -> bool:
    """True if the stage's outputs are intact and were made from the same config, inputs and code.

    The code is the package version and the sha256 of the stage's source (musicrec_cli.codehash).
    """
    root = Path(cfg.paths.artifacts)
    manifest = art.read_manifest(root, stage)
    if manifest is None or manifest.get("config") != table_dict(getattr(cfg, stage)):
        return False
    if (manifest.get("musicrec_version"), manifest.get("source_sha256")) != (
        __version__,
        source_fingerprint(stage),
    ):
        return False
    if manifest.get("engine", "polars") != engine_of(cfg, stage):
        return False
    if stage == "preprocess" and manifest.get("paths") != table_dict(resolve_raw(cfg.paths)):
        return False
    return all(
        art.file_matches(Path(path), rec) for path, rec in manifest.get("inputs", {}).items()
    )
