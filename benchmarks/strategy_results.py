"""Per-strategy results of every model, with 95% intervals, on a play-count table (no timestamps).

Usage: python benchmarks/strategy_results.py [TRIPLETS] [--out benchmarks/results/...]

TRIPLETS defaults to ../shared/real-formats/msd-taste/10000.txt (user, song, play count; tab
separated, no header), read in place with Polars. Until preprocess reads count tables (issue 17),
this script does what the stages would: counts are expanded to one play row each (null
timestamps), ids are encoded, and for each strategy that runs without timestamps (user-random,
held-out-users) it splits with `stages.split`, weights with `stages.features`, fits every model
through the registry, takes each test user's top 50 unheard tracks, and scores them with
`stages.evaluate` (ranking metrics, then every model vs popularity: Wilcoxon + Holm and the
bootstrap interval of the NDCG@10 difference), timing the comparisons.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl

from musicrec_cli.config import TrainConfig
from stages import features, split
from stages.evaluate import coldstart, compare, ranking
from stages.interactions import build_matrix
from stages.models import registry
from stages.models.training import TrainingData
from stages.schema import MODEL, PLAY_COUNT, PLAYED_AT, PLAYS, TRACK_IDX, USER_IDX

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "real-formats" / "msd-taste" / "10000.txt"
MODELS = ("popularity", "als", "bpr", "knn", "ease", "rp3beta")
K, N = 10, 50


def read_triplets(path: Path) -> tuple[pl.DataFrame, int, int]:
    """One PLAYS row per play (counts expanded, played_at null), and the vocabulary sizes."""
    raw = pl.read_csv(path, separator="\t", has_header=False, new_columns=["user", "song", "count"])
    users = raw.select(pl.col("user").unique().sort()).with_row_index(USER_IDX)
    songs = raw.select(pl.col("song").unique().sort()).with_row_index(TRACK_IDX)
    plays = (
        raw.join(users, on="user")
        .join(songs, on="song")
        .select(USER_IDX, TRACK_IDX, pl.int_ranges(0, "count").alias("_n"))
        .explode("_n")
        .select(
            pl.col(USER_IDX).cast(pl.UInt32),
            pl.col(TRACK_IDX).cast(pl.UInt32),
            pl.lit(None, PLAYS[PLAYED_AT]).alias(PLAYED_AT),
            pl.lit(None, pl.Int64).alias("ms_played"),
            pl.lit(value=False).alias("skipped"),
        )
    )
    return plays, users.height, songs.height


def run(plays: pl.DataFrame, n_users: int, n_tracks: int, strategy: str) -> dict[str, object]:
    """Split, fit, recommend and evaluate one strategy; NDCG@10 per model with its interval."""
    parts = split.split_plays(plays.lazy(), params=split.SplitParams(strategy=strategy))  # type: ignore[arg-type]
    weighted = features.confidence_weights(
        parts.train, cutoff=None, half_life_days=90.0, recency_floor=0.5
    ).collect()
    data = TrainingData.build(weighted, np.empty((n_tracks, 0)), n_users=n_users, n_tracks=n_tracks)
    counts = build_matrix(weighted, value=PLAY_COUNT, n_users=n_users, n_tracks=n_tracks)
    test = parts.test.collect()
    users = test[USER_IDX].unique().sort().to_numpy().astype(np.int64)
    settings, fitted, lists = TrainConfig(), {}, []
    start = time.perf_counter()
    for name in registry.fit_order(MODELS):
        fitted[name], _ = registry.fit(name, data, settings, fitted)
    fit_seconds = time.perf_counter() - start
    for name in MODELS:
        scores = fitted[name].score(users, counts[users])
        best = coldstart.top_k(scores, counts[users], k=N)
        lists.append(coldstart._frame(name, users, best))  # noqa: SLF001 (same frame layout)
    per_user = ranking.per_user_metrics(pl.concat(lists).lazy(), test.lazy(), ks=(K,)).collect()
    start = time.perf_counter()
    tests = compare.compare_models(per_user, metrics=[f"ndcg@{K}"], baseline="popularity")
    compare_seconds = time.perf_counter() - start
    means = per_user.group_by(MODEL).agg(pl.col(f"ndcg@{K}", f"recall@{K}").mean())
    out: dict[str, object] = {
        "n_train_pairs": weighted.height,
        "n_test_pairs": test.height,
        "n_test_users": len(users),
        "fit_seconds": round(fit_seconds, 1),
        "comparison_seconds": round(compare_seconds, 3),
    }
    for row in means.sort(f"ndcg@{K}", descending=True).to_dicts():
        vs = tests.filter(pl.col("model") == row[MODEL], pl.col("role") == "baseline")
        out[row[MODEL]] = {
            f"ndcg@{K}": row[f"ndcg@{K}"],
            f"recall@{K}": row[f"recall@{K}"],
            **(
                {}
                if vs.height == 0
                else {
                    "vs_popularity": vs.select(
                        "mean_difference", "ci_low", "ci_high", "p_holm"
                    ).row(0, named=True)
                }
            ),
        }
    return out


def main() -> None:
    """Run both strategies and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("triplets", type=Path, nargs="?", default=DEFAULT)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/strategies_msd_taste.json"
    )
    args = parser.parse_args()
    plays, n_users, n_tracks = read_triplets(args.triplets)
    result: dict[str, object] = {"source": args.triplets.name, "plays": plays.height, "k": K}
    for strategy in ("user-random", "held-out-users"):
        result[strategy] = run(plays, n_users, n_tracks, strategy)
        print(strategy, json.dumps(result[strategy], indent=1))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
