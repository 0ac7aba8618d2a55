"""A tiny two-band pipeline served for real by uvicorn on a loopback port.

Listeners a0-a9 play only Alpha Band, b0-b9 only Beta Band (tests/cli/test_serve.py), so every
right answer stays inside one band.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from musicrec_cli.app import app as cli
from musicrec_cli.config_load import load_config
from musicrec_cli.http.app import create_app
from musicrec_cli.http.snapshot import load_snapshot
from tests.cli.test_serve import _write_data, write_band_config

# every model but trending, so that asking for it answers "not trained"
MODELS = '["popularity", "als", "bpr", "knn", "content", "hybrid"]'


def run_cli(folder: Path, *args: str) -> None:
    result = CliRunner().invoke(cli, ["--config", str(folder / "musicrec.toml"), *args])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def band_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-band pipeline run up to train (what the server reads)."""
    folder = tmp_path_factory.mktemp("bands")
    _write_data(folder)
    write_band_config(folder)
    for stage in ("preprocess", "split", "features"):
        run_cli(folder, stage)
    run_cli(folder, "--set", f"train.models={MODELS}", "train")
    return folder


def copy_project(source: Path, folder: Path) -> Path:
    """A copy of `source` in `folder` whose config points at the copy (for tests that rerun)."""
    shutil.copytree(source, folder, dirs_exist_ok=True)
    write_band_config(folder)
    return folder


class LiveServer:
    """uvicorn serving `create_app` in a thread on a loopback socket it has already bound."""

    def __init__(self, project: Path) -> None:
        cfg = load_config(project / "musicrec.toml", [])
        root = Path(cfg.paths.artifacts)
        self.app = create_app(lambda: load_snapshot(root, cfg.predict))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive(), "the server stopped while starting"
            assert time.monotonic() < deadline, "the server did not start in 20 s"
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()


@pytest.fixture(scope="session")
def live(band_project: Path) -> Iterator[LiveServer]:
    with LiveServer(band_project) as server:
        yield server


@pytest.fixture(scope="session")
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        yield http
