"""RP3beta at scale: train time and peak memory at 10M and 100M generated events (issue 19).

Events are drawn the way `musicrec generate` draws them (`stages.generate.make_world`'s
Zipf users, genre tastes and Zipf tracks within a genre; no names, which RP3beta never reads),
at the full-scale setting's proportions (800M events, 1.37M users, 805K tracks) divided by 80
and 8, then counted per (user, track) and weighted log1p(plays) as 03_features does (no
recency term). Each fit runs in a fresh process so that its peak RSS is its own:

- musicrec RP3beta (`stages.models.rp3beta.fit_rp3beta`, alpha 1, beta 0.5, 100 neighbours:
  the defaults of musicrec.toml);
- the reference, in the same run: implicit's item kNN (`CosineRecommender`, K = 100), the
  closest tool doing the same sparse item-item product and top-K.

    python benchmarks/rp3beta_scale.py 10000000 100000000

Sizes are measured in separate lock holds if need be: sizes already in the results file and
not given again are kept.

Results (median of --repeats, with the machine load) go to benchmarks/results/rp3beta_scale.json,
plus a linear extrapolation to 800M events from the two largest sizes (time by the product's
multiply-adds, sum over users of their distinct tracks squared; memory by pairs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stages.generate import draw_plays, make_world  # noqa: E402

FULL = {"events": 800_000_000, "users": 1_370_000, "tracks": 805_000}
CHUNK = 20_000_000
NEIGHBOURS = 100
# which RP3beta code a size was measured with (sizes of other code are kept, not mixed)
CODE = ROOT / "stages" / "models" / "rp3beta.py"

# Peaks are read from /proc/self/status's VmHWM (the high-water mark of this process's own
# memory map), not ru_maxrss: Linux carries a forked parent's high-water mark into ru_maxrss
# across exec, so ru_maxrss read the parent's (the drawing of the events) as the fit's own.
CHILD = """
import json, sys, time
import numpy as np, scipy.sparse as sp
from threadpoolctl import threadpool_limits
def kib(field):
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith(field + ":"))
matrix = sp.load_npz(sys.argv[2]).tocsr()
base = kib("VmHWM")
cpu0, t0 = time.process_time(), time.perf_counter()
with threadpool_limits(1, "blas"):
    if sys.argv[1] == "rp3beta":
        from stages.models.rp3beta import fit_rp3beta
        model = fit_rp3beta(matrix, alpha=1.0, beta=0.5, neighbours=int(sys.argv[3]))
        nnz = model.similarity.nnz
    else:
        from implicit.nearest_neighbours import CosineRecommender
        ref = CosineRecommender(K=int(sys.argv[3]), num_threads=1)
        ref.fit(sp.csr_matrix(matrix, dtype=np.float64), show_progress=False)
        nnz = ref.similarity.nnz
print(json.dumps({
    "wall_seconds": round(time.perf_counter() - t0, 2),
    "cpu_seconds": round(time.process_time() - cpu0, 2),
    "peak_rss_gib": round(kib("VmHWM") / 2**20, 3),
    "rss_before_fit_gib": round(base / 2**20, 3),  # after loading; the fit may stay below it
    "similarity_nnz": int(nnz),
}))
"""


def draw_matrix(events: int, *, seed: int = 42) -> sp.csr_matrix:
    """(users, tracks) float32 CSR of log1p(plays) for `events` plays drawn like `generate`.

    Users, tracks and genres in the full-scale proportions; plays drawn in chunks by
    `stages.generate.draw_plays` (what `make_events` draws first: user by activity, genre by
    taste 60/25/15, track by popularity within the genre); skips (25%) are left out, as
    preprocess drops them.
    """
    scale = FULL["events"] / events
    n_users, n_tracks = int(FULL["users"] / scale), int(FULL["tracks"] / scale)
    n_genres = max(4, min(200, n_tracks // 4000))
    world = make_world(n_users=n_users, n_tracks=n_tracks, n_genres=n_genres, seed=seed)
    rng = np.random.default_rng(seed)
    keys = []
    for start in range(0, events, CHUNK):
        user, track, skipped = draw_plays(world, min(CHUNK, events - start), rng, n_genres=n_genres)
        kept = ~skipped
        key, count = np.unique(user[kept] * np.int64(n_tracks) + track[kept], return_counts=True)
        keys.append((key, count))
    key = np.concatenate([k for k, _ in keys])
    count = np.concatenate([c for _, c in keys])
    key, inverse = np.unique(key, return_inverse=True)
    plays = np.bincount(inverse, weights=count)
    rows, cols = np.divmod(key, np.int64(n_tracks))
    weights = np.log1p(plays).astype(np.float32)
    return sp.csr_matrix((weights, (rows, cols)), shape=(n_users, n_tracks))


def _fit(kind: str, path: Path) -> dict[str, float]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(path), str(NEIGHBOURS)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(events: int, repeats: int) -> dict[str, object]:
    load = os.getloadavg()
    start = time.perf_counter()
    matrix = draw_matrix(events)
    per_user = np.diff(matrix.indptr).astype(np.float64)
    shape = {
        "events": events,
        "users": matrix.shape[0],
        "tracks": matrix.shape[1],
        "pairs": int(matrix.nnz),
        "product_multiply_adds": float((per_user**2).sum()),
        "draw_seconds": round(time.perf_counter() - start, 1),
    }
    print(shape, flush=True)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "matrix.npz"
        sp.save_npz(path, matrix, compressed=False)
        del matrix
        runs: dict[str, list[dict[str, float]]] = {"rp3beta": [], "implicit_cosine": []}
        for _ in range(repeats):  # interleaved, so both see the same load
            for kind in runs:
                runs[kind].append(_fit(kind, path))
                print(kind, runs[kind][-1], flush=True)
    medians = {
        kind: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for kind, rs in runs.items()
    }
    ratio = medians["rp3beta"]["wall_seconds"] / medians["implicit_cosine"]["wall_seconds"]
    return {
        **shape,
        "rp3beta_code_sha256": hashlib.sha256(CODE.read_bytes()).hexdigest(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_at_start": [round(x, 2) for x in load],
        "load_at_end": [round(x, 2) for x in os.getloadavg()],
        "median": medians,
        "runs": runs,
        "rp3beta_over_implicit_wall": ratio,
    }


def extrapolate(sizes: list[dict[str, object]]) -> dict[str, object]:
    """800M events from the two largest measured sizes: time two ways, memory ~ pairs.

    The multiply-adds and pairs at 800M are themselves extrapolated by their growth exponent
    between the two sizes (events ** k), since drawing 800M events here would take as long.
    CPU time is scaled two ways: by the multiply-adds (a lower bound: it holds the cost of one
    multiply-add constant, and that cost grew from 10M to 100M), and by the measured CPU's own
    growth exponent between the two sizes.
    """
    a, b = sizes[-2], sizes[-1]
    ea, eb = float(a["events"]), float(b["events"])  # type: ignore[arg-type]

    def grow(va: float, vb: float) -> float:
        k = np.log(vb / va) / np.log(eb / ea)
        return float(vb * (FULL["events"] / eb) ** k)

    def of(size: dict[str, object], key: str) -> float:
        return float(size[key])  # type: ignore[arg-type]

    mads = grow(of(a, "product_multiply_adds"), of(b, "product_multiply_adds"))
    pairs = grow(of(a, "pairs"), of(b, "pairs"))
    ra, rb = a["median"]["rp3beta"], b["median"]["rp3beta"]  # type: ignore[index]
    by_mads = rb["cpu_seconds"] * mads / of(b, "product_multiply_adds")
    by_growth = grow(ra["cpu_seconds"], rb["cpu_seconds"])
    # the whole process's peak (matrix loaded, imports, fit) per pair beyond the smaller size's
    base = ra["peak_rss_gib"]
    per_pair = (rb["peak_rss_gib"] - base) / (of(b, "pairs") - of(a, "pairs"))
    return {
        "events": FULL["events"],
        "from_sizes": [int(ea), int(eb)],
        "pairs_estimated": round(pairs),
        "pairs_measured_in_full_scale_json": 307_000_000,
        "product_multiply_adds_estimated": mads,
        "cpu_seconds_per_multiply_add": [
            ra["cpu_seconds"] / of(a, "product_multiply_adds"),
            rb["cpu_seconds"] / of(b, "product_multiply_adds"),
        ],
        "rp3beta_cpu_hours_one_core_by_multiply_adds": round(by_mads / 3600, 1),
        "rp3beta_cpu_hours_one_core_by_measured_growth": round(by_growth / 3600, 1),
        "peak_bytes_per_pair": round(per_pair * 2**30, 1),
        "rp3beta_process_peak_gib_at_estimated_pairs": round(base + per_pair * pairs, 1),
        "rp3beta_process_peak_gib_at_307m_pairs": round(base + per_pair * 307e6, 1),
        "how": "CPU time (wall is inflated by the shared machine's load) scaled by multiply-adds "
        "and by its own growth; process peak by pairs; between the two largest sizes",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "events", type=int, nargs="*", help="sizes to measure (none: recompute from the file)"
    )
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "results" / "rp3beta_scale.json"
    # sizes measured in earlier runs (separate lock holds) are kept unless measured again
    earlier = json.loads(out.read_text(encoding="utf-8"))["sizes"] if out.exists() else []
    fresh = [measure(e, args.repeats) for e in sorted(args.events)]
    code = hashlib.sha256(CODE.read_bytes()).hexdigest()
    again = {(s["events"], code) for s in fresh}
    sizes = sorted(
        [s for s in earlier if (s["events"], s.get("rp3beta_code_sha256")) not in again] + fresh,
        key=lambda s: (int(s["events"]), str(s.get("measured_at"))),
    )
    # extrapolate from the code measured at the largest size (the two largest of that code)
    largest = max(sizes, key=lambda s: int(s["events"]))
    same = sorted(
        (s for s in sizes if s.get("rp3beta_code_sha256") == largest.get("rp3beta_code_sha256")),
        key=lambda s: int(s["events"]),
    )
    report = {
        "what": "RP3beta fit (alpha 1, beta 0.5, 100 neighbours) vs implicit CosineRecommender "
        "(K 100), one core each, fresh process per fit; generated data",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs",
        "peak": "VmHWM of the fit's own process (from 2026-12-01; earlier runs read ru_maxrss, "
        "which carried the parent's high-water mark)",
        "code": "each size's rp3beta_code_sha256 is that of stages/models/rp3beta.py when it ran; "
        "the extrapolation uses the two largest sizes of the code measured at the largest size",
        "sizes": sizes,
        "extrapolated_800m": extrapolate(same) if len(same) >= 2 else None,
    }
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report["extrapolated_800m"], indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
