"""Time the evaluate stage on synthetic top-20 predictions, with ranx on a sample as the reference.

Usage: python benchmarks/bench_evaluate.py [N_USERS=1000000] [N_ITEMS=100000] [SAMPLE=20000]
                                           [REPEATS=3]

Builds N_USERS test users with top-20 lists, 1-10 test tracks each (about a third of them
recommended), 5 train tracks each and a catalogue with artists and 8 audio features; then times
(1) the ranking metrics alone (stages.evaluate.ranking.per_user_metrics + mean per model) and
(2) the whole evaluate computation of `musicrec evaluate` (ranking + beyond-accuracy metrics,
coverage, summary), at K = 5, 10, 20, with peak RSS. ranx computes the same six ranking metrics
on SAMPLE
users in the same run (numba compile excluded, dict conversion reported apart); the script checks
that the two agree there. Timings are medians of REPEATS runs on the same data.
Writes benchmarks/results/evaluate.json.
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from musicrec_cli.config import EvaluateConfig
from stages.evaluate import beyond as evaluate
from stages.evaluate import ranking as metrics
from stages.evaluate.results import compute
from stages.schema import AUDIO_FEATURES, MODEL, RANK, TRACK_IDX, USER_IDX

KS = (5, 10, 20)
TOP = 20
SEED = 42


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(n_users: int, n_items: int) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(SEED)
    # Zipf-like start track, then strictly increasing offsets: unique tracks within each list
    start = (rng.pareto(1.2, n_users) * 50).astype(np.int64) % n_items
    steps = rng.integers(1, 40, size=(n_users, TOP)).cumsum(axis=1)
    tracks = (start[:, None] + steps) % n_items
    users = np.repeat(np.arange(n_users, dtype=np.uint32), TOP)
    recs = pl.DataFrame(
        {
            USER_IDX: users,
            RANK: np.tile(np.arange(1, TOP + 1, dtype=np.uint16), n_users),
            TRACK_IDX: tracks.ravel().astype(np.uint32),
            MODEL: pl.Series(["als"], dtype=pl.String).gather(np.zeros(users.size, np.uint32)),
        }
    )
    n_test = rng.integers(1, 11, n_users)
    test_users = np.repeat(np.arange(n_users, dtype=np.uint32), n_test)
    from_list = rng.random(test_users.size) < 0.35
    picked = tracks[test_users, rng.integers(0, TOP, test_users.size)]
    other = rng.integers(0, n_items, test_users.size)
    test = pl.DataFrame(
        {USER_IDX: test_users, TRACK_IDX: np.where(from_list, picked, other).astype(np.uint32)}
    )
    train = pl.DataFrame(
        {
            USER_IDX: np.repeat(np.arange(n_users, dtype=np.uint32), 5),
            TRACK_IDX: ((rng.pareto(1.2, n_users * 5) * 50).astype(np.int64) % n_items).astype(
                np.uint32
            ),
        }
    )
    items = pl.DataFrame(
        {
            TRACK_IDX: np.arange(n_items, dtype=np.uint32),
            "artist_key": (np.arange(n_items) // 10).astype(str),
        }
        | {name: rng.random(n_items).astype(np.float32) for name in AUDIO_FEATURES}
    )
    return {"recs": recs, "test": test, "train": train, "items": items}


def time_ours(data: dict[str, pl.DataFrame], n_items: int) -> dict[str, float]:
    recs, test = data["recs"].lazy(), data["test"].lazy()
    t0 = time.perf_counter()
    per_user = metrics.per_user_metrics(recs, test, ks=KS).collect(engine="streaming")
    summary = per_user.group_by(MODEL).agg(pl.exclude(MODEL, USER_IDX).mean())
    ranking_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_train_users = data["train"][USER_IDX].n_unique()
    tracks = evaluate.track_table(
        data["items"].lazy(),
        data["train"].lazy(),
        artist="artist_key",
        audio=AUDIO_FEATURES,
        n_train_users=n_train_users,
    ).collect()
    _, full, content = compute(recs, test, tracks, e=EvaluateConfig(k=KS), n_tracks=n_items)
    full_s = time.perf_counter() - t0
    assert summary.height == full.height == 1
    return {
        "ranking_seconds": ranking_s,
        "evaluate_seconds": full_s,
        "n_users_evaluated": content["n_users_evaluated"],
        "ndcg@10": content["models"]["als"]["ndcg@10"],
    }


def _ranx_inputs(ranx: Any, data: dict[str, pl.DataFrame], sample: int) -> tuple[Any, ...]:
    """ranx Qrels and Run of the first `sample` users, plus our frames of the same users."""
    recs = data["recs"].filter(pl.col(USER_IDX) < sample)
    test = data["test"].filter(pl.col(USER_IDX) < sample).unique()
    qrels: dict[str, dict[str, int]] = {}
    for user, track in test.iter_rows():
        qrels.setdefault(str(user), {})[str(track)] = 1
    run: dict[str, dict[str, float]] = {}
    for user, rank, track, _ in recs.iter_rows():
        run.setdefault(str(user), {})[str(track)] = 1.0 / rank
    return ranx.Qrels.from_dict(qrels), ranx.Run.from_dict(run), recs, test


def time_ranx(data: dict[str, pl.DataFrame], sample: int, *, repeats: int) -> dict[str, float]:
    from numba.core.errors import NumbaTypeSafetyWarning

    warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    import ranx

    names = [f"{m}@{k}" for m in metrics.METRICS for k in KS]
    t0 = time.perf_counter()
    # numba compiles on first use: warm up on 100 users
    ranx.evaluate(*_ranx_inputs(ranx, data, 100)[:2], names, return_mean=False)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    q, r, recs, test = _ranx_inputs(ranx, data, sample)
    convert_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        # not saving per-user scores into the Run: that is a Python loop over a numba typed dict
        got = ranx.evaluate(q, r, names, return_mean=False, save_results_in_run=False)
        times.append(time.perf_counter() - t0)
    evaluate_s = statistics.median(times)
    position = {u: i for i, u in enumerate(r.get_query_ids())}
    ours = metrics.per_user_metrics(recs.lazy(), test.lazy(), ks=KS).collect()
    order = np.array([position[str(u)] for u in ours[USER_IDX]])
    n_rel = ours[metrics.N_RELEVANT].to_numpy()
    worst = 0.0
    for name in names:
        ref = np.asarray(got[name])[order]
        mine = ours[name].to_numpy()
        if name.startswith("map@"):  # ranx divides AP@k by |R|, we by min(|R|, k)
            k = int(name.split("@")[1])
            mine = mine * np.minimum(n_rel, k) / n_rel
        worst = max(worst, float(np.abs(ref - mine).max()))
    return {
        "compile_seconds": compile_s,
        "convert_seconds": convert_s,
        "evaluate_seconds": evaluate_s,
        "max_abs_diff_vs_ours": worst,
    }


def main() -> None:
    n_users = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n_items = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    sample = min(int(sys.argv[3]) if len(sys.argv) > 3 else 20_000, n_users)
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    t0 = time.perf_counter()
    data = synthetic(n_users, n_items)
    gen_s, rss_data = time.perf_counter() - t0, peak_rss_mb()
    runs = [time_ours(data, n_items) for _ in range(repeats)]
    ours = runs[0] | {
        key: statistics.median(run[key] for run in runs)
        for key in ("ranking_seconds", "evaluate_seconds")
    }
    rss_ours = peak_rss_mb()
    ref = time_ranx(data, sample, repeats=repeats)
    ranx_ups = sample / ref["evaluate_seconds"]
    result = {
        "n_users": n_users,
        "n_items": n_items,
        "top": TOP,
        "ks": list(KS),
        "n_test_pairs": data["test"].height,
        "repeats": repeats,
        "timings": "medians of `repeats` runs",
        "generate_seconds": round(gen_s, 2),
        "ours": {
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in ours.items()},
            "ranking_users_per_second": round(n_users / ours["ranking_seconds"]),
            "evaluate_users_per_second": round(n_users / ours["evaluate_seconds"]),
            "peak_rss_mb_after_data": round(rss_data),
            "peak_rss_mb": round(rss_ours),
        },
        "ranx": {
            "sample_users": sample,
            **{k: round(v, 3) if k != "max_abs_diff_vs_ours" else v for k, v in ref.items()},
            "users_per_second": round(ranx_ups),
            "users_per_second_with_conversion": round(
                sample / (ref["evaluate_seconds"] + ref["convert_seconds"])
            ),
        },
        "ratio_ranking_ours_over_ranx_users_per_second": round(
            n_users / ours["ranking_seconds"] / ranx_ups, 2
        ),
        "machine": f"{platform.machine()}, polars {pl.__version__}, numpy {np.__version__}",
    }
    out = Path(__file__).parent / "results" / "evaluate.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
