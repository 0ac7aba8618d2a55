"""Polars vs Spark local[2] on the same data, stage by stage, for the stages Spark runs.

    python benchmarks/bench_spark.py 10000000 100000000 --stages split train predict
    python benchmarks/bench_spark.py 100000000 --stages split preprocess \
        --limit split=2400 preprocess=1800 --lock /work/bigjob.lock

Data are generated as benchmarks/full_scale.py does at that size (users and tracks scaled with
the events). Each stage runs as its own `python -m musicrec_cli` process, the Polars chain
first, then the stages asked for with `--set engine=spark` on master local[2]; wall seconds and
the sampled peak RSS of the whole process tree are recorded (the JVM and Python workers
included: /usr/bin/time -v would miss them), with the load average at the start. A Spark run
still going after --limit seconds is stopped and recorded as a lower bound. Train fits ALS
only, predict writes the plain lists of ALS only. Results: benchmarks/results/spark.json (one
entry per size and stage).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
from full_scale import FULL, ROOT, _config, _measured, _stage_args, _tree_rss

RESULTS = ROOT / "benchmarks" / "results" / "spark.json"
SPARK_STAGES = ("preprocess", "split", "train", "predict")
SETTINGS = [
    'train.models=["als"]',
    "predict.rerank_models=[]",
    "predict.similar_k=0",
    'spark.master="local[2]"',
    'spark.driver_memory="6g"',
]


def _prepare(work: Path, events: int, lock: Path | None) -> Path:
    """Config and generated raw data for `events` plays."""
    scale = events / FULL["events"]
    config = _config(
        work,
        events=events,
        users=max(1000, int(FULL["users"] * scale)),
        tracks=max(1000, int(FULL["tracks"] * scale)),
        seed=42,
    )
    if not (work / "raw" / "listens").exists():
        with _locked(lock):
            _measured(_stage_args(config, "generate", SETTINGS), "generate")
    return config


@contextlib.contextmanager
def _locked(lock: Path | None) -> Iterator[None]:
    """Hold `lock` (flock) for one measured run, so heavy jobs of a shared machine take turns."""
    if lock is None:
        yield
        return
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load() -> list[float]:
    """The 1, 5 and 15 minute load averages (2 cores: above 2 means queued work)."""
    return [round(x, 2) for x in os.getloadavg()]


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True)
    return out.stdout.decode().strip()


def _measured_within(args: list[str], what: str, limit: float) -> dict[str, object]:
    """`_measured`, but a run still going after `limit` seconds is killed (its whole process
    tree, the JVM included) and recorded as unfinished: its wall time is then a lower bound.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, env=os.environ | {"OPENBLAS_NUM_THREADS": "1"})
    watched = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None and time.perf_counter() - start < limit:
        peak = max(peak, _tree_rss(watched))
        time.sleep(0.2)
    finished = proc.poll() is not None
    if not finished:
        for p in [*watched.children(recursive=True), watched]:
            with contextlib.suppress(psutil.Error):
                p.kill()
        proc.wait()
    elif proc.returncode != 0:
        msg = f"{what} failed with exit code {proc.returncode}"
        raise SystemExit(msg)
    wall = time.perf_counter() - start
    return {
        "wall_seconds": round(wall, 2),
        "peak_rss_gib": round(peak / 2**30, 3),
        "finished": finished,
    }


def run(
    events: int,
    stages: list[str],
    work_root: Path,
    *,
    limits: dict[str, float],
    lock: Path | None,
    until: float | None = None,
) -> Iterator[dict[str, object]]:
    """Each stage of `stages` at `events` plays, on both engines; one row per stage.

    The chain runs on Polars up to the last stage asked for; then each stage asked for runs on
    Spark, in the order of `stages`, over the same inputs (its outputs equal the Polars ones,
    tests/spark). A Spark preprocess replaces 01_preprocess: put it last. A Spark run past its
    stage's `limits` seconds is stopped and recorded as a lower bound, and so is one still
    going at `until` (a time.time() deadline: the machine's shared schedule).
    """
    work = work_root / str(events)
    work.mkdir(parents=True, exist_ok=True)
    config = _prepare(work, events, lock)
    chain = ("preprocess", "split", "features", "train", "predict")
    last = max(chain.index(s) for s in stages)
    polars = {}
    for stage in chain[: last + 1]:
        with _locked(lock):
            load = _load()
            polars[stage] = _measured(_stage_args(config, stage, SETTINGS), f"{stage} (polars)")
        polars[stage] |= {"load_average_before": load}
    for stage in stages:
        with _locked(lock):
            load = _load()
            spark_args = _stage_args(config, stage, [*SETTINGS, "engine=spark"])
            limit = limits.get(stage, 3 * 3600)
            if until is not None:
                limit = max(1.0, min(limit, until - time.time()))
            spark = _measured_within(spark_args, f"{stage} (spark)", limit)
        spark |= {"load_average_before": load, "load_average_after": _load()}
        ratio = round(float(spark["wall_seconds"]) / polars[stage]["wall_seconds"], 2)
        row = {
            "events": events,
            "stage": stage,
            "polars": polars[stage],
            "spark_local2": spark,
            "wall_ratio" if spark["finished"] else "wall_ratio_at_least": ratio,
            "rss_ratio": round(
                float(spark["peak_rss_gib"]) / max(polars[stage]["peak_rss_gib"], 1e-3), 2
            ),
            "commit": _commit(),
        }
        print(json.dumps(row), flush=True)
        yield row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", type=int, nargs="+")
    parser.add_argument("--stages", nargs="+", default=list(SPARK_STAGES), choices=SPARK_STAGES)
    parser.add_argument("--work", type=Path, default=Path("/tmp/musicrec-bench-spark"))
    parser.add_argument("--keep", action="store_true", help="Keep the generated data.")
    parser.add_argument(
        "--limit",
        nargs="+",
        default=[],
        metavar="STAGE=SECONDS",
        help="Stop the Spark run of STAGE after SECONDS (default 3 hours).",
    )
    parser.add_argument(
        "--lock", type=Path, default=None, help="flock this file for each measured run."
    )
    parser.add_argument(
        "--until",
        default=None,
        metavar="HH:MM",
        help="UTC time by which every Spark run stops (recorded as a lower bound if cut).",
    )
    args = parser.parse_args()
    until = None
    if args.until:
        hour, minute = (int(x) for x in args.until.split(":"))
        now = dt.datetime.now(dt.UTC)
        until = now.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": []}
    for events in args.events:
        limits = {k: float(v) for k, v in (a.split("=") for a in args.limit)}
        # saved as each stage finishes
        for row in run(events, args.stages, args.work, limits=limits, lock=args.lock, until=until):
            results["runs"] = [
                r for r in results["runs"] if (r["events"], r["stage"]) != (events, row["stage"])
            ] + [row]
            results["note"] = (
                "one run per stage on a shared 2-core machine (other jobs running; load averages "
                "per row): compare the ratios of the same run; Spark master local[2], 4-6 s of "
                "each Spark figure is JVM start"
            )
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        if not args.keep:
            shutil.rmtree(args.work / str(events), ignore_errors=True)


if __name__ == "__main__":
    main()
