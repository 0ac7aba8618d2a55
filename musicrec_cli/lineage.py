"""Lineage: no stage or query ever combines stage folders from two different runs.

Every manifest records, under `inputs`, the sha256 of each upstream manifest it read
(runner.upstream_inputs). `check_chain` follows those records from the stages a command reads,
back to preprocess, and refuses if any stage was built from an upstream run that has since been
replaced: the earliest such stage is named, with the command that rebuilds it. Partial
predictions (`predict --users` with no full run to merge into) count as stale for every reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import STAGES, ArtifactError, require_stage, stage_dir

# predict's manifest summary "scope": every user, or only the users of a --users file
SCOPE_ALL = "all"
SCOPE_USERS = "users"


class StaleError(ArtifactError):
    """A stage folder was built from an upstream run that is no longer in place."""


def upstream_paths(manifest: dict[str, Any]) -> dict[str, str]:
    """Recorded input path -> upstream stage, for the inputs that are stage manifests."""
    folders = {f"{i + 1:02d}_{stage}": stage for i, stage in enumerate(STAGES)}
    found: dict[str, str] = {}
    for path in manifest.get("inputs", {}):
        where = Path(path)
        if where.name == art.MANIFEST and where.parent.name in folders:
            found[path] = folders[where.parent.name]
    return found


def recorded_upstream(manifest: dict[str, Any]) -> dict[str, str]:
    """Upstream stage -> sha256 of its manifest, as recorded in `manifest`'s inputs."""
    inputs = manifest.get("inputs", {})
    return {
        stage: str(inputs[path].get("sha256")) for path, stage in upstream_paths(manifest).items()
    }


def check_chain(root: Path, stages: Iterable[str]) -> dict[str, str]:
    """Check that `stages` and everything they were built from form one run.

    Returns:
        Stage -> sha256 of its manifest, for every stage of the chain.

    Raises:
        ArtifactError: a stage is missing or incomplete (naming the command to run).
        StaleError: a stage was built from an upstream that has been rerun since, or 05_predict
            holds only the users of a `--users` file.
    """
    digests: dict[str, str] = {}
    stale: list[tuple[str, str]] = []
    todo = list(stages)
    while todo:
        stage = todo.pop()
        if stage in digests:
            continue
        manifest = require_stage(root, stage)
        digests[stage] = art.sha256_file(stage_dir(root, stage) / art.MANIFEST)
        if manifest.get("summary", {}).get("scope") == SCOPE_USERS:
            stale.append((stage, ""))
        for upstream, sha in recorded_upstream(manifest).items():
            todo.append(upstream)
            require_stage(root, upstream)
            current = art.sha256_file(stage_dir(root, upstream) / art.MANIFEST)
            if current != sha:
                stale.append((stage, upstream))
    if stale:
        stage, upstream = min(stale, key=lambda pair: STAGES.index(pair[0]))
        raise StaleError(_message(root, stage, upstream))
    return digests


def _message(root: Path, stage: str, upstream: str) -> str:
    folder = stage_dir(root, stage)
    if not upstream:
        return (
            f"{folder} holds predictions for the users of a --users file only; run "
            "`musicrec predict` (every user) first."
        )
    return (
        f"{folder} is stale: it was built from an earlier run of {stage_dir(root, upstream).name}"
        f"; run `musicrec {stage}` and the stages after it (or `musicrec all`) first."
    )
