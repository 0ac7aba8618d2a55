"""The shell's floor plan: per-run Session, commands that never import the app, code staleness."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musicrec_cli import codehash
from musicrec_cli.app import app
from musicrec_cli.artifacts import STAGES
from musicrec_cli.codehash import source_fingerprint
from tests.cli.test_app import STAGE_DIRS, manifest, run

ROOT = Path(__file__).resolve().parents[2]


def test_commands_never_import_the_app():
    for path in sorted((ROOT / "musicrec_cli" / "commands").glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
            a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names
        }
        assert "musicrec_cli.app" not in imported, path.name


def test_one_invocation_does_not_leak_options_into_the_next(tmp_path: Path):
    # `generate --events` used to be appended to module-level overrides
    runner = CliRunner()
    config = tmp_path / "musicrec.toml"
    config.write_text("[generate]\nusers = 20\ntracks = 30\ngenres = 2\nevents = 500\n")
    first = runner.invoke(
        app, ["-c", str(config), "generate", "--events", "300", "--out", str(tmp_path / "a")]
    )
    second = runner.invoke(app, ["-c", str(config), "generate", "--out", str(tmp_path / "b")])
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "300 plays" in first.output
    assert "500 plays" in second.output


def test_stage_code_is_its_runner_and_what_it_imports():
    rel = {s: {p.relative_to(ROOT).as_posix() for p in codehash.stage_files(s)} for s in STAGES}
    assert "musicrec_cli/runner/train.py" in rel["train"]
    assert "stages/models/als.py" in rel["train"]
    assert "stages/models/als.py" in rel["predict"]
    assert not any(p.startswith("stages/models/") for p in rel["preprocess"])
    assert "musicrec_cli/runner/evaluate.py" not in rel["train"]
    assert all("musicrec_cli/console.py" not in files for files in rel.values())


@pytest.mark.slow  # over 2 s: a whole pipeline or a live server
def test_editing_a_module_changes_the_fingerprint_of_the_stages_using_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for package in codehash.PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    monkeypatch.setattr(codehash, "ROOT", tmp_path)
    before = {s: source_fingerprint.__wrapped__(s) for s in STAGES}
    als = tmp_path / "stages" / "models" / "als.py"
    als.write_text(als.read_text() + "\n# edited\n")
    after = {s: source_fingerprint.__wrapped__(s) for s in STAGES}
    changed = [s for s in STAGES if before[s] != after[s]]
    # evaluate folds held-out users into ALS (the cold-start runs): it uses the model's code
    assert changed == ["train", "predict", "evaluate"]


@pytest.fixture
def pipeline(tiny_pipeline: Path) -> Path:
    return tiny_pipeline


@pytest.mark.slow  # over 2 s: a whole pipeline or a live server
def test_all_reruns_a_stage_whose_code_changed_and_what_follows(
    pipeline: Path, monkeypatch: pytest.MonkeyPatch
):
    before = {f: manifest(pipeline, f)["created_at"] for f in STAGE_DIRS}
    assert manifest(pipeline, "04_train")["source_sha256"] == source_fingerprint("train")
    real = source_fingerprint.__wrapped__
    monkeypatch.setattr(
        codehash, "source_fingerprint", lambda s: "edited" if s == "features" else real(s)
    )
    import musicrec_cli.artifacts
    import musicrec_cli.runner

    monkeypatch.setattr(musicrec_cli.runner, "source_fingerprint", codehash.source_fingerprint)
    monkeypatch.setattr(musicrec_cli.artifacts, "source_fingerprint", codehash.source_fingerprint)
    result = run(pipeline, "all")
    assert result.exit_code == 0, result.output
    after = {f: manifest(pipeline, f)["created_at"] for f in STAGE_DIRS}
    assert [after[f] != before[f] for f in STAGE_DIRS] == [False, False, True, True, True, True]
    assert manifest(pipeline, "03_features")["source_sha256"] == "edited"
    assert run(pipeline, "all").output.count("up to date, skipped") == 6
