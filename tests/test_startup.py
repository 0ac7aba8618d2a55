"""Starting musicrec stays cheap: the heavy libraries only a few commands use load on first use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from musicrec_cli.__main__ import ALLOCATOR_ENV, POLARS_ALLOCATOR_CONF

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


def _allocator_options(env: dict[str, str]) -> str:
    """jemalloc's options as printed by a `musicrec --help` process started with `env`."""
    code = (
        "import sys\n"
        "from musicrec_cli import __main__ as entry\n"
        "sys.argv = ['musicrec', '--help']\n"
        "entry.ALLOCATOR_CONF += ',stats_print:true'  # jemalloc prints its options at exit\n"
        "try:\n"
        "    entry.main()\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, check=False
    )
    return out.stderr


@pytest.mark.slow  # fresh interpreters
def test_polars_allocator_keeps_freed_pages_as_set_and_a_user_setting_wins():
    unset = {k: v for k, v in os.environ.items() if k != ALLOCATOR_ENV}
    assert "opt.dirty_decay_ms: 10000" in _allocator_options(unset)
    # this process imported Polars, which wrote its own setting: a child inherits it
    assert os.environ[ALLOCATOR_ENV].startswith(POLARS_ALLOCATOR_CONF)
    assert "opt.dirty_decay_ms: 10000" in _allocator_options(dict(os.environ))
    mine = _allocator_options(unset | {ALLOCATOR_ENV: "dirty_decay_ms:700"})
    assert "opt.dirty_decay_ms: 700" in mine
    assert "opt.dirty_decay_ms: 700" in _allocator_options(
        unset | {ALLOCATOR_ENV: f"{POLARS_ALLOCATOR_CONF},dirty_decay_ms:700"}
    )
