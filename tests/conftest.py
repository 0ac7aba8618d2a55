"""Shared fixtures: a seeded rng and tiny projects (config + generated data) in tmp_path."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import typer.testing
from typer.testing import CliRunner

from musicrec_cli.app import app
from tests import faultkit

ROOT = Path(__file__).resolve().parents[1]

# CliRunner.invoke rebuilds the Click command from every command's signature on each call
# (~16 ms of CPU, ~500 calls in `make test`): build it once per app, as a real process does.
# The assert makes a typer release that renames the helper fail here instead of going slow.
assert callable(typer.testing._get_command)
typer.testing._get_command = functools.cache(typer.testing._get_command)


def shared_folder(name: str, *, root: Path = ROOT, env: Mapping[str, str] = os.environ) -> Path:
    """`../shared/<name>` from the repo root (real samples, never copied into the repo).

    Skips the test with the reason when the folder is absent; fails it instead under CI
    (env CI=true), where a missing sample means the CI set-up is broken, not the machine.
    """
    folder = root.parent / "shared" / name
    if not folder.is_dir():
        msg = f"{folder} is absent (the shared samples beside the repo, not shipped with it)"
        if env.get("CI", "").lower() == "true":
            pytest.fail(f"{msg}; CI=true needs them")
        pytest.skip(msg)
    return folder


@pytest.fixture
def real_formats() -> Path:
    """../shared/real-formats: one sample export per supported format (see its README)."""
    return shared_folder("real-formats")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


def write_config(folder: Path, **tables: dict[str, object]) -> Path:
    """A musicrec.toml in `folder` whose paths point inside it, plus the given table values."""
    values: dict[str, dict[str, object]] = {
        "paths": {
            "raw": str(folder / "raw" / "listens"),
            "catalog": str(folder / "raw" / "tracks.parquet"),
            "artifacts": str(folder / "artifacts"),
        },
        "generate": {"users": 120, "tracks": 150, "events": 12_000, "genres": 4, "seed": 7},
        "preprocess": {"min_user_tracks": 3, "min_track_users": 2},
        "train": {"factors": 8, "iterations": 5},
        "predict": {"n": 10, "block_size": 50},
        "evaluate": {"k": [5, 10]},  # at most predict.n
    }
    for table, entries in tables.items():
        values.setdefault(table, {}).update(entries)
    lines = []
    for table, entries in values.items():
        lines.append(f"[{table}]")
        for key, value in entries.items():
            rendered = str(value).lower() if isinstance(value, bool) else repr(value)
            rendered = rendered.replace("'", '"')
            lines.append(f"{key} = {rendered}")
    path = folder / "musicrec.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    """A config in tmp_path with generated raw data in tmp_path/raw; returns the config path."""
    config = write_config(tmp_path)
    result = CliRunner().invoke(
        app, ["--config", str(config), "generate", "--out", str(tmp_path / "raw")]
    )
    assert result.exit_code == 0, result.output
    return config


# paths relative to the working directory: a copied project is a complete, up-to-date pipeline
# (manifests record the paths the config gives; absolute ones would make every stage stale)
RELATIVE_PATHS = {"raw": "raw/listens", "catalog": "raw/tracks.parquet", "artifacts": "artifacts"}


@pytest.fixture(scope="session")
def tiny_pipeline_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_project's data through `musicrec all`, once per session; never change it in a test."""
    folder = tmp_path_factory.mktemp("tiny_pipeline")
    config = write_config(folder, paths=RELATIVE_PATHS)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for args in (["generate", "--out", "raw"], ["all"]):
            result = CliRunner().invoke(app, ["--config", str(config), *args])
            assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def tiny_pipeline(
    tiny_pipeline_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A private copy of the session's tiny pipeline (every stage done) as the working
    directory; returns its config. Same settings and data as `tiny_project` + `all`."""
    for name in ("raw", "artifacts"):
        faultkit.copy_tree(tiny_pipeline_source / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return write_config(tmp_path, paths=RELATIVE_PATHS)


def _spark_missing() -> str | None:
    """Why the Spark tests cannot run here (None if pyspark and Java are present)."""
    import importlib.util
    import os
    import shutil

    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install -e '.[spark]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (`java` not on PATH; apt-get install openjdk-17-jre-headless)"
    return None


def pytest_report_header(config: pytest.Config) -> str:
    missing = _spark_missing()
    return f"spark tests: SKIPPED, {missing}" if missing else "spark tests: run (local[2])"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import os

    missing = _spark_missing()
    for item in items:
        if "tests/spark/" not in item.nodeid:
            continue
        item.add_marker(pytest.mark.spark)
        # a JVM start and Spark jobs of seconds each: `pytest -m slow` (CI) runs them
        item.add_marker(pytest.mark.slow)
        # under CI they run anyway, and fail on the missing runtime: CI must install it
        if missing and os.environ.get("CI") != "true":
            item.add_marker(pytest.mark.skip(reason=f"spark tests skipped: {missing}"))


@pytest.fixture(scope="session")
def small_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """faultkit's tiny world (30 users) through `musicrec all`, once per session; tests use
    `small_project` (a copy) and never change this one."""
    folder = tmp_path_factory.mktemp("lineage")
    raw = faultkit.write_csv(faultkit.raw_events(), folder / "raw" / "listens.csv")
    outcome = faultkit.invoke(faultkit.write_config(folder, raw=raw, art=folder / "art"), "all")
    assert outcome.code == 0, outcome.stderr
    return folder


@pytest.fixture
def small_project(small_pipeline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the baseline's artifacts reading its raw log; returns the copy's config."""
    monkeypatch.chdir(tmp_path)
    faultkit.copy_tree(small_pipeline / "art", tmp_path / "art")
    return faultkit.write_config(
        tmp_path, raw=small_pipeline / "raw" / "listens.csv", art=tmp_path / "art"
    )
