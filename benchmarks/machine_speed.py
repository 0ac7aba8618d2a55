"""How fast this machine runs the chain's heaviest kernel right now: one fixed implicit ALS fit.

    python benchmarks/machine_speed.py          # 100K x 200K, 4.1M nnz, 64 factors, 15 it

The 800M chain's train stage is implicit's ALS fit (a third of the chain), and the same fit ran
1.6-3x slower on some days than on others on the same machine kind (a shared VM). This fit is
../shared/PERFORMANCE.md's reference row (13.2 s on this machine kind, BLAS on one thread,
implicit's OpenMP on every core), so a chain's stage times can be read against the machine's
speed that day: full_scale.py runs it before and after the stages it runs and keeps both.
Prints one JSON object: wall and CPU seconds, ns per nonzero per iteration, and the ratio to
the reference when the sizes are the reference's.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

REFERENCE = {"users": 100_000, "items": 200_000, "nnz": 4_100_000, "factors": 64, "iterations": 15}
REFERENCE_SECONDS = 13.2  # ../shared/PERFORMANCE.md, implicit ALS 4.1M nnz, 100K x 200K


def random_matrix(users: int, items: int, nnz: int, seed: int = 0) -> sp.csr_matrix:
    """`nnz` distinct (user, item) cells of weight 1, drawn uniformly (float32 CSR)."""
    rng = np.random.default_rng(seed)
    cells = np.unique(rng.integers(0, users * items, size=nnz + nnz // 10, dtype=np.int64))
    cells = rng.permutation(cells)[:nnz]
    data = np.ones(cells.size, dtype=np.float32)
    return sp.csr_matrix((data, (cells // items, cells % items)), shape=(users, items))


def als_check(
    *, users: int, items: int, nnz: int, factors: int, iterations: int
) -> dict[str, float | int | None]:
    """Time one implicit ALS fit on `random_matrix` (BLAS on one thread, as the train stage)."""
    from implicit.cpu.als import AlternatingLeastSquares  # noqa: PLC0415 (after the BLAS env)

    matrix = random_matrix(users, items, nnz)
    model = AlternatingLeastSquares(factors=factors, iterations=iterations, random_state=0)
    with threadpool_limits(1, "blas"):
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(matrix, show_progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    work = matrix.nnz * iterations
    sizes = {"users": users, "items": items, "nnz": nnz, "factors": factors,
             "iterations": iterations}  # fmt: skip
    return {
        **sizes,
        "nnz": matrix.nnz,  # as drawn (fewer than asked only if the matrix has too few cells)
        "wall_seconds": round(wall, 6),
        "cpu_seconds": round(cpu, 6),
        "wall_ns_per_nnz_iteration": round(wall / work * 1e9, 1),
        "cpu_ns_per_nnz_iteration": round(cpu / work * 1e9, 1),
        # > 1: slower than the reference machine
        "vs_reference": round(wall / REFERENCE_SECONDS, 3) if sizes == REFERENCE else None,
        "load_average": round(os.getloadavg()[0], 2),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    """Parse the sizes (the reference's by default), run the fit, print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, value in REFERENCE.items():
        parser.add_argument(f"--{name}", type=int, default=value)
    args = parser.parse_args()
    print(json.dumps(als_check(**vars(args))))


if __name__ == "__main__":
    main()
