"""The headline run: generate N raw events, run every stage, measure each one.

    python benchmarks/full_scale.py                 # 800M events, 1.37M users, 805K tracks
    python benchmarks/full_scale.py --scale 80      # the same at 1/80 (10M events) as a rehearsal

Each stage runs as its own `python -m musicrec_cli` process; we record wall time, CPU time, the
peak RSS of the whole process tree (sampled), rows in and out (from the manifests) and bytes on
disk, into benchmarks/results/full_scale[_1-in-N].json. Interrupted runs resume from the last
stage whose results were recorded and whose manifest is still intact. Each stage with a reference
tool is timed beside it on the same data: for train, musicrec's ALS and implicit's own fit of
03_features' weights, interleaved (A/B/A/B, --als-repeats each, medians), and
with --duckdb, DuckDB's filter + aggregation of the raw files for preprocess (at 800M events its
single query spills more than the raw data's size to disk). Before the first stage it runs and
after the last, it times machine_speed.py's fixed ALS fit (scaled down with --scale), so that each
run records how fast the machine was that day. `--table` prints the README table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
from bench_preprocess import DUCKDB
from machine_speed import REFERENCE

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("generate", "preprocess", "split", "features", "train", "predict", "evaluate")
FULL = {"events": 800_000_000, "users": 1_370_000, "tracks": 805_000}
# bytes on disk per raw event, measured at 800M events (2026-11-23): raw Parquet 29, preprocess
# 20 (its scratch is deleted bucket by bucket), split 9, features 9, train + predict + evaluate 3;
# plus headroom. Preprocess's own peak, raw 29 + 40 with its uncompressed scratch (2026-12-03),
# stays under the sum.
DISK_BYTES_PER_EVENT = 29 + 20 + 9 + 9 + 3 + 5


def _config(work: Path, *, events: int, users: int, tracks: int, seed: int) -> Path:
    text = f"""
[paths]
raw = "{work / "raw" / "listens"}"
catalog = "{work / "raw" / "tracks.parquet"}"
artifacts = "{work / "artifacts"}"

[generate]
users = {users}
tracks = {tracks}
events = {events}
genres = {max(4, min(200, tracks // 4000))}
seed = {seed}

[predict]
n = 100
"""
    path = work / "musicrec.toml"
    path.write_text(text)
    return path


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _stage_args(config: Path, stage: str, overrides: list[str]) -> list[str]:
    sets = [a for o in overrides for a in ("--set", o)]
    args = [sys.executable, "-m", "musicrec_cli", "--config", str(config), "-q", *sets, stage]
    return args + (["--out", str(config.parent / "raw")] if stage == "generate" else [])


def _measured(args: list[str], what: str) -> dict[str, float]:
    """Run `args`; wall, CPU seconds (children; system_seconds the kernel's part: page faults
    show there) and sampled peak RSS of its process tree."""
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, env=os.environ | {"OPENBLAS_NUM_THREADS": "1"})
    watched = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(watched))
        time.sleep(0.2)
    wall = time.perf_counter() - start
    after = os.times()
    if proc.returncode != 0:
        msg = f"{what} failed with exit code {proc.returncode}"
        raise SystemExit(msg)
    system = after.children_system - before.children_system
    cpu = (after.children_user - before.children_user) + system
    return {
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "system_seconds": round(system, 2),
        "peak_rss_gib": round(peak / 2**30, 3),
    }


# One ALS fit on 03_features, timed in parts: as musicrec's train stage does it ("musicrec":
# features_train -> weights CSR, the confidence matrix, the fit, saving the factors) or as a user
# of implicit would ("implicit": read three columns, a COO -> CSR, implicit's own fit).
ALS_TIMED = """
import hashlib, json, sys, tempfile, time
from pathlib import Path
from types import SimpleNamespace
import numpy as np, polars as pl, scipy.sparse as sp
from threadpoolctl import threadpool_limits
which, root, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
cfg = json.loads((root / "04_train" / "manifest.json").read_text())["config"]
t = {}
start = time.perf_counter()
if which == "implicit":
    from implicit.cpu.als import AlternatingLeastSquares
    shape = json.loads((root / "04_train" / "metrics.json").read_text())["matrix"]["shape"]
    f = pl.read_parquet(root / "03_features" / "features_train.parquet",
                        columns=["user_idx", "track_idx", "weight"])
    m = sp.csr_matrix((f["weight"].to_numpy().astype(np.float32),
                       (f["user_idx"].to_numpy(), f["track_idx"].to_numpy())), shape=tuple(shape))
    del f
    t["matrix_seconds"] = time.perf_counter() - start
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=cfg["factors"], iterations=cfg["iterations"],
            regularization=cfg["regularization"], alpha=cfg["alpha"], random_state=cfg["seed"])
        start = time.perf_counter()
        model.fit(m, show_progress=False)
    t["fit_seconds"] = time.perf_counter() - start
else:
    from musicrec_cli.runner.train import load_train_data
    from stages.models import registry
    from stages.models.als import fit_als
    from stages.models.fitting import als_matrix
    data = load_train_data(root)
    t["load_weights_seconds"] = time.perf_counter() - start
    p = registry.spec("als").params_from(SimpleNamespace(**cfg))
    start = time.perf_counter()
    matrix = als_matrix(data, p)
    t["confidence_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    model = fit_als(matrix, factors=p.factors, iterations=p.iterations,
        regularization=p.regularization, alpha=p.alpha, seed=p.seed)
    t["fit_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        path = Path(tmp) / "als.npz"
        with path.open("wb") as handle:
            np.savez(handle, **model.arrays())
        hashlib.sha256(path.read_bytes()).hexdigest()  # as the manifest records it
    t["save_seconds"] = time.perf_counter() - start
nnz = int((m if which == "implicit" else matrix).nnz)
t = {k: round(v, 3) for k, v in t.items()} | {"nnz": nnz}
Path(out).write_text(json.dumps(t))
"""


def _median(runs: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def _als_reference(work: Path, repeats: int) -> dict[str, object]:
    """musicrec's ALS and implicit's own fit on 03_features' weights, interleaved A/B/A/B.

    musicrec's ALS is implicit's algorithm with its own compiled sweep; the machine's load
    swings a single sequential pair (0.66-1.38x between runs when both were implicit's code),
    so the medians of interleaved runs are the comparison, and the work musicrec adds around
    the fit (weights CSR, confidence matrix, saving the factors) is timed on its own.
    """
    arts = work / "artifacts"
    runs: dict[str, list[dict[str, float]]] = {"musicrec": [], "implicit": []}
    for _ in range(repeats):
        for which, done in runs.items():
            out = work / f"als_{which}.json"
            args = [sys.executable, "-c", ALS_TIMED, which, str(arts), str(out)]
            measured = _measured(args, f"ALS {which}")
            done.append(measured | json.loads(out.read_text()))
            out.unlink()
    ours, ref = runs["musicrec"], runs["implicit"]
    return {
        "repeats": repeats,
        "order": "musicrec, implicit, musicrec, implicit, ... (each its own process)",
        "runs": runs,
        "median_fit_seconds": {"musicrec": _median(ours, "fit_seconds"),
                               "implicit": _median(ref, "fit_seconds")},
        "median_musicrec_extra_seconds": {
            k: _median(ours, k) for k in ("load_weights_seconds", "confidence_seconds",
                                          "save_seconds")
        },
        "median_implicit_matrix_seconds": _median(ref, "matrix_seconds"),
        "median_peak_rss_gib": {"musicrec": _median(ours, "peak_rss_gib"),
                                "implicit": _median(ref, "peak_rss_gib")},
        "ratio_fit_musicrec_vs_implicit": round(
            _median(ours, "fit_seconds") / _median(ref, "fit_seconds"), 3
        ),
        "train_stage_als_seconds": json.loads((arts / "04_train" / "metrics.json").read_text())[
            "models"]["als"]["train_seconds"],
        "load_average_at_end": os.getloadavg(),
    }  # fmt: skip


def _machine_speed(scale: float, when: str) -> dict[str, object]:
    """machine_speed.py's ALS fit in its own process, scaled down with the run.

    The nonzeros are divided by `scale`, the rows and columns by its square root (the same
    density); at scale 1 it is the reference fit.
    """
    divide = {"users": scale**0.5, "items": scale**0.5, "nnz": scale}
    sizes = [f"--{k}={max(1, int(REFERENCE[k] / d))}" for k, d in divide.items()]
    script = Path(__file__).with_name("machine_speed.py")
    done = subprocess.run(
        [sys.executable, str(script), *sizes], capture_output=True, text=True, check=True
    )
    check = {"when": when} | json.loads(done.stdout)
    print(f"machine speed {when}: {check['wall_ns_per_nnz_iteration']} ns per nnz per iteration")
    return check


def _duckdb_reference(work: Path, preprocess_seconds: float) -> dict[str, object]:
    """DuckDB's filter + (user, track) aggregation of the same raw files (bench_preprocess)."""
    out = work / "duckdb_pairs.parquet"
    spill = work / "duckdb_spill"
    args = [sys.executable, "-c", DUCKDB, str(work / "raw" / "listens"), str(out), str(spill)]
    measured = _measured(args, "DuckDB reference")
    pairs = pq.ParquetFile(out).metadata.num_rows
    out.unlink()
    shutil.rmtree(spill, ignore_errors=True)
    return measured | {
        "pairs": pairs,
        "ratio_musicrec_vs_duckdb": round(preprocess_seconds / measured["wall_seconds"], 3),
    }


def _folder(work: Path, stage: str) -> Path:
    if stage == "generate":
        return work / "raw"
    return work / "artifacts" / f"{STAGES.index(stage):02d}_{stage}"


def _size(path: Path) -> int:
    """Bytes of the files under `path`, through symbolic links (a shared raw folder)."""
    walk = os.walk(path, followlinks=True)
    return sum((Path(top) / name).stat().st_size for top, _, names in walk for name in names)


def _rows(work: Path, stage: str) -> dict[str, object]:
    if stage == "generate":
        return {}
    manifest = json.loads((_folder(work, stage) / "manifest.json").read_text())
    return {
        "rows_out": {k: v["rows"] for k, v in manifest["outputs"].items() if "rows" in v},
        "summary": manifest.get("summary", {}),
    }


def _done(work: Path, stage: str) -> bool:
    folder = _folder(work, stage)
    marker = folder / ("tracks.parquet" if stage == "generate" else "manifest.json")
    return marker.is_file()


def table(results: dict[str, object]) -> str:
    """The per-stage Markdown table of a results JSON (as in the README)."""
    lines = [
        "| stage | wall | CPU s | peak RSS (tree) | on disk | rows out |",
        "|---|---:|---:|---:|---:|---|",
    ]
    stages = dict(results["stages"])  # type: ignore[call-overload]
    for stage, m in stages.items():
        rows = ", ".join(f"{k} {v:,}" for k, v in m.get("rows_out", {}).items())
        lines.append(
            f"| {stage} | {m['wall_seconds'] / 60:.1f} min | {m['cpu_seconds']:,.0f} "
            f"| {m['peak_rss_gib']:.2f} GiB | {m['bytes_on_disk'] / 1e9:.1f} GB | {rows} |"
        )
    chain = sum(m["wall_seconds"] for s, m in stages.items() if s != "generate")
    lines.append(f"| **preprocess to evaluate** | **{chain / 60:.1f} min** | | | | |")
    checks = results.get("machine_speed") or []  # type: ignore[attr-defined]
    if checks:
        speeds = ", ".join(f"{c['wall_ns_per_nnz_iteration']:.0f} ns {c['when']}" for c in checks)
        lines.append(
            f"\nMachine speed (benchmarks/machine_speed.py, ALS ns per nnz per iteration): {speeds}"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, check disk space, run the stages not yet done, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="divide the sizes by this")
    parser.add_argument("--events", type=int, help="override the number of events")
    parser.add_argument("--work", type=Path, help="working folder (default benchmarks/work/...)")
    parser.add_argument("--results", type=Path, help="JSON output path")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fresh", action="store_true", help="delete earlier work, start over")
    parser.add_argument("--until", choices=STAGES, default=STAGES[-1], help="last stage to run")
    parser.add_argument("--table", action="store_true", help="print the results as Markdown")
    parser.add_argument(
        "--als-repeats", type=int, default=3,
        help="interleaved musicrec/implicit ALS fits after train (medians); 0 skips them",
    )  # fmt: skip
    parser.add_argument(
        "--duckdb", action="store_true",
        help="also time DuckDB's aggregation of the raw files (spills ~3x the raw size to disk)",
    )  # fmt: skip
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="setting passed to every stage, e.g. train.models=[\"als\"] (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()

    label = "full_scale" if args.scale == 1 else f"full_scale_1-in-{args.scale:g}"
    work = args.work or ROOT / "benchmarks" / "work" / label
    results_path = args.results or ROOT / "benchmarks" / "results" / f"{label}.json"
    if args.table:
        print(table(json.loads(results_path.read_text())))
        return
    sizes = {k: max(1, int(v / args.scale)) for k, v in FULL.items()}
    if args.events:
        sizes["events"] = args.events
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)

    # what earlier runs already wrote into the work folder counts as available
    need = sizes["events"] * DISK_BYTES_PER_EVENT - _size(work)
    free = shutil.disk_usage(work).free
    print(f"{sizes}: needs about {need / 1e9:.1f} GB more disk, {free / 1e9:.1f} GB free in {work}")
    if need > free:
        msg = "not enough free disk space; free some or use --scale"
        raise SystemExit(msg)

    config = _config(work, seed=args.seed, **sizes)
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    if results.get("sizes") != sizes:
        results = {"sizes": sizes, "stages": {}}
    results["settings"] = args.overrides
    results["machine"] = {
        "cpus": os.cpu_count(),
        "memory_gib": psutil.virtual_memory().total / 2**30,
    }
    ran: list[str] = []
    for stage in STAGES[: STAGES.index(args.until) + 1]:
        if stage in results["stages"] and _done(work, stage):
            print(f"{stage}: done earlier, {results['stages'][stage]['wall_seconds']} s")
            continue
        if not ran:
            speed = results.setdefault("machine_speed", [])
            speed.append(_machine_speed(args.scale, f"before {stage}"))
        ran.append(stage)
        print(f"{stage} ...", flush=True)
        measured = _measured(_stage_args(config, stage, args.overrides), stage)
        measured |= {"bytes_on_disk": _size(_folder(work, stage))} | _rows(work, stage)
        results["stages"][stage] = measured
        # later stages depend on this one: forget their results
        for later in STAGES[STAGES.index(stage) + 1 :]:
            results["stages"].pop(later, None)
        if stage == "train":
            results.pop("als_reference", None)
        if stage == "preprocess":
            results.pop("preprocess_reference", None)
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"{stage}: {measured['wall_seconds']} s, peak {measured['peak_rss_gib']} GiB")
    if ran:
        results["machine_speed"].append(_machine_speed(args.scale, f"after {ran[-1]}"))
        results_path.write_text(json.dumps(results, indent=2) + "\n")
    if args.duckdb and "preprocess" in results["stages"] and "preprocess_reference" not in results:
        print("DuckDB reference (filter + aggregation of the same raw files) ...", flush=True)
        seconds = results["stages"]["preprocess"]["wall_seconds"]
        ref = results["preprocess_reference"] = _duckdb_reference(work, seconds)
        print(f"preprocess: musicrec / DuckDB = {ref['ratio_musicrec_vs_duckdb']}")
        results_path.write_text(json.dumps(results, indent=2) + "\n")
    trained = "train" in results["stages"] and (work / "artifacts/04_train/als.npz").is_file()
    if trained and "als_reference" not in results and args.als_repeats > 0:
        print("ALS reference (implicit's own fit on the same matrix) ...", flush=True)
        ref = results["als_reference"] = _als_reference(work, args.als_repeats)
        print(f"ALS fit: musicrec / implicit = {ref['ratio_fit_musicrec_vs_implicit']} (medians)")
    total = sum(s["wall_seconds"] for s in results["stages"].values())
    results["total_wall_seconds"] = round(total, 1)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"total {total / 60:.1f} min -> {results_path}")


if __name__ == "__main__":
    main()
