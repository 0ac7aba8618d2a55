"""Run the train stage: 03_features -> 04_train models (NPZ + JSON), and load them back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import ArtifactError, require_stage, stage_dir
from musicrec_cli.config import Config, TrainConfig, table_dict
from musicrec_cli.console import progress
from musicrec_cli.runner import Measure, upstream_inputs
from stages.interactions import build_matrix
from stages.models import Recommender
from stages.models.als import bm25_confidence, fit_als, load_als
from stages.models.bpr import fit_bpr, load_bpr
from stages.models.content import fit_content, load_content
from stages.models.hybrid import build_hybrid, load_hybrid
from stages.models.knn import fit_knn, load_knn
from stages.models.popularity import fit_popularity, fit_trending, load_popularity
from stages.schema import AUDIO_FEATURES, LAST_TS, PLAY_COUNT, TRACK_IDX, USER_IDX, WEIGHT

log = logging.getLogger(__name__)
_DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainData:
    """What the models are fitted on.

    frame is 03_features/features_train (user_idx, track_idx, weight, play_count, last_ts);
    weights is its (n_users, n_items) float32 CSR of weights; audio is (n_items, d) float64,
    NaN where unknown. Play counts and ages are derived only for the models that need them.
    """

    frame: pl.DataFrame
    weights: sp.csr_matrix
    audio: np.ndarray[Any, np.dtype[np.float64]]

    def counts(self) -> sp.csr_matrix:
        """(n_users, n_items) float32 CSR of play counts (for BM25 confidence)."""
        n_users, n_tracks = self.weights.shape
        return build_matrix(self.frame, value=PLAY_COUNT, n_users=n_users, n_tracks=n_tracks)

    def ages(self) -> pl.DataFrame:
        """track_idx, play_count, age_days (last play's age before the newest play in train)."""
        newest = self.frame[LAST_TS].max()
        age = (pl.lit(newest) - pl.col(LAST_TS)).dt.total_microseconds() / _DAY_US
        return self.frame.select(TRACK_IDX, PLAY_COUNT, age.alias("age_days"))


def load_train_data(root: Path) -> TrainData:
    """Read 03_features (features_train, item_features) into matrices and arrays."""
    shape = require_stage(root, "split")["summary"]
    folder = stage_dir(root, "features")
    frame = pl.read_parquet(
        folder / art.FEATURES_TRAIN, columns=[USER_IDX, TRACK_IDX, WEIGHT, PLAY_COUNT, LAST_TS]
    )
    items = pl.read_parquet(folder / art.ITEM_FEATURES).sort(TRACK_IDX)
    audio_cols = [c for c in AUDIO_FEATURES if c in items.columns]
    audio = (
        items.select(pl.col(audio_cols).cast(pl.Float64)).to_numpy()
        if audio_cols
        else np.zeros((items.height, 0))
    )
    return TrainData(
        frame=frame,
        weights=build_matrix(
            frame, value=WEIGHT, n_users=shape["n_users"], n_tracks=shape["n_tracks"]
        ),
        audio=np.asarray(audio, dtype=np.float64),
    )


def _als_params(t: TrainConfig) -> dict[str, Any]:
    keys = ("factors", "iterations", "regularization", "alpha", "seed", "confidence")
    extra = ("bm25_k1", "bm25_b") if t.confidence == "bm25" else ()
    return {k: getattr(t, k) for k in (*keys, *extra)}


def _fit_one(name: str, data: TrainData, t: TrainConfig, fitted: dict[str, Recommender]) -> Any:
    """Fit model `name` (reusing components already in `fitted`); returns (model, params)."""
    if name == "popularity":
        return fit_popularity(data.weights), {}
    if name == "trending":
        p = data.ages()
        model = fit_trending(
            p[TRACK_IDX].to_numpy(),
            p[PLAY_COUNT].to_numpy(),
            p["age_days"].to_numpy(),
            n_items=data.weights.shape[1],
            half_life_days=t.trending_half_life_days,
        )
        return model, {"half_life_days": t.trending_half_life_days}
    if name == "als":
        params = _als_params(t)
        matrix = (
            bm25_confidence(data.counts(), k1=t.bm25_k1, b=t.bm25_b)
            if t.confidence == "bm25"
            else data.weights
        )
        with progress("train als", t.iterations) as bar:
            model = fit_als(
                matrix,
                callback=lambda *_: bar.advance(0),
                **{k: params[k] for k in ("factors", "iterations", "regularization", "alpha")},
                seed=t.seed,
            )
        return model, params
    if name == "bpr":
        params = {
            "factors": t.bpr_factors,
            "iterations": t.bpr_iterations,
            "learning_rate": t.bpr_learning_rate,
            "regularization": t.bpr_regularization,
            "seed": t.seed,
        }
        return fit_bpr(data.weights, **params), params
    if name == "knn":
        params = {"similarity": t.knn_similarity, "neighbours": t.knn_neighbours}
        return fit_knn(data.weights, **params), params  # type: ignore[arg-type]
    if name == "content":
        return fit_content(data.audio), {"n_features": int(data.audio.shape[1])}
    if name == "hybrid":
        parts = {c: fitted.get(c) or _fit_one(c, data, t, fitted)[0] for c in ("als", "content")}
        weights = {"cold": t.hybrid_cold, "few": t.hybrid_few, "warm": t.hybrid_warm}
        model = build_hybrid(
            als=parts["als"],
            content=parts["content"],
            popularity=fitted.get("popularity") or fit_popularity(data.weights),
            weights=weights,
            min_tracks=t.hybrid_min_tracks,
        )
        return model, {**weights, "min_tracks": t.hybrid_min_tracks, "liked": t.hybrid_liked}
    msg = f"[train].models: unknown model {name!r}."
    raise ArtifactError(msg)


def run_train(cfg: Config) -> str:
    """Fit the configured models on 03_features; write 04_train NPZ + JSON."""
    measure, t, root = Measure(), cfg.train, Path(cfg.paths.artifacts)
    inputs = upstream_inputs(root, "split", "features")
    data = load_train_data(root)
    fitted: dict[str, Recommender] = {}
    models: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    # components first, so that the hybrid reuses them
    order = sorted(t.models, key=lambda m: m == "hybrid")
    with art.open_stage(root, "train") as out:
        for name in order:
            start = time.perf_counter()
            model, params = _fit_one(name, data, t, fitted)
            fitted[name] = model
            out.write_arrays(model.arrays(), f"{name}.npz")
            models[name] = {"file": f"{name}.npz", "params": params}
            timings[name] = {"train_seconds": round(time.perf_counter() - start, 3)}
            log.info("trained %s in %.1f s", name, timings[name]["train_seconds"])
        out.write_json(models, art.MODELS_JSON)
        shape = data.weights.shape
        out.write_json(
            {"models": timings, "matrix": {"shape": list(shape), "nnz": int(data.weights.nnz)}},
            art.METRICS_JSON,
        )
        folder = art.commit_stage(
            out,
            {
                "config": table_dict(t),
                "inputs": inputs,
                "summary": {"models": list(t.models)},
                **measure.record(),
            },
        )
    took = ", ".join(f"{m} {v['train_seconds']:.1f}s" for m, v in timings.items())
    return f"{took} on {shape[0]:,} x {shape[1]:,} ({data.weights.nnz:,} nnz) -> {folder}"


LOADERS: dict[str, Callable[[dict[str, Any]], Recommender]] = {
    "popularity": load_popularity,
    "trending": load_popularity,
    "als": load_als,
    "bpr": load_bpr,
    "knn": load_knn,
    "content": load_content,
    "hybrid": load_hybrid,
}


def load_models(root: Path, names: tuple[str, ...] | None = None) -> dict[str, Recommender]:
    """Models of 04_train by name: all of them, or only `names` (in models.json order)."""
    require_stage(root, "train")
    specs = art.read_json(root, "train", art.MODELS_JSON)
    wanted = specs if names is None else {n: specs[n] for n in specs if n in names}
    return {
        name: LOADERS[name](art.load_arrays(stage_dir(root, "train") / spec["file"]))
        for name, spec in wanted.items()
    }
