"""musicrec's lists against implicit's out-of-box models, one metric, one split (issue 19).

Every model is fitted on musicrec's own train split and scored by binary NDCG@10 over the test
pairs (users with at least one test pair). implicit: popularity, ALS 64 and 128 factors on
log1p / raw / binary counts, BPR, item kNN cosine and BM25, all at implicit's defaults.
musicrec: every registry model at the defaults of musicrec.toml (lists as `predict` writes
them: one version per song, no heard song), then the best models tuned with `musicrec tune`'s
search (Optuna TPE on a validation split carved from train, never the test set) and refitted
on train with the best settings.

    python benchmarks/bench_vs_implicit.py default --artifacts artifacts
    python benchmarks/bench_vs_implicit.py default-user-random --seeds 0 1
    python benchmarks/bench_vs_implicit.py msd-taste --seeds 0 1

Results go to benchmarks/results/vs_implicit_<data>.json; runs of seeds not given are kept from
the file, so seeds can be run (and re-run) one at a time. Each run records its tuning budget,
minutes and machine load. `--rescore hybrid` refits only the named models at their defaults in
the recorded runs (after a change to them) and records when.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import polars as pl
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
from implicit.bpr import BayesianPersonalizedRanking
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
from implicit.utils import ParameterWarning
from threadpoolctl import threadpool_limits

from musicrec_cli import artifacts as art
from musicrec_cli.config import Config, FeaturesConfig, PathsConfig, TrainConfig
from musicrec_cli.runner.train import load_train_data
from musicrec_cli.runner.tune import Validation, load_validation, score_lists
from stages import features, split, tune
from stages.interactions import build_matrix
from stages.models import Recommender, registry
from stages.models.training import TrainingData
from stages.schema import (
    LAST_TS,
    PLAY_COUNT,
    PLAYED_AT,
    TRACK_GROUP_ID,
    TRACK_IDX,
    USER_IDX,
    WEIGHT,
)

ROOT = Path(__file__).resolve().parent.parent
MSD = ROOT.parent / "shared" / "real-formats" / "msd-taste" / "10000.txt"
K = 10
# trials per model (the tuning budget); the blend's components keep their tuned settings
TUNED = {"rp3beta": 40, "ease": 20, "als": 25, "blend": 20}


@dataclasses.dataclass
class Data:
    """Train (TrainingData), the test users and pairs, the validation carve and track groups."""

    train: TrainingData
    test: sp.csr_matrix
    users: np.ndarray
    validation: Validation


def _implicit_models() -> dict[str, Any]:
    with threadpool_limits(1, "blas"):
        return {
            **{
                f"implicit als {f} {c}": (AlternatingLeastSquares(factors=f, random_state=0), c)
                for f in (64, 128)
                for c in ("log", "raw", "binary")
            },
            "implicit bpr": (BayesianPersonalizedRanking(random_state=0), "binary"),
            "implicit knn cosine": (CosineRecommender(), "raw"),
            "implicit knn bm25": (BM25Recommender(), "raw"),
        }


def _scale(counts: sp.csr_matrix, how: str) -> sp.csr_matrix:
    out = counts.copy()
    out.data = {"raw": out.data, "log": np.log1p(out.data), "binary": np.ones_like(out.data)}[how]
    return sp.csr_matrix(out, dtype=np.float32)


def score_implicit(data: Data) -> dict[str, float]:
    """NDCG@10 of implicit's out-of-box models (already-heard tracks filtered, as it does)."""
    counts = data.train.counts()
    heard = counts[data.users]
    results = {}
    popularity = np.asarray((counts > 0).sum(axis=0)).ravel().astype(np.float32)
    ranked = np.argsort(-popularity, kind="stable")
    mask = np.asarray(heard[:, ranked].todense()) > 0
    order = np.argsort(mask, axis=1, kind="stable")[:, :K]
    results["implicit popularity"] = tune.ndcg_at_k(ranked[order], data.users, data.test, k=K)
    for name, (model, how) in _implicit_models().items():
        matrix = _scale(counts, how)
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            warnings.simplefilter("ignore", ParameterWarning)
            model.fit(matrix, show_progress=False)
            ids, _ = model.recommend(data.users, matrix[data.users], N=K)
        results[name] = tune.ndcg_at_k(np.asarray(ids, dtype=np.int64), data.users, data.test, k=K)
        print(f"  {name}: {results[name]:.4f}", flush=True)
    return results


def _lists_score(model: Recommender, data: Data) -> float:
    test_view = dataclasses.replace(
        data.validation, data=data.train, truth=data.test, users=data.users
    )
    return score_lists(model, test_view)


def score_musicrec(data: Data, settings: TrainConfig) -> dict[str, float]:
    """NDCG@10 of every registry model fitted with `settings` (components fitted once)."""
    fitted: dict[str, Recommender] = {}
    results = {}
    last = data.train.frame.select(LAST_TS).collect()[LAST_TS]
    timeless = last.null_count() == len(last)
    for name in registry.fit_order(registry.names()):
        if timeless and name == "trending":
            continue  # no play times: nothing to decay
        fitted[name] = registry.fit(name, data.train, settings, fitted)[0]
        results[f"musicrec {name}"] = _lists_score(fitted[name], data)
        print(f"  musicrec {name}: {results[f'musicrec {name}']:.4f}", flush=True)
    return results


def _search(
    model: str,
    v: Validation,
    settings: TrainConfig,
    fitted: dict[str, Recommender],
    *,
    seed: int,
    trials: int,
) -> tuple[dict[str, Any], optuna.Study]:
    """`musicrec tune`'s search of `model` on the validation carve (components in `fitted`)."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))

    def objective(trial: optuna.Trial) -> float:
        tried = dataclasses.replace(settings, **tune.suggest(model, trial))
        return score_lists(registry.fit(model, v.data, tried, fitted)[0], v)

    study.optimize(objective, n_trials=trials)
    return tune.suggest(model, optuna.trial.FixedTrial(study.best_trial.params)), study


def tune_and_score(
    data: Data, settings: TrainConfig, seed: int, budget: dict[str, int]
) -> dict[str, Any]:
    """Search each model of TUNED on the validation carve, refit the best on train, score.

    The blend's weights are searched last, over its components fitted with their tuned
    settings (as a user would: tune each, then `tune --model blend` with those settings).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = {}
    v = data.validation
    tuned = settings
    for model, trials in budget.items():
        start = time.perf_counter()
        fitted: dict[str, Recommender] = {}
        for name in registry.fit_order(registry.spec(model).needs):
            fitted[name] = registry.fit(name, v.data, tuned, fitted)[0]
        best, study = _search(model, v, tuned, fitted, seed=seed, trials=trials)
        tuned = dataclasses.replace(tuned, **best)
        on_train: dict[str, Recommender] = {}
        for name in registry.fit_order((model,)):
            on_train[name] = registry.fit(name, data.train, tuned, on_train)[0]
        out[f"musicrec {model} tuned"] = {
            "ndcg@10": _lists_score(on_train[model], data),
            "validation_ndcg@10": study.best_value,
            "trials": trials,
            "minutes": round((time.perf_counter() - start) / 60, 2),
            "settings": {k: list(x) if isinstance(x, tuple) else x for k, x in best.items()},
        }
        print(f"  {model} tuned: {out[f'musicrec {model} tuned']}", flush=True)
    return out


def default_data(root: Path) -> Data:
    """`make all`'s artifacts: 03_features train, 02_split test, validation carved from train."""
    cfg = Config(paths=PathsConfig(artifacts=str(root)))
    train = load_train_data(root)
    test = pl.read_parquet(art.stage_dir(root, "split") / art.TEST, columns=[USER_IDX, TRACK_IDX])
    return _assemble(train, test, load_validation(cfg))


def default_user_random(root: Path, seed: int) -> Data:
    """`make all`'s plays (01_preprocess) split user-random with `seed`, weighted as 03_features.

    Validation carved from train the same way; groups from items.parquet (one song per group).
    """
    plays = pl.scan_parquet(art.stage_dir(root, "preprocess") / art.PLAYS)
    items = pl.read_parquet(art.stage_dir(root, "preprocess") / art.ITEMS).sort(TRACK_IDX)
    n_users = pl.scan_parquet(art.stage_dir(root, "preprocess") / art.USERS).select(pl.len())
    shape = int(n_users.collect().item()), items.height
    params = split.SplitParams(strategy="user-random", seed=seed)
    outer = split.split_plays(plays, params=params)
    inner = split.split_plays(split.train_plays(plays, outer), params=params)
    audio = load_train_data(root).audio
    train = _features(outer.train.collect(), audio, *shape)
    truth, users = _truth(inner.test.collect(), shape)
    group = items[TRACK_GROUP_ID].rank("dense").to_numpy().astype(np.int64)
    validation = Validation(
        data=_features(inner.train.collect(), audio, *shape),
        truth=truth,
        users=users,
        group=group,
    )
    return _assemble(train, outer.test.collect().select(USER_IDX, TRACK_IDX), validation)


def _features(
    interactions: pl.DataFrame, audio: np.ndarray, n_users: int, n_tracks: int
) -> TrainingData:
    """03_features' confidence weights (log1p plays x recency before the newest play)."""
    f = FeaturesConfig()
    weighted = features.confidence_weights(
        interactions.lazy(),
        cutoff=interactions[LAST_TS].max(),  # type: ignore[arg-type]
        half_life_days=f.recency_half_life_days,
        recency_floor=f.recency_floor,
    ).collect()
    return TrainingData.build(weighted, audio, n_users=n_users, n_tracks=n_tracks)


def _truth(pairs: pl.DataFrame, shape: tuple[int, int]) -> tuple[sp.csr_matrix, np.ndarray]:
    """The relevant pairs as a CSR of ones, and the sorted users that have any."""
    ones = pairs.with_columns(pl.lit(1.0, pl.Float32).alias(WEIGHT))
    truth = build_matrix(ones, value=WEIGHT, n_users=shape[0], n_tracks=shape[1])
    return truth, np.unique(pairs[USER_IDX].to_numpy()).astype(np.int64)


def _assemble(train: TrainingData, test: pl.DataFrame, validation: Validation) -> Data:
    truth, users = _truth(test, train.weights.shape)
    return Data(train=train, test=truth, users=users, validation=validation)


def _msd_plays(path: Path) -> pl.DataFrame:
    """One row per play of the play-count table, users and songs with >= 5 / >= 3 (k-core)."""
    pairs = pl.read_csv(
        path, separator="\t", has_header=False, new_columns=["user", "song", "count"]
    )
    for _ in range(3):  # musicrec's preprocess defaults: min_user_tracks 5, min_track_users 3
        pairs = pairs.filter(pl.len().over("song") >= 3).filter(pl.len().over("user") >= 5)
    pairs = pairs.with_columns(
        pl.col("user").rank("dense").cast(pl.UInt32).sub(1).alias(USER_IDX),
        pl.col("song").rank("dense").cast(pl.UInt32).sub(1).alias(TRACK_IDX),
    )
    plays = pairs.select(USER_IDX, TRACK_IDX, pl.int_ranges(0, "count").alias("n")).explode("n")
    return plays.drop("n").with_columns(
        pl.lit(None, pl.Datetime("us", "UTC")).alias(PLAYED_AT),
        pl.lit(None, pl.Int64).alias("ms_played"),
        pl.lit(value=False).alias("skipped"),
    )


def _weighted(interactions: pl.DataFrame, n_users: int, n_tracks: int) -> TrainingData:
    """log1p(plays): musicrec's weight without the recency term (the log has no times)."""
    frame = interactions.with_columns(
        pl.col(PLAY_COUNT).cast(pl.Float64).log1p().cast(pl.Float32).alias(WEIGHT)
    )
    return TrainingData.build(frame, np.zeros((n_tracks, 0)), n_users=n_users, n_tracks=n_tracks)


def msd_data(path: Path, seed: int) -> Data:
    """msd-taste, user-random split with `seed`; validation carved from train the same way."""
    plays = _msd_plays(path)
    n_users, n_tracks = int(plays[USER_IDX].max()) + 1, int(plays[TRACK_IDX].max()) + 1
    params = split.SplitParams(strategy="user-random", seed=seed)
    outer = split.split_plays(plays.lazy(), params=params)
    inner = split.split_plays(split.train_plays(plays.lazy(), outer), params=params)
    train = _weighted(outer.train.collect(), n_users, n_tracks)
    inner_train = _weighted(inner.train.collect(), n_users, n_tracks)
    truth, users = _truth(inner.test.collect(), (n_users, n_tracks))
    group = np.arange(n_tracks, dtype=np.int64)  # the table has no versions of songs
    validation = Validation(data=inner_train, truth=truth, users=users, group=group)
    return _assemble(train, outer.test.collect().select(USER_IDX, TRACK_IDX), validation)


def run(data: Data, seed: int, budget: dict[str, int]) -> dict[str, Any]:
    """Every list's NDCG@10 plus the tuned models; the comparison the issue's targets ask."""
    n_users, n_tracks = data.train.weights.shape
    print(
        f"{n_users:,} users x {n_tracks:,} tracks, {data.train.weights.nnz:,} train pairs, "
        f"{data.test.nnz:,} test pairs of {len(data.users):,} users",
        flush=True,
    )
    settings = TrainConfig()
    start = time.perf_counter()
    results = {**score_implicit(data), **score_musicrec(data, settings)}
    tuned = tune_and_score(data, settings, seed, budget)
    return {
        "shape": {
            "users": n_users,
            "tracks": n_tracks,
            "train_pairs": int(data.train.weights.nnz),
            "test_pairs": int(data.test.nnz),
            "test_users": len(data.users),
        },
        **summary(results, tuned),
        "minutes": round((time.perf_counter() - start) / 60, 2),
    }


def summary(results: dict[str, float], tuned: dict[str, Any]) -> dict[str, Any]:
    """The lists sorted by NDCG@10, the tuned models, and the three bests the targets compare."""
    best_implicit = max((v, k) for k, v in results.items() if k.startswith("implicit"))
    best_default = max((v, k) for k, v in results.items() if k.startswith("musicrec"))
    best_tuned = max((v["ndcg@10"], k) for k, v in tuned.items())
    return {
        "ndcg@10": dict(sorted(results.items(), key=lambda kv: -kv[1])),
        "tuned": tuned,
        "best_implicit": {"model": best_implicit[1], "ndcg@10": best_implicit[0]},
        "best_musicrec_default": {
            "model": best_default[1],
            "ndcg@10": best_default[0],
            "ratio_to_implicit": best_default[0] / best_implicit[0],
        },
        "best_musicrec_tuned": {
            "model": best_tuned[1],
            "ndcg@10": best_tuned[0],
            "ratio_to_implicit": best_tuned[0] / best_implicit[0],
        },
    }


def rescore(data: Data, recorded: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """`recorded` with `models` refitted at today's defaults and scored again (after a change
    to their defaults or code); the other lists, the tuned models and the budget are kept."""
    shape = [*data.train.weights.shape, data.train.weights.nnz, data.test.nnz]
    was = recorded["shape"]
    if shape != [was["users"], was["tracks"], was["train_pairs"], was["test_pairs"]]:
        msg = f"rescore: the data is {shape} (users, tracks, train, test pairs), the run {was}"
        raise SystemExit(msg)
    settings = TrainConfig()
    fitted: dict[str, Recommender] = {}
    results = dict(recorded["ndcg@10"])
    for name in registry.fit_order(tuple(models)):
        fitted[name] = registry.fit(name, data.train, settings, fitted)[0]
        if name in models:
            results[f"musicrec {name}"] = _lists_score(fitted[name], data)
            print(f"  musicrec {name}: {results[f'musicrec {name}']:.4f}", flush=True)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = [round(x, 2) for x in os.getloadavg()]
    return {
        **recorded,
        **summary(results, recorded["tuned"]),
        "rescored": {
            **recorded.get("rescored", {}),
            **{m: {"at": when, "load": load} for m in models},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", choices=["default", "default-user-random", "msd-taste"])
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--trials-factor", type=float, default=1.0, help="scale every model's TUNED trials"
    )
    parser.add_argument(
        "--rescore",
        nargs="+",
        metavar="MODEL",
        help="refit only these musicrec models at their defaults in the recorded runs",
    )
    args = parser.parse_args()
    budget = {m: max(1, round(t * args.trials_factor)) for m, t in TUNED.items()}
    out = ROOT / "benchmarks" / "results" / f"vs_implicit_{args.data.replace('-', '_')}.json"
    # runs of other seeds recorded earlier are kept; each run carries its own budget and load
    report = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    runs = report.get("runs", {})
    for earlier in runs.values():  # files written before each run kept its own budget and load
        for field in ("tuning_budget_trials", "load_at_start", "load_at_end"):
            if field in report:
                earlier.setdefault(field, report[field])
    for key, seed, data in _datasets(args):
        print(f"{args.data}, {key}", flush=True)
        if args.rescore:
            runs[key] = rescore(data(), runs[key], args.rescore)
        else:
            load = os.getloadavg()
            result = run(data(), seed, budget)
            runs[key] = {
                "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "tuning_budget_trials": budget,
                "load_at_start": [round(x, 2) for x in load],
                "load_at_end": [round(x, 2) for x in os.getloadavg()],
                **result,
            }
        report = {
            "what": "binary NDCG@10 over the test pairs; implicit 0.7.3 at its defaults "
            "vs musicrec",
            "machine": f"{platform.machine()}, shared by several jobs (2 cores); one run per "
            "setting; each run records its tuning budget and load",
            "runs": dict(sorted(runs.items())),
        }
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"-> {out}", flush=True)


def _datasets(args: argparse.Namespace) -> list[tuple[str, int, Any]]:
    """(run key, seed, a function building its Data) for the data and seeds asked."""
    if args.data == "default":
        return [("temporal split of make all", 0, lambda: default_data(args.artifacts))]
    if args.data == "default-user-random":
        return [
            (f"user-random seed {s}", s, lambda s=s: default_user_random(args.artifacts, s))
            for s in args.seeds
        ]
    return [(f"user-random seed {s}", s, lambda s=s: msd_data(MSD, s)) for s in args.seeds]


if __name__ == "__main__":
    main()
