"""The shared samples are found beside the repo; absent, a test skips, or fails under CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import shared_folder


def _outcome(root: Path, env: dict[str, str]) -> BaseException:
    """What `shared_folder` raised for a missing folder (skip and fail are BaseExceptions)."""
    try:
        shared_folder("samples", root=root, env=env)
    except BaseException as exc:  # the outcome itself is under test
        return exc
    msg = "shared_folder returned for a missing folder"
    raise AssertionError(msg)


def test_shared_folder_is_resolved_beside_the_repo_root(tmp_path: Path) -> None:
    (tmp_path / "shared" / "samples").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    found = shared_folder("samples", root=tmp_path / "repo", env={"CI": "true"})
    assert found == tmp_path / "shared" / "samples"


@pytest.mark.parametrize("env", [{}, {"CI": "false"}, {"CI": ""}])
def test_missing_shared_folder_skips_with_its_path(tmp_path: Path, env: dict[str, str]) -> None:
    outcome = _outcome(tmp_path / "repo", env)
    assert isinstance(outcome, pytest.skip.Exception)
    assert f"{tmp_path / 'shared' / 'samples'} is absent" in str(outcome)


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_missing_shared_folder_fails_under_ci(tmp_path: Path, ci: str) -> None:
    outcome = _outcome(tmp_path / "repo", {"CI": ci})
    assert isinstance(outcome, pytest.fail.Exception)
    assert f"{tmp_path / 'shared' / 'samples'} is absent" in str(outcome)
    assert "CI=true" in str(outcome)
