"""Run the train stage: 03_features -> 04_train models (NPZ + JSON), and load them back."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, stage_dir
from musicrec_cli.config import Config, TrainConfig, engine_of, table_dict
from musicrec_cli.console import progress
from musicrec_cli.runner import Measure, upstream_inputs
from stages.models import Recommender, registry
from stages.models.fitting import AlsParams, Record, als_matrix
from stages.models.training import TrainingData
from stages.schema import AUDIO_FEATURES, LAST_TS, PLAY_COUNT, TRACK_IDX, USER_IDX, WEIGHT

Fitted = tuple[Recommender, Record]

log = logging.getLogger(__name__)


def load_train_data(root: Path) -> TrainingData:
    """Read 03_features (features_train, item_features) into matrices and arrays.

    features_train stays a scan: the weights CSR is built from three of its columns, and a
    model reading other columns (play counts, last play) collects them when it is fitted, so
    the whole table is never held for the stage (6 GB at 800M events).
    """
    shape = require_stage(root, "split")["summary"]
    folder = stage_dir(root, "features")
    frame = pl.scan_parquet(folder / art.FEATURES_TRAIN).select(
        USER_IDX, TRACK_IDX, WEIGHT, PLAY_COUNT, LAST_TS
    )
    items = pl.read_parquet(folder / art.ITEM_FEATURES).sort(TRACK_IDX)
    audio_cols = [c for c in AUDIO_FEATURES if c in items.columns]
    audio = (
        items.select(pl.col(audio_cols).cast(pl.Float64)).to_numpy()
        if audio_cols
        else np.zeros((items.height, 0))
    )
    return TrainingData.build(
        frame,
        np.asarray(audio, dtype=np.float64),
        n_users=shape["n_users"],
        n_tracks=shape["n_tracks"],
    )


def weights_spare(order: tuple[str, ...]) -> tuple[bool, ...]:
    """For each model in fit order: whether no model after it reads the weights CSR.

    The model may then overwrite the weights: ALS scales them by alpha in place instead of
    copying them (1 GB at 800M events), which is what `train.models = ["popularity", "als"]` at
    full scale needs to stay under 10 GiB.
    """
    reads = [registry.spec(name).reads_weights for name in order]
    return tuple(not any(reads[i + 1 :]) for i in range(len(order)))


SparkFits = dict[str, Callable[[TrainingData, Any, Mapping[str, Recommender]], Recommender]]


def _fit(
    name: str,
    data: TrainingData,
    t: TrainConfig,
    fitted: dict[str, Recommender],
    spark_fits: SparkFits,
    *,
    weights_spare: bool,
) -> Fitted:
    """Fit one registered model, with a progress bar over its iterations (if it has any).

    A model in `spark_fits` keeps its registry spec (parameters, record, loader) with Spark's
    fit in place of the local one, so it is saved and served like the local model.
    `weights_spare`: no model fitted after this one reads the weights (it may overwrite them).
    """
    spec = registry.spec(name)
    if name in spark_fits:
        spec = dataclasses.replace(spec, fit=spark_fits[name])
    params = spec.params_from(t)
    with progress(f"train {name}", getattr(params, "iterations", None)) as step:
        ticking = dataclasses.replace(data, on_iteration=step, weights_spare=weights_spare)
        model = spec.fit(ticking, params, fitted)
    return model, spec.recorded(params, data)


def _spark_fits(cfg: Config, spark: Any) -> SparkFits:
    """Spark's ALS (stages.spark.als) on the confidence matrix the registry's ALS fits."""
    from stages.spark import als as spark_als

    def fit_als(data: TrainingData, p: AlsParams, _: Mapping[str, Recommender]) -> Recommender:
        n_users, n_items = data.weights.shape
        return spark_als.fit_als(
            spark_als.ratings_frame(spark, als_matrix(data, p)),
            n_users=n_users,
            n_items=n_items,
            factors=p.factors,
            iterations=p.iterations,
            regularization=p.regularization,
            alpha=p.alpha,
            seed=p.seed,
            # one user and one item block per core: 177 s instead of 203 s with Spark's 10
            # blocks on local[2] (../shared/SPARK.md)
            blocks=spark.sparkContext.defaultParallelism,
        )

    return {"als": fit_als}


def run_train(cfg: Config) -> str:
    """Fit the configured models on 03_features; write 04_train NPZ + JSON."""
    measure, t = Measure(), cfg.train
    uses_als = "als" in registry.fit_order(t.models)
    engine = engine_of(cfg, "train") if uses_als else "polars"
    with contextlib.ExitStack() as stack:
        spark_fits: SparkFits = {}
        if engine == "spark":
            from musicrec_cli.spark import spark_session

            root = Path(cfg.paths.artifacts)
            spark_fits = _spark_fits(
                cfg, stack.enter_context(spark_session(cfg.spark, workdir=root))
            )
        return _train(cfg, measure, engine, spark_fits)


def _train(cfg: Config, measure: Measure, engine: str, spark_fits: SparkFits) -> str:
    t, root = cfg.train, Path(cfg.paths.artifacts)
    inputs = upstream_inputs(root, "split", "features")
    data = load_train_data(root)
    fitted: dict[str, Recommender] = {}
    models: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    with art.open_stage(root, "train") as out:
        # each model after the models it reuses; those not asked for are fitted, not saved
        order = registry.fit_order(t.models)
        for name, spare in zip(order, weights_spare(order), strict=True):
            start = time.perf_counter()
            model, params = _fit(name, data, t, fitted, spark_fits, weights_spare=spare)
            fitted[name] = model
            if name not in t.models:
                continue
            out.write_arrays(model.arrays(), art.model_file(name))
            models[name] = {"file": art.model_file(name), "params": params}
            timings[name] = {"train_seconds": round(time.perf_counter() - start, 3)}
            log.info("trained %s in %.1f s", name, timings[name]["train_seconds"])
        out.write_json(models, art.MODELS_JSON)
        tuning = stage_dir(root, "train") / "tuning"
        if tuning.is_dir():  # `musicrec tune`'s search outlives the models it tuned
            shutil.copytree(tuning, out.path("tuning"))
        shape = data.weights.shape
        out.write_json(
            {"models": timings, "matrix": {"shape": list(shape), "nnz": int(data.weights.nnz)}},
            art.METRICS_JSON,
        )
        folder = art.commit_stage(
            out,
            {
                "config": table_dict(t),
                "engine": engine,
                "inputs": inputs,
                "summary": {"models": list(t.models)},
                **measure.record(),
            },
        )
    took = ", ".join(f"{m} {v['train_seconds']:.1f}s" for m, v in timings.items())
    return f"{took} on {shape[0]:,} x {shape[1]:,} ({data.weights.nnz:,} nnz) -> {folder}"


def load_models(root: Path, names: tuple[str, ...] | None = None) -> dict[str, Recommender]:
    """Models of 04_train by name: all of them, or only `names` (in models.json order)."""
    require_stage(root, "train")
    specs = art.read_json(root, "train", art.MODELS_JSON)
    wanted = specs if names is None else {n: specs[n] for n in specs if n in names}
    return {
        name: registry.load(
            name, art.load_arrays(stage_dir(root, "train") / spec["file"]), spec["params"]
        )
        for name, spec in wanted.items()
    }
