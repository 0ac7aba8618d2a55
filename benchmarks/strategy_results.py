"""Per-strategy results of every model, with 95% intervals and Holm p vs the baseline.

Usage: python benchmarks/strategy_results.py NAME BASE WORK [--strategies S ...] [--from STAGE]
                                             [--resume] [--lock /work/bigjob.lock] [--out JSON]
                                             [--set KEY=VALUE ...]

BASE is an artifacts folder holding a finished 01_preprocess (the default data: `musicrec
preprocess`; msd-taste: `musicrec preprocess --input ../shared/real-formats/msd-taste`). For
each strategy (default: every one the data allows: temporal and user-temporal need timestamps)
the script runs the stages through the `musicrec` command, as a user would, in
WORK/NAME_<strategy> (01_preprocess copied from BASE): split --strategy S, features, train,
predict, evaluate, with the settings of musicrec.toml (plus any `--set KEY=VALUE`, given to every
stage). `--from train` reruns only train, predict and evaluate (e.g. after a change of the
hybrid); `--resume` skips a stage whose folder is already complete. Every stage runs niced
(quality runs). The evaluate manifest's `significance_seconds` (the paired Wilcoxon + Holm +
bootstrap comparisons of every metric column) and `cold_start_seconds` are the time the
comparisons add: to measure them, rerun with `--from evaluate --lock /work/bigjob.lock`, which
runs evaluate alone holding the big-job lock (a short hold; evaluate is bit-reproducible, so the
metrics are the same) and records the load average before and after.

The JSON keeps, per strategy: the split summary, the evaluated users, and per model NDCG@10,
recall@10, hit rate@10, coverage@10 and the NDCG@10 / recall@10 difference from the baseline with
its bootstrap 95% interval and Holm-adjusted Wilcoxon p (significant or not), the NDCG@10 "vs
best" verdict, NDCG@10 by activity segment, and (held-out-users) NDCG@10 by known-track count.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MUSICREC = str(Path(sys.executable).with_name("musicrec"))
STRATEGIES = ("temporal", "user-temporal", "user-random", "held-out-users")
STAGES = ("split", "features", "train", "predict", "evaluate")
K = 10


def run_stage(
    folder: Path, stage: str, extra: list[str], options: list[str], *, lock: str | None
) -> float:
    """Run one `musicrec` stage on `folder` (niced; evaluate under `flock lock`); wall seconds."""
    command = [MUSICREC, "-q", "--set", f"paths.artifacts={folder}", *extra, stage, *options]
    command = ["flock", lock, *command] if stage == "evaluate" and lock else ["nice", *command]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return round(time.perf_counter() - start, 2)


def _comparison(sig: dict[str, Any], role: str, model: str, metric: str) -> dict[str, Any] | None:
    found = sig.get(role, {}).get(model, {}).get(metric)
    if found is None:
        return None
    keys = ("reference", "mean_difference", "ci_low", "ci_high", "p_holm", "significant")
    return {k: found[k] for k in keys}


def summarise(folder: Path) -> dict[str, Any]:
    """The per-model table of one evaluated folder (see the module docstring)."""
    metrics = json.loads((folder / "06_evaluate" / "metrics.json").read_text())
    evaluated = json.loads((folder / "06_evaluate" / "manifest.json").read_text())["summary"]
    split = json.loads((folder / "02_split" / "manifest.json").read_text())["summary"]
    sig = metrics["significance"]
    ndcg, recall = f"ndcg@{K}", f"recall@{K}"
    models: dict[str, Any] = {}
    ranked = sorted(metrics["models"].items(), key=lambda kv: -kv[1][ndcg])
    for name, row in ranked:
        models[name] = {
            ndcg: row[ndcg],
            recall: row[recall],
            f"hit_rate@{K}": row.get(f"hit_rate@{K}"),
            f"coverage@{K}": row.get(f"coverage@{K}"),
            "ndcg_vs_baseline": _comparison(sig, "vs_baseline", name, ndcg),
            "recall_vs_baseline": _comparison(sig, "vs_baseline", name, recall),
            "ndcg_vs_best": _comparison(sig, "vs_best", name, ndcg),
        }
    segments = {
        model: {seg: {"n_users": v["n_users"], ndcg: v[ndcg]} for seg, v in by.items()}
        for model, by in metrics.get("segments", {}).get("by_model", {}).items()
    }
    cold = metrics.get("cold_start")
    return {
        "split": {k: split[k] for k in split if not isinstance(split[k], (dict, list))},
        "n_users_evaluated": metrics["n_users_evaluated"],
        "baseline": metrics["baseline"],
        "significance_seconds": evaluated.get("significance_seconds"),
        "cold_start_seconds": evaluated.get("cold_start_seconds"),
        "n_comparisons": sum(
            len(m) for role in ("vs_baseline", "vs_best") for m in sig[role].values()
        ),
        "models": models,
        "segments": segments,
        **(
            {
                "cold_start": {
                    "n_users": cold["n_users"],
                    "by_known": {
                        n: {m: v[ndcg] for m, v in by.items()} for n, by in cold["by_known"].items()
                    },
                }
            }
            if cold
            else {}
        ),
    }


def main() -> None:
    """Run every strategy's stages and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("base", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES)
    parser.add_argument("--from", dest="first", choices=STAGES, default="split")
    parser.add_argument("--resume", action="store_true", help="skip stages already complete")
    parser.add_argument("--lock", help="take this lock (flock) for the timed evaluate")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    preprocess = json.loads((args.base / "01_preprocess" / "manifest.json").read_text())
    timed = preprocess["summary"]["has_timestamps"]
    strategies = args.strategies or [s for s in STRATEGIES if timed or "temporal" not in s]
    extra = [a for pair in args.extra for a in ("--set", pair)]
    result: dict[str, Any] = {
        "data": args.name,
        "preprocess": preprocess["summary"],
        "k": K,
        "settings": args.extra,
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout.strip(),
    }
    for strategy in strategies:
        folder = args.work / f"{args.name}_{strategy}"
        if not (folder / "01_preprocess").is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copytree(args.base / "01_preprocess", folder / "01_preprocess")
        seconds: dict[str, float] = {}
        load_before = os.getloadavg()
        for stage in STAGES[STAGES.index(args.first) :]:
            options = ["--strategy", strategy] if stage == "split" else []
            done = (folder / f"0{STAGES.index(stage) + 2}_{stage}" / "manifest.json").is_file()
            if args.resume and done:
                continue
            load_before = os.getloadavg()
            seconds[stage] = run_stage(folder, stage, extra, options, lock=args.lock)
        result[strategy] = {
            **summarise(folder),
            "stage_seconds": seconds,
            "evaluate_under_lock": bool(args.lock),
            "evaluate_load_before": load_before,
            "evaluate_load_after": os.getloadavg(),
        }
        print(strategy, json.dumps(result[strategy]["models"], indent=1)[:2000])
    out = args.out or ROOT / f"benchmarks/results/strategies_{args.name.replace('-', '_')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
