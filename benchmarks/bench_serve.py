"""Latency and throughput of GET /users/{id}/recommendations of `musicrec serve` on loopback.

Usage: python benchmarks/bench_serve.py default [--artifacts artifacts]
       python benchmarks/bench_serve.py synthetic --scale 1370000x805000 [--per-user 20]

Starts a real `musicrec serve` process on 127.0.0.1 and sends a bounded load: REQUESTS requests
(n=10, users drawn at random with a seed) from CONCURRENCY client threads, each with its own
keep-alive connection, after a warm-up. Reports client-side p50/p90/p99 latency and requests per
second, the server's start-up (load) time and RSS. The reference is the same answer computed
in-process (`answers.recommend_user` on the same snapshot, no HTTP) on the same users, so the
ratio shows what HTTP, JSON and the thread pool add.

`default` serves the artifacts of `make all` (05_predict included, so answers come from its
lists); `synthetic` writes a complete chain 01-04 of N_USERS x N_TRACKS (Zipf-popular tracks,
PER_USER heard tracks per user on average, random ALS factors whose item norms follow
popularity) into a temporary folder, then runs the predict stage for the benchmarked users (not
with --live, where every answer is scored per request). A second in-process reference scores
every answer live, to show what the lists save.
Writes benchmarks/results/serve_default.json, serve_large.json or serve_large_live.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import psutil
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from musicrec_cli import artifacts as art
from musicrec_cli.config_load import load_config
from musicrec_cli.http import answers
from musicrec_cli.http.snapshot import Snapshot, load_snapshot
from musicrec_cli.runner import upstream_inputs
from musicrec_cli.runner.predict import run_predict
from stages.models.als import AlsModel
from stages.models.popularity import fit_popularity
from stages.schema import (
    ARTIST_ID,
    ARTIST_NAME,
    TRACK_GROUP_ID,
    TRACK_ID,
    TRACK_IDX,
    TRACK_NAME,
    USER_ID,
    USER_IDX,
    WEIGHT,
)

SEED = 42
RESULTS = Path(__file__).parent / "results"


def _commit(root: Path, stage: str, write: Any, inputs: dict[str, Any]) -> None:
    with art.open_stage(root, stage) as out:
        write(out)
        art.commit_stage(out, {"config": {}, "inputs": inputs, "summary": {"synthetic": True}})


def synthetic_chain(root: Path, n_users: int, n_tracks: int, per_user: int, factors: int) -> None:
    """A complete, consistent 01-04 chain of random data (ALS and popularity)."""
    rng = np.random.default_rng(SEED)
    artist = np.arange(n_tracks) // 8
    items = pl.DataFrame({TRACK_IDX: np.arange(n_tracks, dtype=np.uint32), "a": artist}).select(
        TRACK_IDX,
        pl.format("artist {} - song {}", "a", TRACK_IDX).alias(TRACK_ID),
        pl.format("artist {}", "a").alias(ARTIST_ID),
        pl.format("Artist {}", "a").alias(ARTIST_NAME),
        pl.format("Song {}", TRACK_IDX).alias(TRACK_NAME),
        pl.format("artist {} - song {}", "a", TRACK_IDX).alias(TRACK_GROUP_ID),
    )
    users = pl.DataFrame({USER_IDX: np.arange(n_users, dtype=np.uint32)}).with_columns(
        pl.format("user_{}", pl.col(USER_IDX).cast(pl.String).str.zfill(7)).alias(USER_ID)
    )
    _commit(
        root,
        "preprocess",
        lambda out: (out.write_parquet(items, art.ITEMS), out.write_parquet(users, art.USERS)),
        {},
    )
    # Zipf-like popularity; each user hears 1 + Poisson(per_user - 1) tracks
    popularity = 1.0 / np.arange(1, n_tracks + 1) ** 0.8
    popularity /= popularity.sum()
    counts = 1 + rng.poisson(per_user - 1, n_users)
    rows = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    cols = rng.choice(n_tracks, size=len(rows), p=popularity).astype(np.int32)
    plays = rng.integers(1, 20, size=len(rows)).astype(np.float32)
    train = sp.csr_matrix((plays, (rows, cols)), shape=(n_users, n_tracks), dtype=np.float32)
    train.sum_duplicates()
    del rows, cols, plays
    _commit(
        root,
        "split",
        lambda out: out.write_matrix(train, art.TRAIN_MATRIX),
        upstream_inputs(root, "preprocess"),
    )
    frame = pl.DataFrame(
        {
            USER_IDX: np.repeat(np.arange(n_users, dtype=np.uint32), np.diff(train.indptr)),
            TRACK_IDX: train.indices.astype(np.uint32),
            WEIGHT: np.log1p(train.data),
        }
    )
    _commit(
        root,
        "features",
        lambda out: out.write_parquet(frame, art.FEATURES_TRAIN),
        upstream_inputs(root, "split"),
    )
    scale = (popularity / popularity.max()) ** 0.25  # popular tracks have longer factors
    item_factors = (rng.standard_normal((n_tracks, factors), dtype=np.float32) * 0.1) * scale[
        :, None
    ].astype(np.float32)
    user_factors = rng.standard_normal((n_users, factors), dtype=np.float32) * 0.1
    als = AlsModel(user_factors=user_factors, item_factors=item_factors)
    models = {
        "popularity": {"file": art.model_file("popularity"), "params": {}},
        "als": {
            "file": art.model_file("als"),
            "params": {"factors": factors, "regularization": 0.05, "alpha": 1.0},
        },
    }

    def write_train(out: art.StageWriter) -> None:
        out.write_arrays(fit_popularity(train).arrays(), art.model_file("popularity"))
        out.write_arrays(als.arrays(), art.model_file("als"))
        out.write_json(models, art.MODELS_JSON)

    _commit(root, "train", write_train, upstream_inputs(root, "split", "features"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(config: Path, port: int) -> tuple[subprocess.Popen[bytes], float]:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "musicrec_cli",
            "--config",
            str(config),
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with httpx.Client(timeout=5) as http:
        while True:
            if proc.poll() is not None:
                msg = f"musicrec serve exited with {proc.returncode}"
                raise RuntimeError(msg)
            try:
                if http.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    return proc, time.perf_counter() - start
            except httpx.TransportError:
                time.sleep(0.1)


def _load(
    url: str, users: list[str], model: str, concurrency: int
) -> tuple[list[float], float, Counter[str]]:
    """Latencies (s) of GET recommendations for `users` over `concurrency` threads, and sources."""
    latencies: list[float] = []
    lock = threading.Lock()
    failures: list[str] = []
    sources: Counter[str] = Counter()

    def worker(part: list[str]) -> None:
        mine = []
        with httpx.Client(base_url=url, timeout=30) as http:
            for user in part:
                start = time.perf_counter()
                r = http.get(f"/users/{user}/recommendations", params={"n": 10, "model": model})
                mine.append(time.perf_counter() - start)
                if r.status_code != 200 or len(r.json()["tracks"]) != 10:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    sources[r.json()["source"]] += 1
        with lock:
            latencies.extend(mine)

    threads = [
        threading.Thread(target=worker, args=(users[i::concurrency],)) for i in range(concurrency)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if failures:
        msg = f"{len(failures)} failed requests, e.g. {failures[0]}"
        raise RuntimeError(msg)
    return latencies, wall, sources


def _ms(values: list[float], q: float) -> float:
    return round(float(np.quantile(np.asarray(values), q)) * 1000, 2)


def _in_process(snap: Snapshot, users: list[str], model: str) -> list[float]:
    """Seconds per answer computed directly, one at a time, as `musicrec serve` computes it."""
    took = []
    with threadpool_limits(1, "blas"):  # as `musicrec serve` runs
        for user in users:
            start = time.perf_counter()
            answers.recommend_user(snap, user, n=10, model=model, use_rerank=False)
            took.append(time.perf_counter() - start)
    return took


def sample_users(root: Path, count: int) -> list[str]:
    """`count` user ids drawn at random (seeded, with repeats), the first 200 for warm-up."""
    rng = np.random.default_rng(SEED)
    ids = pl.read_parquet(art.stage_dir(root, "preprocess") / art.USERS, columns=[USER_ID])
    return ids[USER_ID].gather(rng.integers(0, ids.height, count)).to_list()


def predict_users(root: Path, users: list[str], *, n: int) -> float:
    """Run the predict stage (n deep, no re-ranking) for `users` only; returns its seconds."""
    listing = root.parent / "users.txt"
    listing.write_text("\n".join(users) + "\n")
    overrides = [
        f"paths.artifacts={root}",
        f"predict.n={n}",
        "predict.rerank_models=[]",
        "predict.similar_k=0",
    ]
    start = time.perf_counter()
    run_predict(load_config(None, overrides), users_file=listing)
    return time.perf_counter() - start


def bench(root: Path, label: str, *, requests: int, concurrency: int, model: str) -> dict[str, Any]:
    """Serve `root` and measure; returns the results record."""
    config = Path(tempfile.mkdtemp(prefix="bench_serve_")) / f"{label}.toml"
    config.write_text(f'[paths]\nartifacts = "{root.resolve()}"\n')
    port = _free_port()
    users = sample_users(root, requests + 200)
    proc, load_seconds = _start(config, port)
    try:
        url = f"http://127.0.0.1:{port}"
        _load(url, users[:200], model, concurrency)  # warm-up
        latencies, wall, sources = _load(url, users[200:], model, concurrency)
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    # the reference: the same answers in-process, one at a time, no HTTP
    snap = load_snapshot(root, load_config(config, []).predict)
    sample = users[200 : 200 + min(requests, 500)]
    direct = _in_process(snap, sample, model)
    live = _in_process(dataclasses.replace(snap, lists=None), sample, model)
    return {
        "label": label,
        "n_users": int(snap.user_items.shape[0]),
        "n_tracks": int(snap.items.height),
        "n_interactions": int(snap.user_items.nnz),
        "model": model,
        "n": 10,
        "requests": len(latencies),
        "answered_from": dict(sources),
        "concurrency": concurrency,
        "http": {
            "p50_ms": _ms(latencies, 0.5),
            "p90_ms": _ms(latencies, 0.9),
            "p99_ms": _ms(latencies, 0.99),
            "max_ms": _ms(latencies, 1.0),
            "requests_per_second": round(len(latencies) / wall, 1),
        },
        "in_process_reference": {
            "requests": len(direct),
            "p50_ms": _ms(direct, 0.5),
            "p99_ms": _ms(direct, 0.99),
        },
        "in_process_live_reference": {
            "requests": len(live),
            "p50_ms": _ms(live, 0.5),
            "p99_ms": _ms(live, 0.99),
        },
        "ratio_http_p50_over_in_process_p50": round(
            statistics.median(latencies) / statistics.median(direct), 2
        ),
        "server_start_seconds": round(load_seconds, 2),
        "server_rss_mib": round(rss),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs, "
            f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=["default", "synthetic"])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--scale", default="1370000x805000", help="N_USERSxN_TRACKS")
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--model", default="als")
    parser.add_argument(
        "--live",
        action="store_true",
        help="synthetic: no 05_predict, so every answer is scored live (default: predict the "
        "benchmarked users first, as a deployment runs `musicrec predict` before serving)",
    )
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if args.data == "default":
        result = bench(
            args.artifacts,
            "default",
            requests=args.requests,
            concurrency=args.concurrency,
            model=args.model,
        )
    else:
        n_users, n_tracks = (int(v) for v in args.scale.split("x"))
        with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
            root = Path(tmp) / "artifacts"
            start = time.perf_counter()
            synthetic_chain(root, n_users, n_tracks, args.per_user, args.factors)
            built = time.perf_counter() - start
            predicted = None
            if not args.live:
                users = sample_users(root, args.requests + 200)
                predicted = predict_users(root, sorted(set(users)), n=50)
            result = bench(
                root,
                "synthetic",
                requests=args.requests,
                concurrency=args.concurrency,
                model=args.model,
            )
            result["build_seconds"] = round(built, 1)
            if predicted is not None:
                result["predict_seconds_for_these_users"] = round(predicted, 1)
    name = "serve_default.json"
    if args.data == "synthetic":
        name = "serve_large_live.json" if args.live else "serve_large.json"
    (RESULTS / name).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
