"""Reloading new artifacts while requests run, by POST /reload and by SIGHUP to `musicrec serve`."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from musicrec_cli.app import app as cli
from tests.http.conftest import LiveServer, copy_project, run_cli


def manifest_sha(project: Path, folder: str) -> str:
    return hashlib.sha256(
        (project / "artifacts" / folder / "manifest.json").read_bytes()
    ).hexdigest()


def served_sha(http: httpx.Client, stage: str) -> str:
    stages = http.get("/health").json()["stages"]
    return next(s["manifest_sha256"] for s in stages if s["stage"] == stage)


class Load:
    """Threads sending requests until stopped, counting status codes and transport errors."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url, self.stop, self.seen = url, threading.Event(), Counter[str]()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                try:
                    if i % 2:
                        r = http.get("/users/a3/recommendations", params={"model": "als"})
                    else:
                        r = http.post("/recommendations", json={"liked": ["beta band - song 4"]})
                    ok = r.status_code == 200 and len(r.json()["tracks"]) == 10
                    key = "ok" if ok else f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    key = f"error {exc!r}"
                with self.lock:
                    self.seen[key] += 1

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        """Block until `n` requests have been answered (or failed) in all: a slow machine may
        answer none within a fixed sleep."""
        deadline = time.monotonic() + timeout
        while sum(self.seen.values()) < n:
            assert time.monotonic() < deadline, f"fewer than {n} requests in {timeout} s"
            time.sleep(0.01)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def test_reload_under_load_swaps_in_new_artifacts_without_a_failed_request(
    band_project: Path, tmp_path: Path
):
    project = copy_project(band_project, tmp_path / "project")
    with LiveServer(project) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        before = served_sha(http, "train")
        with Load(server.url) as load:
            load.wait_for(4)
            run_cli(project, "--set", "train.seed=7", "--set", "train.factors=3", "train")
            assert http.post("/reload").status_code == 200
            for _ in range(3):
                assert http.post("/reload").status_code == 200
            load.wait_for(sum(load.seen.values()) + 4)
        assert set(load.seen) == {"ok"}, load.seen
        assert load.seen["ok"] > 20
        after = served_sha(http, "train")
        assert after != before
        assert after == manifest_sha(project, "04_train")
        assert http.get("/stats").json()["reloads"] == 4


def test_a_reload_onto_an_inconsistent_chain_is_refused_and_the_old_one_kept(
    band_project: Path, tmp_path: Path
):
    project = copy_project(band_project, tmp_path / "project")
    with LiveServer(project) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        before = http.get("/health").json()
        # features rerun with other settings: 04_train was fitted on the previous 03_features
        run_cli(project, "--set", "features.recency_floor=0.2", "features")
        with Load(server.url, threads=2) as load:
            load.wait_for(2)
            response = http.post("/reload")
            load.wait_for(sum(load.seen.values()) + 2)
        assert response.status_code == 409
        assert (
            "04_train is stale: it was built from an earlier run of 03_features"
            in response.json()["detail"]
        )
        assert "run `musicrec train`" in response.json()["detail"]
        assert http.get("/health").json() == before
        assert set(load.seen) == {"ok"}, load.seen


def test_serve_refuses_to_start_without_complete_artifacts(band_project: Path, tmp_path: Path):
    project = copy_project(band_project, tmp_path / "project")
    (project / "artifacts" / "04_train" / "manifest.json").unlink()
    result = CliRunner().invoke(cli, ["--config", str(project / "musicrec.toml"), "serve"])
    assert result.exit_code == 1
    assert "04_train/manifest.json not found; run `musicrec train` first." in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow  # a real `musicrec serve` process; the in-process reloads above stay fast
@pytest.mark.skipif(sys.platform == "win32", reason="SIGHUP is POSIX")
def test_musicrec_serve_reloads_on_sighup_and_stops_on_sigterm(band_project: Path, tmp_path: Path):
    project = copy_project(band_project, tmp_path / "project")
    port = _free_port()
    command = [sys.executable, "-m", "musicrec_cli", "--config", str(project / "musicrec.toml")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*command, "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "musicrec serve did not answer in 60 s"
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert http.get("/stats").json()["reloads"] == 0
            run_cli(project, "--set", "train.seed=9", "train")
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while http.get("/stats").json()["reloads"] == 0:
                assert time.monotonic() < deadline, "SIGHUP did not reload in 30 s"
                time.sleep(0.05)
            assert served_sha(http, "train") == manifest_sha(project, "04_train")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # a graceful stop, then the CLI's documented code for SIGTERM (docs/faults.md)
    assert proc.returncode == 143, out
    assert f"serving http://127.0.0.1:{port}/" in out
    assert "Finished server process" in out
