"""The source fingerprint of a stage: sha256 over the code that computes its outputs.

A stage's code is its runner module (`musicrec_cli.runner.<stage>`) and every first-party
module it imports, transitively, found by reading the import statements (nothing is executed).
Modules that only talk to the terminal or the lock (SHELL_ONLY) are left out, so editing a
message does not rerun the pipeline; the config module is hashed without following its
imports (LEAVES). The manifest records the fingerprint and `musicrec all` (and `make all`,
through its stamps) reruns a stage whose fingerprint changed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("stages", "musicrec_cli")
# modules that change what is printed, never what a stage writes
SHELL_ONLY = frozenset(
    {
        "musicrec_cli.console",
        "musicrec_cli.lock",
        "musicrec_cli.signals",
        "musicrec_cli.session",
        "musicrec_cli.app",
    }
)
# hashed, but their imports are not followed: config imports every model and format only to
# validate names, and a stage uses what it computes with through its own imports
LEAVES = frozenset({"musicrec_cli.config"})


def _module_file(name: str) -> Path | None:
    """The file of first-party module `name` (a module or a package), or None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by `path` (`from a import b` yields a and a.b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    # importing a.b.c runs a/__init__.py and a/b/__init__.py first
    return found | {".".join(n.split(".")[:i]) for n in found for i in range(1, n.count(".") + 1)}


def stage_files(stage: str) -> list[Path]:
    """The source files that compute `stage`'s outputs, sorted."""
    todo, seen = [f"musicrec_cli.runner.{stage}"], set[str]()
    files: set[Path] = set()
    while todo:
        name = todo.pop()
        if name in seen or name in SHELL_ONLY:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            continue
        files.add(path)
        if name not in LEAVES:
            todo += sorted(_imports(path) - seen)
    return sorted(files)


@functools.cache
def source_fingerprint(stage: str) -> str:
    """sha256 over the relative path and bytes of every file in `stage_files(stage)`."""
    digest = hashlib.sha256()
    for path in stage_files(stage):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def git_revision() -> str | None:
    """The commit checked out where musicrec runs (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
