"""Polars vs Spark local[2] on the same data, stage by stage, for the stages Spark runs.

    python benchmarks/bench_spark.py 10000000 100000000 --stages split train predict

Data are generated as benchmarks/full_scale.py does at that size (users and tracks scaled with
the events). Each stage runs as its own `python -m musicrec_cli` process, first on Polars, then
with `--set engine=spark` on master local[2]; full_scale's `_measured` records wall and CPU
seconds and the sampled peak RSS of the whole process tree (the JVM and Python workers
included: /usr/bin/time -v would miss them). Train fits ALS only, predict writes the plain
lists of ALS only. Results: benchmarks/results/spark.json (one entry per size and stage).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from full_scale import FULL, ROOT, _config, _measured, _stage_args

RESULTS = ROOT / "benchmarks" / "results" / "spark.json"
SPARK_STAGES = ("preprocess", "split", "train", "predict")
SETTINGS = [
    'train.models=["als"]',
    "predict.rerank_models=[]",
    "predict.similar_k=0",
    'spark.master="local[2]"',
    'spark.driver_memory="6g"',
]


def _prepare(work: Path, events: int) -> Path:
    """Config and generated raw data for `events` plays, then the Polars stages up to features."""
    scale = events / FULL["events"]
    config = _config(
        work,
        events=events,
        users=max(1000, int(FULL["users"] * scale)),
        tracks=max(1000, int(FULL["tracks"] * scale)),
        seed=42,
    )
    if not (work / "raw" / "listens").exists():
        _measured(_stage_args(config, "generate", SETTINGS), "generate")
    return config


def run(events: int, stages: list[str], work_root: Path) -> list[dict[str, object]]:
    """Each stage of `stages` at `events` plays, on both engines; one row per stage."""
    work = work_root / str(events)
    work.mkdir(parents=True, exist_ok=True)
    config = _prepare(work, events)
    rows = []
    for stage in ("preprocess", "split", "features", "train", "predict"):
        polars = _measured(_stage_args(config, stage, SETTINGS), f"{stage} (polars)")
        if stage not in stages:
            continue
        spark_args = _stage_args(config, stage, [*SETTINGS, "engine=spark"])
        spark = _measured(spark_args, f"{stage} (spark)")
        row = {
            "events": events,
            "stage": stage,
            "polars": polars,
            "spark_local2": spark,
            "wall_ratio": round(spark["wall_seconds"] / polars["wall_seconds"], 2),
            "rss_ratio": round(spark["peak_rss_gib"] / max(polars["peak_rss_gib"], 1e-3), 2),
        }
        print(json.dumps(row))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", type=int, nargs="+")
    parser.add_argument("--stages", nargs="+", default=list(SPARK_STAGES), choices=SPARK_STAGES)
    parser.add_argument("--work", type=Path, default=Path("/tmp/musicrec-bench-spark"))
    parser.add_argument("--keep", action="store_true", help="Keep the generated data.")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": []}
    for events in args.events:
        rows = run(events, args.stages, args.work)
        done = {(r["events"], r["stage"]) for r in rows}
        results["runs"] = [
            r for r in results["runs"] if (r["events"], r["stage"]) not in done
        ] + rows
        results["note"] = (
            "one run per stage on a shared 2-core machine (other jobs running): compare the "
            "ratios of the same run; Spark master local[2], 4-6 s of each Spark figure is JVM start"
        )
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        if not args.keep:
            shutil.rmtree(args.work / str(events), ignore_errors=True)


if __name__ == "__main__":
    main()
