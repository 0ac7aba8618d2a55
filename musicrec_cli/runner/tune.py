"""Run `musicrec tune`: search one model's settings on a validation split carved from train.

The validation split applies the test split's own protocol ([split] and the strategy 02_split
resolved) to the plays behind the training pairs; the test set is never read. Trials go to an
Optuna journal in artifacts/04_train/tuning/ (plain JSON lines, no pickled objects), so a killed
search resumes where it stopped; `train` keeps that folder when it replaces 04_train.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import optuna
import polars as pl
import scipy.sparse as sp
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, scan, stage_dir
from musicrec_cli.config import Config, ConfigError, toml_value
from musicrec_cli.console import progress
from musicrec_cli.runner.train import load_train_data
from stages import features, predict, songs, split, tune
from stages.interactions import build_matrix
from stages.models import Recommender, registry
from stages.models.training import TrainingData
from stages.schema import LAST_TS, TRACK_GROUP_ID, TRACK_ID, TRACK_IDX, USER_IDX, WEIGHT

log = logging.getLogger(__name__)
TUNING = "tuning"
K = 10
BLOCK = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Validation:
    """Inner training data, the validation pairs as a CSR, its users and the track groups."""

    data: TrainingData
    truth: sp.csr_matrix
    users: np.ndarray[Any, np.dtype[np.int64]]
    group: np.ndarray[Any, np.dtype[np.int64]]


def tuning_dir(root: Path) -> Path:
    """artifacts/04_train/tuning."""
    return stage_dir(root, "train") / TUNING


def load_validation(cfg: Config) -> Validation:
    """Carve train (02_split) into inner-train and validation by the split's own strategy."""
    root = Path(cfg.paths.artifacts)
    summary = require_stage(root, "split")["summary"]
    n_users, n_tracks = summary["n_users"], summary["n_tracks"]
    outer = split.Split(
        train=scan(root, "split", art.TRAIN),
        test=pl.LazyFrame(),
        replay=pl.LazyFrame(),
        cutoff=None,
    )
    plays = split.train_plays(scan(root, "preprocess", art.PLAYS), outer)
    inner = split.split_plays(plays, params=split.SplitParams.of(cfg.split, summary["strategy"]))
    train, valid = inner.train.collect(), inner.test.collect()
    if valid.height == 0:
        msg = (
            f"{stage_dir(root, 'split') / art.TRAIN}: the validation split carved from train "
            f"({summary['strategy']}) is empty; raise [split].test_fraction."
        )
        raise ConfigError(msg)
    cutoff = inner.cutoff or cast("dt.datetime", train[LAST_TS].max())
    f = cfg.features
    weighted = features.confidence_weights(
        train.lazy(),
        cutoff=cutoff,
        half_life_days=f.recency_half_life_days,
        recency_floor=f.recency_floor,
    ).collect()
    data = TrainingData.build(
        weighted, load_train_data(root).audio, n_users=n_users, n_tracks=n_tracks
    )
    truth = build_matrix(
        valid.with_columns(pl.lit(1.0, pl.Float32).alias(WEIGHT)),
        value=WEIGHT,
        n_users=n_users,
        n_tracks=n_tracks,
    )
    items = scan(root, "preprocess", art.ITEMS).sort(TRACK_IDX).collect()
    group_col = TRACK_GROUP_ID if TRACK_GROUP_ID in items.columns else TRACK_ID
    group = items[group_col].cast(pl.String).fill_null(items[TRACK_ID]).rank("dense")
    return Validation(
        data=data,
        truth=truth,
        users=np.unique(valid[USER_IDX].to_numpy()).astype(np.int64),
        group=group.to_numpy().astype(np.int64),
    )


def score_lists(model: Recommender, v: Validation) -> float:
    """Binary NDCG@10 of the model's lists (one version per song, heard songs left out).

    Users are scored from their play counts, as `predict` scores them (02_split's train matrix;
    the item models were fitted on the confidence weights).
    """
    rank = predict.scorer(model)
    counts = v.data.counts()
    parts = []
    for start in range(0, len(v.users), BLOCK):
        block = v.users[start : start + BLOCK]
        heard = counts[block]

        def fetch(rows: npt.NDArray[np.int64], k: int) -> songs.Candidates:
            return rank(block[rows], heard[rows], k)  # noqa: B023 (used within the iteration)

        idx, _ = songs.plain_lists(
            fetch, len(block), v.group, n=K, heard=songs.heard_groups(heard, v.group)
        )
        parts.append(idx)
    return tune.ndcg_at_k(np.concatenate(parts), v.users, v.truth, k=K)


def _storage(folder: Path) -> JournalStorage:
    folder.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(folder / "journal.log")))


def run_tune(cfg: Config, *, model: str, trials: int, time_limit: float | None) -> str:
    """Search `model`'s settings; write tuning/<model>_trials.parquet and <model>_best.toml."""
    if model not in tune.SPACES:
        msg = f"--model {model!r}: nothing to tune; tunable: {', '.join(tune.SPACES)}."
        raise ConfigError(msg)
    root = Path(cfg.paths.artifacts)
    folder = tuning_dir(root)
    v = load_validation(cfg)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(folder)
    previous = [
        len(storage.get_all_trials(s._study_id))
        for s in storage.get_all_studies()
        if s.study_name == model
    ]
    # a resumed search continues the sampler's stream instead of replaying its first proposals
    sampler = optuna.samplers.TPESampler(seed=cfg.train.seed + sum(previous))
    study = optuna.create_study(
        study_name=model,
        storage=storage,
        direction="maximize",
        sampler=sampler,
        load_if_exists=True,
    )
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    fitted = _components(model, v.data, cfg)

    def objective(trial: optuna.Trial) -> float:
        settings = dataclasses.replace(cfg.train, **tune.suggest(model, trial))
        fitted_model, _ = registry.fit(model, v.data, settings, fitted)
        return score_lists(fitted_model, v)

    start = time.monotonic()
    with progress(f"tune {model}", max(trials - done, 0)) as step:
        study.optimize(
            objective,
            n_trials=max(trials - done, 0),
            timeout=time_limit,
            callbacks=[lambda *_: step()],
        )
    return _write_results(study, model, folder, v, elapsed=time.monotonic() - start)


def _components(model: str, data: TrainingData, cfg: Config) -> dict[str, Recommender]:
    """The models `model` blends, fitted once with the current settings (their weights vary)."""
    fitted: dict[str, Recommender] = {}
    for name in registry.fit_order(registry.spec(model).needs):
        fitted[name] = registry.fit(name, data, cfg.train, fitted)[0]
    return fitted


def best_settings(study: optuna.Study, model: str) -> dict[str, Any]:
    """The `[train]` settings of the best trial (replayed through the model's search space)."""
    fixed = optuna.trial.FixedTrial(study.best_trial.params)
    return tune.suggest(model, fixed)


def _write_results(
    study: optuna.Study, model: str, folder: Path, v: Validation, *, elapsed: float
) -> str:
    frame = tune.trials_frame(study)
    complete = frame.filter(pl.col("state") == "COMPLETE")
    if complete.height == 0:
        msg = f"tune {model}: no trial finished; raise --trials or --time-limit."
        raise ConfigError(msg)
    frame.write_parquet(folder / f"{model}_trials.parquet")
    best = best_settings(study, model)
    importance = optuna.importance.get_param_importances(study) if complete.height >= 3 else {}
    lines = [
        f"# best of {complete.height} trials for {model}: validation ndcg@{K} "
        f"{study.best_value:.4f} (trial {study.best_trial.number})",
        "# use: musicrec train --tuned " + str(folder / f"{model}_best.toml"),
        "[train]",
        *(f"{key} = {toml_value(value)}" for key, value in best.items()),
    ]
    (folder / f"{model}_best.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = {
        "model": model,
        "metric": f"ndcg@{K} (binary, validation carved from train)",
        "validation_users": len(v.users),
        "trials": complete.height,
        "best_value": study.best_value,
        "best_trial": study.best_trial.number,
        "best_settings": {k: list(x) if isinstance(x, tuple) else x for k, x in best.items()},
        "importance": importance,
        "seconds_this_run": round(elapsed, 1),
    }
    (folder / f"{model}_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    top = ", ".join(f"{k} {w:.2f}" for k, w in list(importance.items())[:3]) or "n/a"
    return (
        f"{model}: best ndcg@{K} {study.best_value:.4f} after {complete.height} trials "
        f"({elapsed:.0f} s this run); most influential: {top} -> {folder}"
    )
