"""Run the train stage: 03_features -> 04_train models (NPZ + JSON)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, stage_dir
from musicrec_cli.config import Config, table_dict
from musicrec_cli.console import progress
from musicrec_cli.runner import Measure, upstream_inputs
from stages.interactions import build_matrix
from stages.models import Recommender
from stages.models.als import fit_als, load_als
from stages.models.popularity import fit_popularity, load_popularity
from stages.schema import TRACK_IDX, USER_IDX, WEIGHT

log = logging.getLogger(__name__)


def _weights_matrix(root: Path) -> Any:
    shape = require_stage(root, "split")["summary"]
    frame = pl.read_parquet(
        stage_dir(root, "features") / art.FEATURES_TRAIN, columns=[USER_IDX, TRACK_IDX, WEIGHT]
    )
    return build_matrix(frame, value=WEIGHT, n_users=shape["n_users"], n_tracks=shape["n_tracks"])


def run_train(cfg: Config) -> str:
    """Fit the configured models on 03_features weights; write 04_train NPZ + JSON."""
    measure, t, root = Measure(), cfg.train, Path(cfg.paths.artifacts)
    inputs = upstream_inputs(root, "split", "features")
    user_items = _weights_matrix(root)
    models: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    with art.open_stage(root, "train") as out:
        for name in t.models:
            start = time.perf_counter()
            if name == "popularity":
                model: Recommender = fit_popularity(user_items)
                params: dict[str, Any] = {}
            else:
                params = {
                    k: getattr(t, k)
                    for k in ("factors", "iterations", "regularization", "alpha", "seed")
                }
                with progress("train als", t.iterations) as bar:
                    model = fit_als(user_items, callback=lambda *_: bar.advance(0), **params)
            out.write_arrays(model.arrays(), f"{name}.npz")
            models[name] = {"file": f"{name}.npz", "params": params}
            timings[name] = {"train_seconds": round(time.perf_counter() - start, 3)}
            log.info("trained %s in %.1f s", name, timings[name]["train_seconds"])
        out.write_json(models, art.MODELS_JSON)
        out.write_json(
            {
                "models": timings,
                "matrix": {"shape": list(user_items.shape), "nnz": int(user_items.nnz)},
            },
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
    n_users, n_tracks = user_items.shape
    return f"{took} on {n_users:,} x {n_tracks:,} ({user_items.nnz:,} nnz) -> {folder}"


LOADERS: dict[str, Callable[[dict[str, Any]], Recommender]] = {
    "popularity": load_popularity,
    "als": load_als,
}


def load_models(root: Path) -> dict[str, Recommender]:
    """Every model of 04_train, by name."""
    require_stage(root, "train")
    specs = art.read_json(root, "train", art.MODELS_JSON)
    return {
        name: LOADERS[name](art.load_arrays(stage_dir(root, "train") / spec["file"]))
        for name, spec in specs.items()
    }
