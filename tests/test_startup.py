"""Starting musicrec stays cheap: the heavy libraries only a few commands use load on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# CPU seconds each would add to every command (measured with `python -X importtime`)
LAZY = (
    "scipy.stats",
    "scipy.linalg",
    "implicit",
    "matplotlib",
    "optuna",
    "fastapi",
    "pyarrow",  # planning, split, predict: not preprocess (issue 20)
    "psutil",  # planning
    "musicrec_cli.runner.preprocess",  # each stage's runner: imported by the command that runs it
    "musicrec_cli.runner.predict",
)


@pytest.mark.slow  # a fresh interpreter
def test_the_cli_starts_without_the_libraries_only_some_commands_use():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from musicrec_cli.app import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        f"print(sorted(m for m in {LAZY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
