"""Choose the hybrid's weights for listeners with few tracks on held-out users, by NDCG@K.

Usage: python benchmarks/coldstart_weights.py ARTIFACTS [--k 10] [--out benchmarks/results/...]

ARTIFACTS must hold a held-out-users split (02_split) with 03_features and a trained 04_train
(popularity, content, als, hybrid and optionally knn). Each held-out user is given 0-4 of their
known tracks (seeded) and the hybrid is scored with every weight triple of a 0.1 grid for
[als, content, popularity] (summing to 1), next to the single models. Run it on a split whose
held-out users are NOT the ones `musicrec evaluate` reports on (another [split].seed), so the
chosen weights are validated on other users.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np
import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, scan, stage_dir
from musicrec_cli.runner.train import load_models
from stages.evaluate import coldstart
from stages.interactions import build_matrix
from stages.models.hybrid import HybridModel
from stages.schema import MODEL, TRACK_IDX, USER_IDX, WEIGHT

COUNTS = (0, 1, 2, 3, 4)


def grid(step: float = 0.1) -> list[tuple[float, float, float]]:
    """Every (als, content, popularity) on a `step` grid that sums to 1."""
    n = round(1 / step)
    return [
        (a * step, c * step, (n - a - c) * step)
        for a, c in itertools.product(range(n + 1), repeat=2)
        if a + c <= n
    ]


def main() -> None:
    """Score the grid and print the best triple per known-track count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/coldstart_weights.json")
    )
    args = parser.parse_args()
    root: Path = args.artifacts
    shape = require_stage(root, "split")["summary"]
    known = pl.read_parquet(
        stage_dir(root, "features") / art.FEATURES_TRAIN, columns=[USER_IDX, TRACK_IDX, WEIGHT]
    )
    history = build_matrix(
        known, value=WEIGHT, n_users=shape["n_users"], n_tracks=shape["n_tracks"]
    )
    test = scan(root, "split", art.TEST)
    users = test.select(USER_IDX).unique().sort(USER_IDX).collect()[USER_IDX].to_numpy()
    models = load_models(root)
    hybrid = models["hybrid"]
    assert isinstance(hybrid, HybridModel)
    scorers = coldstart.history_scorers({m: f for m, f in models.items() if m != "hybrid"})
    for triple in grid():
        table = np.repeat(np.asarray([triple], dtype=np.float32), 3, axis=0)
        variant = dataclasses.replace(hybrid, weights=table)
        scorers[f"hybrid {triple[0]:.1f}/{triple[1]:.1f}/{triple[2]:.1f}"] = (
            coldstart.history_scorers({"hybrid": variant})["hybrid"]
        )
    start = time.perf_counter()
    runs = coldstart.known_track_runs(
        history, users.astype(np.int64), test, scorers, ks=(args.k,), counts=COUNTS, seed=42
    )
    seconds = time.perf_counter() - start
    metric = f"ndcg@{args.k}"
    result: dict[str, object] = {"artifacts": str(root), "k": args.k, "seconds": round(seconds, 1)}
    for n in COUNTS:
        rows = runs.filter(pl.col(coldstart.KNOWN) == n).sort(metric, descending=True)
        singles = rows.filter(~pl.col(MODEL).str.starts_with("hybrid"))
        blends = rows.filter(pl.col(MODEL).str.starts_with("hybrid"))
        result[str(n)] = {
            "n_users": int(rows["n_users"].max()),
            "singles": dict(zip(singles[MODEL], singles[metric], strict=True)),
            "best_blends": dict(zip(blends[MODEL][:5], blends[metric][:5], strict=True)),
        }
        print(n, result[str(n)])
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
