"""musicrec's ALS fit against implicit's own on the same matrices, interleaved A/B/A/B.

    python benchmarks/bench_als.py                       # three shapes, 3 iterations, 3 pairs
    python benchmarks/bench_als.py --shape 1370000x805000x254000000 --iterations 1

musicrec runs implicit's algorithm (conjugate gradient, 3 steps, float32, same random start)
with its own compiled sweep (stages.models.als_cg); implicit's `AlternatingLeastSquares.fit`
is the reference, with BLAS on one thread for both as train does. Matrices are drawn with
Zipf-like users and tracks (the chain's shape and a smaller one) plus machine_speed.py's
uniform reference matrix. Each fit runs in the same process, the two tools alternating, after
a warm-up that compiles (or loads) musicrec's sweep; medians of the pairs are reported, with
each side's ns per nonzero per iteration and the relative difference of the two fits' scores
on 2,000 sampled users. Results: benchmarks/results/als_fit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_speed import random_matrix  # noqa: E402

from stages.models.als import fit_als  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "als_fit.json"
SHAPES = ["100000x200000x4100000:uniform", "1370000x805000x42000000", "171250x100625x32500000"]


def zipf_matrix(users: int, items: int, nnz: int, seed: int = 0) -> sp.csr_matrix:
    """About `nnz` cells, users and tracks drawn with Zipf-like weights, counts 1-19."""
    rng = np.random.default_rng(seed)
    user_weight = 1.0 / np.arange(1, users + 1) ** 0.6
    item_weight = 1.0 / np.arange(1, items + 1) ** 0.9
    rows = rng.choice(users, size=nnz, p=user_weight / user_weight.sum()).astype(np.int32)
    cols = rng.permutation(items)[rng.choice(items, size=nnz, p=item_weight / item_weight.sum())]
    data = rng.integers(1, 20, nnz).astype(np.float32)
    matrix = sp.csr_matrix((data, (rows, cols.astype(np.int32))), shape=(users, items))
    matrix.sum_duplicates()
    return matrix


def implicit_fit(matrix: sp.csr_matrix, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(factors=64, iterations=iterations, random_state=0)
    model.fit(matrix, show_progress=False)
    return model.user_factors, model.item_factors


def musicrec_fit(matrix: sp.csr_matrix, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    model = fit_als(
        matrix, factors=64, iterations=iterations, regularization=0.01, alpha=1.0, seed=0
    )  # implicit's defaults
    return model.user_factors, model.item_factors


def score_difference(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    users = np.random.default_rng(1).choice(a[0].shape[0], size=2000, replace=False)
    left, right = a[0][users] @ a[1].T, b[0][users] @ b[1].T
    return float(np.linalg.norm(left - right) / np.linalg.norm(right))


def run_shape(spec: str, iterations: int, repeats: int) -> dict[str, object]:
    sizes, _, kind = spec.partition(":")
    users, items, nnz = (int(v) for v in sizes.split("x"))
    matrix = (random_matrix if kind == "uniform" else zipf_matrix)(users, items, nnz)
    print(f"{spec}: {matrix.nnz:,} nnz", flush=True)
    walls: dict[str, list[float]] = {"musicrec": [], "implicit": []}
    fits = {}
    with threadpool_limits(1, "blas"):
        for _ in range(repeats):
            for name, fit in (("musicrec", musicrec_fit), ("implicit", implicit_fit)):
                start = time.perf_counter()
                fits[name] = fit(matrix, iterations)
                walls[name].append(round(time.perf_counter() - start, 3))
                print(f"  {name}: {walls[name][-1]:.1f} s", flush=True)
    medians = {k: statistics.median(v) for k, v in walls.items()}
    work = matrix.nnz * iterations
    return {
        "shape": spec,
        "nnz": int(matrix.nnz),
        "longest_user": int(np.diff(matrix.indptr).max()),
        "longest_track": int(np.bincount(matrix.indices, minlength=items).max()),
        "wall_seconds": walls,
        "median_wall_seconds": medians,
        "ns_per_nnz_iteration": {k: round(v / work * 1e9, 1) for k, v in medians.items()},
        "speedup_vs_implicit": round(medians["implicit"] / medians["musicrec"], 2),
        "score_relative_difference": round(score_difference(fits["musicrec"], fits["implicit"]), 6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", action="append", help="USERSxITEMSxNNZ[:uniform]")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    musicrec_fit(random_matrix(100, 200, 2000), 1)  # compile or load the sweep
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    shapes = [run_shape(s, args.iterations, args.repeats) for s in args.shape or SHAPES]
    result = {
        "measured": f"{started} to {time.strftime('%H:%M:%SZ', time.gmtime())}",
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "settings": {"factors": 64, "iterations": args.iterations, "regularization": 0.01,
                     "cg_steps": 3, "blas_threads": 1, "repeats": args.repeats},
        "shapes": shapes,
    }  # fmt: skip
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({s["shape"]: s["speedup_vs_implicit"] for s in shapes}))


if __name__ == "__main__":
    main()
