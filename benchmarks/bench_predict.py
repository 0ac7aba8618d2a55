"""Time batch top-N on synthetic factors: our block scorer against a loop over implicit's recommend.

Usage:
    nice -n 10 .venv/bin/python benchmarks/bench_predict.py --scale 1000000x800000 \
        --methods ours,implicit,similar,similar_implicit --repeats 3 --artifacts ARTIFACTS

For each scale (users x tracks), item distribution and method, a child process builds seeded
float32 factors (64 by default) and a sparse history (~31 tracks per user, skewed to popular
tracks, like the 42.4M pairs of the 1.37M x 805K reference data) for ALL users, then times a
fixed sample of users. Item distributions (--items): "gaussian", plain N(0, 0.01) factors, whose
norms barely differ, and "skewed", the same scaled so that the largest norm is ~27x the median
(as popular tracks of a trained model); with --artifacts also "trained", a fitted ALS on its own
training matrix. Each result gives the skew (max / median item norm). Methods are interleaved
(A/B/A/B, --repeats rounds) and each figure is the median run. Methods:

    ours       stages.predict.FactorTopK (built once, heard tracks filtered) in
               blocks of --block users, plus building the frame and appending it to Parquet
               as predict does (ranked_frame, predict_output.parquet_writer)
    implicit   the reference: implicit's batched `recommend(userids, user_items[userids], N)` in
               blocks of --block users, BLAS limited to one thread, its lists written to the
               same table the same way (scoring and writing timed apart in both)
    dense      the generic path for non-factor models: dense scores + argpartition (smaller sample)
    rerank     `ours` with n * candidates tracks, then stages.rerank (caps + MMR + novelty)
    hnsw       faiss HNSW ([predict].search = "hnsw"): index build time, search rate, and
               recall@n against exact scoring on 2,000 of the sampled users
    similar    similar_tracks: top-K cosine neighbours for a sample of tracks
    similar_implicit  the reference: implicit's batched `similar_items(itemids, N=K+1)`

Each child reports wall seconds, users/second and its own peak RSS. The parent extrapolates every
rate to 1,370,000 users x 805,000 tracks (cost taken as linear in users and in tracks) and writes
benchmarks/results/predict.json. Extrapolated figures are labelled as such.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from musicrec_cli.artifacts import load_arrays, load_matrix  # noqa: E402
from musicrec_cli.runner import predict_output  # noqa: E402
from stages import ann, predict, rerank  # noqa: E402
from stages.models.als import AlsModel, load_als  # noqa: E402

TARGET_USERS, TARGET_TRACKS = 1_370_000, 805_000
RESULTS = Path(__file__).parent / "results" / "predict.json"
TIMED = [
    f"{part}{unit}" for part in ("", "score_", "output_") for unit in ("seconds", "cpu_seconds")
]


def _data(
    users: int, tracks: int, factors: int, seed: int, items: str
) -> tuple[AlsModel, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    uf = rng.standard_normal((users, factors), dtype=np.float32) * np.float32(0.1)
    itf = rng.standard_normal((tracks, factors), dtype=np.float32) * np.float32(0.1)
    scale = (1.0 / (rng.permutation(tracks) + 10.0) ** 0.3).astype(np.float32)
    if items == "skewed":  # norms spread like a trained model's popular tracks, max/median ~27
        itf *= scale[:, None]
    lengths = np.minimum(rng.geometric(1 / 31, users), tracks // 2)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    indices = (tracks * rng.random(int(indptr[-1])) ** 3).astype(np.int32)
    data = np.ones(len(indices), dtype=np.float32)
    history = sp.csr_matrix((data, indices, indptr), shape=(users, tracks))
    return AlsModel(user_factors=uf, item_factors=itf), history


def _blocks(ids: np.ndarray, size: int) -> list[np.ndarray]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


class _Parts:
    """Wall and CPU seconds of the run's scoring and of writing its lists, kept apart."""

    def __init__(self) -> None:
        self.seconds = {"score": 0.0, "output": 0.0}
        self.cpu = {"score": 0.0, "output": 0.0}
        self._part, self._wall, self._cpu = "", 0.0, 0.0

    def __call__(self, part: str) -> _Parts:
        self._part = part
        return self

    def __enter__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), _cpu()

    def __exit__(self, *_: object) -> None:
        self.seconds[self._part] += time.perf_counter() - self._wall
        self.cpu[self._part] += _cpu() - self._cpu

    def record(self) -> dict:
        return {
            **{f"{p}_seconds": round(v, 3) for p, v in self.seconds.items()},
            **{f"{p}_cpu_seconds": round(v, 3) for p, v in self.cpu.items()},
        }


def _scored_and_written(users: np.ndarray, a: argparse.Namespace, score) -> dict:
    """`score(block) -> (idx, best)` for each block, and its rows written as predict writes
    them (`ranked_frame` + predict_output.parquet_writer): the output is the same table for
    musicrec and implicit, so the headline ratio compares equal work."""
    parts = _Parts()
    with tempfile.TemporaryDirectory() as tmp:
        writer = None
        for block in _blocks(users, a.block):
            with parts("score"):
                idx, best = score(block)
            with parts("output"):
                table = predict.ranked_frame(block, idx, best, model_name="als").to_arrow()
                writer = writer or predict_output.parquet_writer(Path(tmp) / "p", table.schema)
                writer.write_table(table)
        with parts("output"):
            if writer is not None:
                writer.close()
    return parts.record()


def _run_ours(model: AlsModel, history: sp.csr_matrix, users: np.ndarray, a: argparse.Namespace):
    top = predict.FactorTopK(model.item_factors)  # once per model, as the predict stage does
    done = _scored_and_written(
        users, a, lambda block: top(model.user_factors[block], history[block], a.n)
    )
    return {"branches": dict(top.branches), **done}


def _run_implicit(model: AlsModel, history: sp.csr_matrix, users: np.ndarray, a):
    reference = model.to_implicit()

    def score(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = reference.recommend(
            block, history[block], N=a.n, filter_already_liked_items=True
        )
        return ids.astype(np.int64), scores

    with threadpool_limits(1, "blas"):
        return _scored_and_written(users, a, score)


def _run_dense(model: AlsModel, history: sp.csr_matrix, users: np.ndarray, a):
    dense = _DenseOnly(model)
    for block in _blocks(users, a.block):
        predict.candidates(dense, block, history[block], k=a.n)


def _run_rerank(model: AlsModel, history: sp.csr_matrix, users: np.ndarray, a):
    n_items = model.item_factors.shape[0]
    rng = np.random.default_rng(1)
    attrs = rerank.ItemAttributes(
        group=np.arange(n_items) // 2,
        artist=rng.integers(0, n_items // 10, n_items),
        novelty=rng.random(n_items).astype(np.float32),
        vectors=predict.unit_rows(model.item_factors),
    )
    params = rerank.RerankParams(n=a.n, max_per_artist=2)
    top = predict.FactorTopK(model.item_factors)
    for block in _blocks(users, a.block):
        idx, best = top(model.user_factors[block], history[block], a.n * a.candidates)
        rerank.rerank(idx, best, attrs, params)


def _run_similar(model: AlsModel, history: sp.csr_matrix, users: np.ndarray, a):
    cosine = predict.FactorTopK(predict.unit_rows(model.item_factors))
    for block in _blocks(users % cosine.items.shape[0], a.block):
        predict.similar_block(cosine, block, k=a.similar_k)
    return {"branches": dict(cosine.branches)}


def _run_similar_implicit(model: AlsModel, history: sp.csr_matrix, users: np.ndarray, a):
    reference = model.to_implicit()
    with threadpool_limits(1, "blas"):
        for block in _blocks(users % model.n_items, a.block):
            reference.similar_items(block, N=a.similar_k + 1)  # the track itself comes first


def _run_hnsw(model: AlsModel, history: sp.csr_matrix, users: np.ndarray, a) -> dict:
    start = time.perf_counter()
    index = ann.build_hnsw(model.item_factors, m=a.hnsw_m, ef_construction=max(40, 2 * a.hnsw_m))
    build = time.perf_counter() - start
    start = time.perf_counter()
    found = [
        ann.search_unheard(
            index, model.user_factors[b], history[b], k=a.n, overfetch=a.n, ef_search=a.hnsw_ef
        )[0]
        for b in _blocks(users, a.block)
    ]
    search = time.perf_counter() - start
    # recall@n against exact scoring, on the first 2,000 users of the sample
    check = users[:2000]
    exact = predict.candidates(model, check, history[check], k=a.n)[0]
    approx = np.concatenate(found)[: len(check)]
    rows = np.repeat(np.arange(len(check)), a.n)
    hit_keys = np.isin(rows * 10**7 + approx.ravel(), rows * 10**7 + exact.ravel())
    recall = hit_keys[approx.ravel() >= 0].sum() / max((exact >= 0).sum(), 1)
    return {
        "index_build_seconds": round(build, 2),
        "search_seconds": round(search, 3),
        "search_users_per_second": round(len(users) / search, 1),
        "recall_at_n_vs_exact": round(float(recall), 4),
        "recall_users": len(check),
    }


class _DenseOnly:
    def __init__(self, model: AlsModel) -> None:
        self.model = model
        self.n_items = model.n_items

    def score(self, user_idx, user_items):
        return self.model.score(user_idx, user_items)


METHODS = {
    "ours": _run_ours,
    "implicit": _run_implicit,
    "dense": _run_dense,
    "rerank": _run_rerank,
    "similar": _run_similar,
    "similar_implicit": _run_similar_implicit,
    "hnsw": _run_hnsw,
}


def _child(a: argparse.Namespace) -> None:
    users, tracks = (int(x) for x in a.scale[0].split("x"))
    start = time.perf_counter()
    if a.artifacts:  # a trained ALS model and its training matrix instead of synthetic data
        model = load_als(load_arrays(a.artifacts / "04_train" / "als.npz"))
        history = load_matrix(a.artifacts, "split", "train_matrix.npz")
    else:
        model, history = _data(users, tracks, a.factors, a.seed, a.items)
    build = time.perf_counter() - start
    norms = np.linalg.norm(model.item_factors, axis=1)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sample = np.sort(np.random.default_rng(7).choice(users, size=a.sample, replace=False))
    if "implicit" in a.method:  # importing implicit (~0.5 s) is not the reference's work
        import implicit.cpu.als  # noqa: F401, PLC0415
    cpu_start, start = _cpu(), time.perf_counter()
    extra = METHODS[a.method](model, history, sample.astype(np.int64), a) or {}
    seconds, cpu_seconds = time.perf_counter() - start, _cpu() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "scale": a.scale[0],
        "items": "trained" if a.artifacts else a.items,
        "skew_max_over_median_item_norm": round(float(norms.max() / np.median(norms)), 2),
        "method": a.method,
        "sample_users": a.sample,
        "history_nnz": int(history.nnz),
        "build_seconds": round(build, 2),
        "seconds": round(seconds, 3),
        "users_per_second": round(a.sample / seconds, 1),
        "cpu_seconds": round(cpu_seconds, 3),
        "cpu_ms_per_user": round(cpu_seconds / a.sample * 1000, 4),
        "rss_after_data_mb": round(rss_data, 1),
        "peak_rss_mb": round(peak, 1),
        **extra,
    }
    print(json.dumps(out))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _extrapolate(run: dict, tracks: int) -> dict:
    if run["method"] == "hnsw":
        # build once (about linear in tracks), then a search rate that depends little on them
        build = run["index_build_seconds"] * TARGET_TRACKS / tracks
        return {
            "extrapolated_wall_minutes_1_37M_x_805K": round(
                (build + TARGET_USERS / run["search_users_per_second"]) / 60, 1
            ),
        }
    # cost per query is linear in the number of tracks scored (GEMM + top-k scan); similar
    # tracks has one query per track, the others one per user
    scale = TARGET_TRACKS / tracks
    queries = TARGET_TRACKS if run["method"].startswith("similar") else TARGET_USERS
    rate = run["users_per_second"] / scale
    cpu_minutes = run["cpu_ms_per_user"] * scale * queries / 1000 / 60
    return {
        "extrapolated_users_per_second": round(rate, 1),
        "extrapolated_wall_minutes_1_37M_x_805K": round(queries / rate / 60, 1),
        "extrapolated_cpu_minutes_1_37M_x_805K": round(cpu_minutes, 1),
        # both cores busy the whole time: a lower bound on an otherwise idle machine
        "extrapolated_idle_2core_wall_minutes_1_37M_x_805K": round(cpu_minutes / 2, 1),
    }


def tradeoff(artifacts: Path, k: int = 10) -> list[dict]:
    """Beyond-accuracy metrics at k of each model's lists in artifacts/05_predict, plus the
    accuracy figures of artifacts/06_evaluate/metrics.json: the re-ranking trade-off."""
    import polars as pl  # noqa: PLC0415

    recs = pl.read_parquet(artifacts / "05_predict" / "predictions.parquet")
    items = pl.read_parquet(artifacts / "01_preprocess" / "items.parquet").sort("track_idx")
    train = load_matrix(artifacts, "split", "train_matrix.npz")
    listeners = np.maximum(np.bincount(train.indices, minlength=train.shape[1]), 1)
    n_users = int((np.diff(train.indptr) > 0).sum())
    unit = predict.unit_rows(load_arrays(artifacts / "04_train" / "als.npz")["item_factors"])
    artist = items["artist_key"].rank("dense").to_numpy()
    metrics = json.loads((artifacts / "06_evaluate" / "metrics.json").read_text())["models"]
    out = []
    for model in sorted(recs["model"].unique()):
        top = recs.filter((pl.col("model") == model) & (pl.col("rank") <= k))
        lists = top.sort("user_idx", "rank").group_by("user_idx").agg("track_idx")
        lists = lists.filter(pl.col("track_idx").list.len() == k)  # full lists only
        full = lists["track_idx"].list.to_array(k).to_numpy().astype(np.int64)
        vec = unit[full]
        cos = np.einsum("uid,ujd->uij", vec, vec)
        ild = ((1 - cos).sum(axis=(1, 2)) / (k * (k - 1))).mean()  # diagonal adds 0
        arts = artist[full]
        same = (arts[:, :, None] == arts[:, None, :]).sum(axis=2).max(axis=1)
        distinct = 1 + (np.diff(np.sort(arts, axis=1), axis=1) != 0).sum(axis=1)
        row = {
            "model": model,
            f"ndcg@{k}": metrics[model][f"ndcg@{k}"],
            f"recall@{k}": metrics[model][f"recall@{k}"],
            f"ild@{k}": round(float(ild), 4),
            f"novelty@{k}": round(float(np.log2(n_users / listeners[full]).mean()), 3),
            f"coverage@{k}": round(len(np.unique(full)) / train.shape[1], 4),
            f"distinct_artists@{k}": round(float(distinct.mean()), 2),
            f"max_per_artist@{k}": int(same.max()),
        }
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="append", help="USERSxTRACKS (repeatable)")
    parser.add_argument("--methods", default="ours,implicit,dense,rerank,similar")
    parser.add_argument("--sample", type=int, default=20_000, help="users timed per method")
    parser.add_argument("--small-sample", type=int, default=4_000, help="for dense/rerank/similar")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--similar-k", type=int, default=20)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--block", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--hnsw-ef", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument(
        "--items", default="gaussian,skewed", help="synthetic item factor distributions"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tradeoff", type=Path, help="print re-ranking metrics of ARTIFACTS")
    parser.add_argument(
        "--artifacts", type=Path, help="also time ARTIFACTS/04_train/als.npz on its matrix"
    )
    a = parser.parse_args()
    if a.tradeoff:
        for row in tradeoff(a.tradeoff):
            print(json.dumps(row))
        return
    if a.method:
        _child(a)
        return
    load_at_start = os.getloadavg()
    scales = a.scale or ["100000x100000", "1000000x800000"]
    distributions = [d for d in a.items.split(",") if d]  # --items "": only --artifacts
    if a.artifacts:
        shape = load_matrix(a.artifacts, "split", "train_matrix.npz").shape
        distributions.append("trained")
    runs = []
    for scale, items in [(s, d) for s in scales for d in distributions if d != "trained"] + (
        [(f"{shape[0]}x{shape[1]}", "trained")] if a.artifacts else []
    ):
        timings: dict[str, list[dict]] = {m: [] for m in a.methods.split(",")}
        for _ in range(a.repeats):  # interleaved: A/B/A/B, each run its own process
            for method, done in timings.items():
                small = method in ("dense", "rerank", "similar", "similar_implicit")
                args = [sys.executable, __file__, "--method", method, "--scale", scale]
                args += ["--sample", str(a.small_sample if small else a.sample)]
                args += ["--n", str(a.n), "--candidates", str(a.candidates)]
                args += ["--similar-k", str(a.similar_k), "--factors", str(a.factors)]
                args += ["--block", str(a.block), "--seed", str(a.seed)]
                args += ["--hnsw-m", str(a.hnsw_m), "--hnsw-ef", str(a.hnsw_ef)]
                args += ["--artifacts", str(a.artifacts)] if items == "trained" else []
                args += ["--items", "gaussian" if items == "trained" else items]
                run = subprocess.run(args, capture_output=True, text=True, check=False)
                if run.returncode:
                    sys.exit(f"{method} {scale} {items} failed:\n{run.stderr}")
                done.append(json.loads(run.stdout.strip().splitlines()[-1]))
        for done in timings.values():
            median = sorted(done, key=lambda r: r["seconds"])[len(done) // 2]  # median run
            median |= {
                "repeats": a.repeats,
                **{  # each figure's median over the runs, not only the median run's
                    f"median_{key}": statistics.median(r[key] for r in done)
                    for key in TIMED
                    if key in median
                },
                "all_seconds": [r["seconds"] for r in done],
                "all_cpu_seconds": [r["cpu_seconds"] for r in done],
            }
            median |= _extrapolate(median, int(scale.split("x")[1]))
            print(json.dumps(median), flush=True)
            runs.append(median)
    by = {(r["scale"], r["items"], r["method"]): r for r in runs}
    ratios = {
        f"{s} {d} {ours} / {ref}": _ratios(by[s, d, ours], by[s, d, ref])
        for (s, d, m) in by
        for ours, ref in (("ours", "implicit"), ("similar", "similar_implicit"))
        if m == ours and (s, d, ref) in by
    }
    result = {
        "command": " ".join(sys.argv),
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "n": a.n,
        "factors": a.factors,
        "block": a.block,
        "target": {"users": TARGET_USERS, "tracks": TARGET_TRACKS, "minutes": 30, "gib": 8},
        "runs": runs,
        "times_faster_than_reference": ratios,  # ours/implicit, similar/similar_implicit
        "data": (
            "synthetic factors (gaussian: plain; skewed: item norms scaled as a trained model's)"
            + (f"; trained ALS from {a.artifacts}" if a.artifacts else "")
        ),
        "note": "medians of interleaved runs; extrapolated_* figures are computed from the "
        "timed sample, not measured.",
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")


def _ratios(ours: dict, ref: dict) -> dict:
    """How many times faster `ours` is than `ref` (> 1: faster), from medians over the runs: the
    headline pair (wall, CPU) covers the whole timed work, both sides writing the same table
    where they write one (ours/implicit); score_* is the scoring alone."""
    out = {
        "wall": round(ref["median_seconds"] / ours["median_seconds"], 3),
        "cpu": round(ref["median_cpu_seconds"] / ours["median_cpu_seconds"], 3),
    }
    if "median_score_seconds" in ours and "median_score_seconds" in ref:
        out["score_wall"] = round(ref["median_score_seconds"] / ours["median_score_seconds"], 3)
        out["score_cpu"] = round(
            ref["median_score_cpu_seconds"] / ours["median_score_cpu_seconds"], 3
        )
    return out


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
