"""Hyper-parameter search spaces and the validation objective of `musicrec tune`.

Optuna (TPE) proposes settings; each model's space below names the `[train]` keys it varies, so
a trial is a set of `--set train.<key>=<value>` overrides and the best one is written as a
`[train]` table that `train` reads. The objective is binary NDCG@k of the model's lists on a
validation split carved from train by the same protocol as the test split (never the test set).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

if TYPE_CHECKING:  # optuna is imported by the runner only: `musicrec --help` stays fast
    import optuna
    from optuna.trial import BaseTrial

Settings = dict[str, Any]


def _als(trial: BaseTrial) -> Settings:
    out: Settings = {
        "factors": trial.suggest_int("factors", 16, 256, log=True),
        "regularization": trial.suggest_float("regularization", 1e-3, 10.0, log=True),
        "alpha": trial.suggest_float("alpha", 0.5, 100.0, log=True),
        "iterations": trial.suggest_int("iterations", 5, 30),
        "confidence": trial.suggest_categorical("confidence", ["log", "bm25", "binary", "raw"]),
    }
    if out["confidence"] == "bm25":
        out["bm25_k1"] = trial.suggest_float("bm25_k1", 0.5, 500.0, log=True)
        out["bm25_b"] = trial.suggest_float("bm25_b", 0.0, 1.0)
    return out


def _bpr(trial: BaseTrial) -> Settings:
    return {
        "bpr_factors": trial.suggest_int("bpr_factors", 16, 256, log=True),
        "bpr_learning_rate": trial.suggest_float("bpr_learning_rate", 1e-3, 0.2, log=True),
        "bpr_regularization": trial.suggest_float("bpr_regularization", 1e-4, 0.1, log=True),
        "bpr_iterations": trial.suggest_int("bpr_iterations", 20, 300, log=True),
    }


def _knn(trial: BaseTrial) -> Settings:
    return {
        "knn_similarity": trial.suggest_categorical("knn_similarity", ["cosine", "bm25"]),
        "knn_neighbours": trial.suggest_int("knn_neighbours", 5, 500, log=True),
    }


def _rp3beta(trial: BaseTrial) -> Settings:
    return {
        "rp3beta_alpha": trial.suggest_float("rp3beta_alpha", 0.1, 2.0),
        "rp3beta_beta": trial.suggest_float("rp3beta_beta", 0.0, 1.0),
        "rp3beta_neighbours": trial.suggest_int("rp3beta_neighbours", 5, 500, log=True),
    }


def _ease(trial: BaseTrial) -> Settings:
    return {"ease_regularization": trial.suggest_float("ease_regularization", 1.0, 1e4, log=True)}


def _trending(trial: BaseTrial) -> Settings:
    return {"trending_half_life_days": trial.suggest_float("trending_half_life_days", 1.0, 365.0)}


def _hybrid(trial: BaseTrial) -> Settings:
    parts = ("als", "content", "pop", "rp3beta")
    warm = [trial.suggest_float(f"hybrid_warm_{p}", 0.0, 1.0) for p in parts]
    if sum(warm) == 0:
        warm[0] = 1.0
    # the hybrid uses the set of its catalogue (with or without audio); tune whichever applies
    return {"hybrid_warm": tuple(warm), "hybrid_warm_no_audio": tuple(warm)}


def _blend(trial: BaseTrial) -> Settings:
    weights = [trial.suggest_float(f"blend_{m}", 0.0, 1.0) for m in ("ease", "rp3beta", "als")]
    if sum(weights) == 0:
        weights[0] = 1.0
    return {"blend_weights": tuple(weights)}


SPACES: dict[str, Callable[[BaseTrial], Settings]] = {
    "als": _als,
    "bpr": _bpr,
    "knn": _knn,
    "rp3beta": _rp3beta,
    "ease": _ease,
    "trending": _trending,
    "hybrid": _hybrid,
    "blend": _blend,
}


def suggest(model: str, trial: BaseTrial) -> Settings:
    """The `[train]` settings trial `trial` proposes for `model` (a key of SPACES)."""
    return SPACES[model](trial)


def ndcg_at_k(
    idx: npt.NDArray[np.int64], users: npt.NDArray[np.int64], truth: sp.csr_matrix, *, k: int
) -> float:
    """Mean binary NDCG@k over the users that have relevant tracks.

    Args:
        idx: (len(users), >= k) int64 ranked track indexes, -1 padding.
        users: (b,) user_idx of each row.
        truth: (n_users, n_items) CSR; non-zeros are the relevant (user, track) pairs.
        k: Cut-off.

    Returns:
        The mean over rows whose user has at least one relevant track (0.0 if none has).
    """
    rows = sp.csr_matrix(truth[users])
    n_rel = np.diff(rows.indptr)
    has = n_rel > 0
    if not has.any():
        return 0.0
    top = idx[:, :k]
    width = np.int64(truth.shape[1])
    relevant = np.repeat(np.arange(len(users), dtype=np.int64), n_rel) * width + rows.indices
    listed = np.arange(len(users), dtype=np.int64)[:, None] * width + top
    hit = np.isin(listed, relevant) & (top >= 0)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hit * discount[: top.shape[1]]).sum(axis=1)
    ideal = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    return float((dcg[has] / ideal[has]).mean())


def trials_frame(study: optuna.Study) -> pl.DataFrame:
    """One row per trial: number, state, value, best_so_far, seconds and each parameter."""
    trials = study.get_trials(deepcopy=False)
    names = sorted({p for t in trials for p in t.params})
    values = [t.value if t.value is not None else float("nan") for t in trials]
    best = np.fmax.accumulate(np.asarray(values, dtype=np.float64))
    return pl.DataFrame(
        {
            "number": pl.Series([t.number for t in trials], dtype=pl.UInt32),
            "state": [t.state.name for t in trials],
            "value": pl.Series(values, dtype=pl.Float64),
            "best_so_far": pl.Series(best, dtype=pl.Float64),
            "seconds": pl.Series(
                [t.duration.total_seconds() if t.duration else None for t in trials],
                dtype=pl.Float64,
            ),
            **{n: _column([t.params.get(n) for t in trials]) for n in names},
        }
    )


def _column(values: list[Any]) -> pl.Series:
    """Numbers as Float64, choices as String (a parameter absent from a trial is null)."""
    if all(v is None or isinstance(v, int | float) for v in values):
        return pl.Series(values, dtype=pl.Float64)
    return pl.Series([None if v is None else str(v) for v in values], dtype=pl.String)
