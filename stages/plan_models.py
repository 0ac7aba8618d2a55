"""The train and predict stages' costs, model by model, for `stages.plan`.

A fitted model keeps its arrays (what its NPZ holds) until the stage ends, and needs working
memory while it fits; train's peak is the training data, every model's arrays and the largest
working set. Predict holds the train matrix, every model's arrays, the catalogue and the
working set of the model being scored. Array layouts are read off `stages/models/`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stages import plan_costs as c
from stages.evaluate.beyond import BEYOND_ROWS
from stages.models.ease import ease_bytes
from stages.models.registry import fit_order

if TYPE_CHECKING:
    from stages.plan import PlanSettings, Sizes

F32 = 4
AUDIO_DIMS = 8
# RP3beta: entries of one block's product held at once (stages.models.rp3beta._BLOCK_ENTRIES),
# about 16 bytes each as COO; and (measured) its working bytes per training pair besides the
# block: fitted on benchmarks/results/rp3beta_scale.json's fits at 10M and 100M events (0.47
# and 2.37 GiB over the input; 2 x 8, the code's two CSRs, was 2.4x under at 100M). The 100M
# fit ran the code before rp3beta_walk's rewrite; at 10M both codes peaked alike (0.52, 0.55)
RP3_BLOCK_ENTRIES = 1 << 24
RP3_PER_PAIR = 52
FACTOR_MODELS = frozenset({"als", "bpr"})
SHARED_MODELS = frozenset({"popularity", "trending"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCost:
    """One model: bytes of its arrays, working bytes of its fit, fit seconds, refusal."""

    arrays: float
    fit: float
    seconds: float
    refused: str = ""


def model_cost(name: str, z: Sizes, s: PlanSettings) -> ModelCost:
    """What fitting `name` costs on `z` (an unknown model: a vector per track, like popularity)."""
    t, u, i = z.train_pairs, z.users, z.tracks
    sec = c.SECONDS
    factor_rows = (u + i) * F32
    if name == "als":
        return ModelCost(
            arrays=factor_rows * s.factors,
            fit=t * c.ALS_PER_PAIR,
            seconds=s.iterations * t * s.factors * sec["als_pair_factor_iter"],
        )
    if name == "bpr":
        return ModelCost(
            arrays=factor_rows * (s.bpr_factors + 1),
            fit=t * 2 * c.CSR_PER_PAIR,
            seconds=s.bpr_iterations * t * sec["bpr_pair_iter"],
        )
    if name in ("knn", "rp3beta"):
        k = min(s.knn_neighbours if name == "knn" else s.rp3beta_neighbours, i)
        # RP3beta's product block: at most 2^24 entries, fewer when the whole product is
        # smaller (about sum over users of their tracks squared, ~ t^2 / u, at most i^2)
        entries = min(RP3_BLOCK_ENTRIES, t * t / max(u, 1), i * i)
        if name == "rp3beta":
            working = t * RP3_PER_PAIR + entries * 16
        else:
            working = t * 2 * c.CSR_PER_PAIR + i * 8 * s.threads
        return ModelCost(
            arrays=i * k * c.CSR_PER_PAIR,
            fit=working + 1.5 * i * k * 12,
            seconds=t * sec[f"{name}_pair"],
        )
    if name == "ease":
        need = ease_bytes(i)
        limit = s.ease_max_gib * 2**30
        refused = (
            f"EASE on {i:,} tracks needs {need / 2**30:,.1f} GiB ({need / 1e12:.1f} TB) for its "
            f"dense matrices, above [train].ease_max_gib = {s.ease_max_gib:g}: train refuses it; "
            "use rp3beta or knn for this catalogue."
            if need > limit
            else ""
        )
        return ModelCost(
            arrays=0 if refused else need,
            fit=0 if refused else t * 2 * c.CSR_PER_PAIR,
            seconds=0 if refused else float(i) ** 3 * sec["ease_cubed"],
            refused=refused,
        )
    if name == "content":
        return ModelCost(arrays=i * AUDIO_DIMS * F32, fit=i * AUDIO_DIMS * 8 * 3, seconds=0.1)
    if name == "hybrid":  # refers to the fitted als, content, popularity and rp3beta
        return ModelCost(arrays=0, fit=i * 8, seconds=0.1)
    if name == "trending":
        return ModelCost(arrays=i * F32, fit=t * 16, seconds=t * 2e-8)
    return ModelCost(arrays=i * F32, fit=i * 8, seconds=t * 1e-8)


def _saved_bytes(name: str, z: Sizes, s: PlanSettings) -> float:
    """Bytes of `name`'s NPZ (the hybrid saves copies of its components' arrays)."""
    if name == "hybrid":
        return sum(model_cost(m, z, s).arrays for m in ("als", "content", "popularity", "rp3beta"))
    return model_cost(name, z, s).arrays


def train(z: Sizes, s: PlanSettings) -> c.Estimate:
    """Training data, the arrays of every fitted model and the largest fit's working set."""
    order = fit_order(s.models)
    fitted = {m: model_cost(m, z, s) for m in order}
    refused = "; ".join(f.refused for f in fitted.values() if f.refused)
    biggest = max(order, key=lambda m: fitted[m].fit)
    memory = {
        "train pairs: CSR of weights": z.train_pairs * c.TRAIN_DATA_PER_PAIR,
        "models' arrays (" + ", ".join(order) + ")": sum(f.arrays for f in fitted.values()),
        f"{biggest} fit working set": fitted[biggest].fit,
    }
    parts = []
    if "als" in order:
        parts.append(f"ALS {s.factors} factors x {s.iterations} iterations")
    if "rp3beta" in order:
        blocks = math.ceil(z.train_pairs * 40 / (1 << 24))
        parts.append(f"RP3beta ~{blocks} block(s) of <= 16.8M entries")
    if "ease" in order and not fitted["ease"].refused:
        parts.append(f"EASE Gram matrix in column blocks of 2048 of {z.tracks:,}")
    return c.Estimate(
        memory=memory,
        disk=sum(_saved_bytes(m, z, s) for m in s.models),
        scratch=0,
        seconds=c.SECONDS["start"]
        + z.train_pairs * c.SECONDS["train_load_pair"]
        + sum(f.seconds for f in fitted.values()),
        batches=tuple(parts) or ("one pass",),
        refused=refused,
    )


def _scoring_bytes(name: str, z: Sizes, s: PlanSettings) -> float:
    """Working memory of scoring one block of users with `name`."""
    if name in SHARED_MODELS:
        return s.block_size * z.tracks
    if name in FACTOR_MODELS:  # one reused (256, n_items) score buffer per thread
        return s.threads * min(c.SCORE_ROWS, s.block_size) * z.tracks * F32
    return min(c.DENSE_BYTES * (2 if name == "hybrid" else 1), 3 * s.block_size * z.tracks * F32)


def predict(z: Sizes, s: PlanSettings) -> c.Estimate:
    """Train matrix, models, catalogue, one block's scores and lists."""
    models = [m for m in s.models if not model_cost(m, z, s).refused]
    lists = n_lists(z, s)
    n = min(s.n, z.tracks)
    worst = max(models, key=lambda m: _scoring_bytes(m, z, s), default="")
    memory = {
        "train matrix (CSR)": z.train_pairs * c.CSR_PER_PAIR + z.users * F32,
        "models' arrays": sum(_saved_bytes(m, z, s) for m in models),
        "catalogue and user ids": z.tracks * c.CATALOG_PER_TRACK + z.users * c.CATALOG_PER_USER,
        f"{worst} scores of one block": _scoring_bytes(worst, z, s) if worst else 0,
        "one block's lists": s.block_size * n * max(s.candidates, 1) * lists * c.ROW_BYTES,
    }
    similar = z.tracks * min(s.similar_k, z.tracks - 1) if FACTOR_MODELS & set(models) else 0
    per_list = {
        m: (2e-5 if m in SHARED_MODELS else c.SECONDS["predict_user_list"])
        + (0 if m in SHARED_MODELS | FACTOR_MODELS else z.tracks * 2e-9)
        for m in models
    }
    seconds = z.users * (
        sum(per_list.values()) + sum(per_list[m] for m in s.rerank_models if m in per_list)
    )
    n_blocks = math.ceil(z.users / s.block_size)
    return c.Estimate(
        memory=memory,
        disk=prediction_rows(z, s) * c.DISK_PREDICTION + similar * c.DISK_SIMILAR,
        scratch=0,
        seconds=c.SECONDS["start"] + seconds + similar * 1e-6,
        batches=(f"{n_blocks:,} block(s) of {s.block_size} users x {lists} list(s) of {n}",),
    )


def prediction_rows(z: Sizes, s: PlanSettings) -> int:
    """Rows of predictions.parquet: every user x n per list."""
    return z.users * min(s.n, z.tracks) * n_lists(z, s)


def n_lists(z: Sizes, s: PlanSettings) -> int:
    """Lists per user: every model train does not refuse, and each re-ranked one."""
    models = [m for m in s.models if not model_cost(m, z, s).refused]
    return len(models) + sum(m in models for m in s.rerank_models)


def evaluate(z: Sizes, s: PlanSettings) -> c.Estimate:
    """Predictions and test pairs in memory, ranks and hits per user."""
    rows = prediction_rows(z, s)
    lists = n_lists(z, s)
    return c.Estimate(
        memory={
            "predictions with ranks and hits": rows * c.EVAL_PER_PREDICTION,
            "test pairs": z.test_pairs * c.EVAL_PER_TEST_PAIR,
            "beyond-accuracy parts": min(rows, c.EVAL_BEYOND_PARTS * BEYOND_ROWS)
            * c.EVAL_PER_BEYOND_ROW,
        },
        disk=z.users * lists * c.DISK_USER_METRICS,
        scratch=0,
        seconds=c.SECONDS["start"] + rows * c.SECONDS["evaluate_prediction"],
        batches=(f"{c.count(rows)} prediction rows at once", f"K = {list(s.ks)}"),
    )
