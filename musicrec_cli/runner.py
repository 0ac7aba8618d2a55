"""run_<stage>(cfg): scan inputs, check schemas, call the stage functions, write outputs.

Each returns the one-line summary the CLI prints. Stages read only earlier stages' artifacts
(checked against their manifests) or raw data.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, scan, stage_dir
from musicrec_cli.config import Config, table_dict
from musicrec_cli.console import progress
from musicrec_cli.sources import find_files, scan_table
from stages import evaluate, features, predict, preprocess, split
from stages.generate import make_events, make_world
from stages.interactions import aggregate_pairs, build_matrix
from stages.models import Recommender
from stages.models.als import fit_als, load_als
from stages.models.popularity import fit_popularity, load_popularity
from stages.schema import (
    AUDIO_FEATURES,
    GENRE,
    INTERACTIONS,
    MODEL,
    PLAY_COUNT,
    PLAYED_AT,
    PLAYS,
    RAW_LISTENS,
    TRACK_ID,
    TRACK_IDX,
    USER_ID,
    USER_IDX,
    WEIGHT,
    SchemaError,
    check_schema,
)

log = logging.getLogger(__name__)


class _Measure:
    """Wall time and peak RSS of a stage, for its manifest."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def record(self) -> dict[str, float]:
        peak_kb = max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        return {
            "wall_seconds": round(time.perf_counter() - self.start, 3),
            "peak_rss_mb": round(peak_kb / 1024, 1),
        }


def _upstream_inputs(root: Path, *stages: str) -> dict[str, Any]:
    for stage in stages:
        require_stage(root, stage)
    return art.fingerprint_inputs([stage_dir(root, s) / art.MANIFEST for s in stages])


def is_up_to_date(cfg: Config, stage: str) -> bool:
    """True if the stage's outputs are intact and were made from the same config and inputs."""
    root = Path(cfg.paths.artifacts)
    manifest = art.read_manifest(root, stage)
    if manifest is None or manifest.get("config") != table_dict(getattr(cfg, stage)):
        return False
    if stage == "preprocess" and manifest.get("paths") != table_dict(cfg.paths):
        return False
    return all(
        art._matches(Path(path), rec)  # noqa: SLF001
        for path, rec in manifest.get("inputs", {}).items()
    )


def run_generate(cfg: Config, *, out: Path) -> str:
    """Write the synthetic log as Parquet chunks to `out`/listens and the catalog beside it."""
    g = cfg.generate
    listens = out / "listens"
    partial = out / ".listens.partial"
    world = make_world(n_users=g.users, n_tracks=g.tracks, n_genres=g.genres, seed=g.seed)
    out.mkdir(parents=True, exist_ok=True)
    art.shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    n_chunks = -(-g.events // g.chunk_events)
    with progress("generate", n_chunks) as bar:
        for chunk in range(n_chunks):
            size = min(g.chunk_events, g.events - chunk * g.chunk_events)
            events = make_events(world, n_events=size, seed=g.seed * 1_000_003 + chunk)
            events.write_parquet(partial / f"part-{chunk:05d}.parquet", compression="zstd")
            bar.advance(0)
    catalog_tmp = out / ".tracks.parquet.partial"
    world.catalog.write_parquet(catalog_tmp, compression="zstd")
    art.shutil.rmtree(listens, ignore_errors=True)
    art.os.replace(partial, listens)
    art.os.replace(catalog_tmp, out / "tracks.parquet")
    return f"{g.events:,} plays by {g.users:,} users of {g.tracks:,} tracks -> {out}"


def _scan_catalog(spec: str) -> pl.LazyFrame | None:
    if not spec:
        return None
    catalog = scan_table(find_files(spec, what="track catalog"))
    check_schema(catalog.collect_schema(), {k: RAW_LISTENS[k] for k in ("artist_name", "track_name")},
                 source=spec)
    extra = [c for c in (*AUDIO_FEATURES, GENRE) if c in catalog.collect_schema()]
    return (
        catalog.with_columns(
            preprocess.normalise_name(pl.col("artist_name")).alias(preprocess.ARTIST_KEY),
            preprocess.normalise_name(pl.col("track_name")).alias(preprocess.TITLE_KEY),
        )
        .select(preprocess.ARTIST_KEY, preprocess.TITLE_KEY, *extra)
        .unique(subset=[preprocess.ARTIST_KEY, preprocess.TITLE_KEY], keep="first")
    )


def run_preprocess(cfg: Config) -> str:
    """Clean the raw log, build canonical tracks, aggregate, encode, write 01_preprocess."""
    measure, p, root = _Measure(), cfg.preprocess, Path(cfg.paths.artifacts)
    files = find_files(cfg.paths.raw, what="raw listening log")
    raw = scan_table(files)
    check_schema(raw.collect_schema(), RAW_LISTENS, source=cfg.paths.raw)
    plays = preprocess.clean_plays(
        raw, min_ms_played=p.min_ms_played, ts_min=p.ts_min, ts_max=p.ts_max
    )
    tracks = preprocess.build_tracks(plays).collect()
    keyed = plays.join(
        tracks.lazy().select(preprocess.ARTIST_KEY, preprocess.TITLE_KEY, TRACK_ID),
        on=(preprocess.ARTIST_KEY, preprocess.TITLE_KEY),
    )
    pairs = aggregate_pairs(keyed, keys=(USER_ID, TRACK_ID)).collect(engine="streaming")
    kept = preprocess.filter_min_counts(
        pairs,
        min_user_tracks=p.min_user_tracks,
        min_track_users=p.min_track_users,
        max_rounds=p.kcore_rounds,
    )
    if kept.height == 0:
        msg = (
            f"{cfg.paths.raw}: no user-track pairs left after filtering ({pairs.height:,} before); "
            f"lower [preprocess].min_user_tracks ({p.min_user_tracks}) or min_track_users "
            f"({p.min_track_users})."
        )
        raise SchemaError(msg)
    users = preprocess.encode(kept.lazy(), key=USER_ID, index=USER_IDX).collect()
    items = preprocess.encode(kept.lazy(), key=TRACK_ID, index=TRACK_IDX).join(
        tracks.lazy(), on=TRACK_ID
    )
    catalog = _scan_catalog(cfg.paths.catalog)
    if catalog is not None:
        items = items.join(catalog, on=(preprocess.ARTIST_KEY, preprocess.TITLE_KEY), how="left")
    items_df = items.sort(TRACK_IDX).collect()
    events = (
        kept.join(users, on=USER_ID)
        .join(items_df.select(TRACK_ID, TRACK_IDX), on=TRACK_ID)
        .select(list(INTERACTIONS))
        .sort(USER_IDX, TRACK_IDX)
    )
    encoded_plays = (
        keyed.join(users.lazy(), on=USER_ID)
        .join(items_df.lazy().select(TRACK_ID, TRACK_IDX), on=TRACK_ID)
        .select(list(PLAYS))
    )
    report = {
        "rows_in": raw.select(pl.len()).collect().item(),
        "rows_valid": plays.select(pl.len()).collect().item(),
        "raw_artist_spellings": raw.select(pl.col("artist_name").n_unique()).collect().item(),
        "canonical_artists": items_df[preprocess.ARTIST_KEY].n_unique(),
        "canonical_tracks_before_filter": tracks.height,
        "pairs_before_filter": pairs.height,
        "pairs": events.height,
        "users": users.height,
        "tracks": items_df.height,
        "tracks_with_audio_features": items_df.select(
            pl.col(AUDIO_FEATURES[0]).is_not_null().sum() if AUDIO_FEATURES[0] in items_df.columns
            else pl.lit(0)
        ).item(),
    }
    with art.open_stage(root, "preprocess") as out:
        n_plays = out.sink_parquet(encoded_plays.sort(USER_IDX, PLAYED_AT), art.PLAYS)
        out.write_parquet(events, art.EVENTS)
        out.write_parquet(items_df, art.ITEMS)
        out.write_parquet(users, art.USERS)
        out.write_matrix(
            build_matrix(events, value=PLAY_COUNT, n_users=users.height, n_tracks=items_df.height),
            art.INTERACTION_MATRIX,
        )
        out.write_json(report | {"plays_kept": n_plays}, art.QUALITY_REPORT)
        folder = art.commit_stage(out, {
            "config": table_dict(p),
            "paths": table_dict(cfg.paths),
            "inputs": art.fingerprint_inputs(
                files + ([Path(f) for f in [cfg.paths.catalog] if f and Path(f).is_file()])
            ),
            "summary": {"n_users": users.height, "n_tracks": items_df.height,
                        "n_pairs": events.height, "n_plays": n_plays},
            **measure.record(),
        })
    return (f"{report['rows_in']:,} rows -> {n_plays:,} plays, {events.height:,} pairs, "
            f"{users.height:,} users x {items_df.height:,} tracks -> {folder}")


def run_split(cfg: Config) -> str:
    """Temporal split of 01_preprocess plays into 02_split train/test."""
    measure, root = _Measure(), Path(cfg.paths.artifacts)
    inputs = _upstream_inputs(root, "preprocess")
    shape = require_stage(root, "preprocess")["summary"]
    plays = scan(root, "preprocess", art.PLAYS)
    check_schema(plays.collect_schema(), PLAYS, source=str(stage_dir(root, "preprocess")))
    bounds = plays.select(pl.col(PLAYED_AT).min().alias("lo"), pl.col(PLAYED_AT).max().alias("hi"))
    lo, hi = bounds.collect().row(0)
    cutoff = split.temporal_cutoff((lo, hi), test_fraction=cfg.split.test_fraction)
    parts = split.split_by_time(plays, cutoff=cutoff)
    n_users, n_tracks = shape["n_users"], shape["n_tracks"]
    with art.open_stage(root, "split") as out:
        n_train = out.sink_parquet(parts.train, art.TRAIN)
        n_test = out.sink_parquet(parts.test, art.TEST)
        if n_test == 0:
            msg = (f"{stage_dir(root, 'split')}: the test set is empty: no user discovered a track "
                   f"known in train after the cut-off {cutoff:%Y-%m-%d %H:%M}; "
                   f"raise [split].test_fraction ({cfg.split.test_fraction}).")
            raise SchemaError(msg)
        for name, matrix_name in ((art.TRAIN, art.TRAIN_MATRIX), (art.TEST, art.TEST_MATRIX)):
            frame = pl.read_parquet(out.path(name), columns=[USER_IDX, TRACK_IDX, PLAY_COUNT])
            out.write_matrix(
                build_matrix(frame, value=PLAY_COUNT, n_users=n_users, n_tracks=n_tracks),
                matrix_name,
            )
        folder = art.commit_stage(out, {
            "config": table_dict(cfg.split), "inputs": inputs,
            "summary": {"cutoff": cutoff.isoformat(), "n_train": n_train, "n_test": n_test,
                        "n_users": n_users, "n_tracks": n_tracks},
            **measure.record(),
        })
    return f"cut-off {cutoff:%Y-%m-%d}: {n_train:,} train pairs, {n_test:,} test pairs -> {folder}"


def run_features(cfg: Config) -> str:
    """Confidence weights and user/item features from 02_split into 03_features."""
    measure, f, root = _Measure(), cfg.features, Path(cfg.paths.artifacts)
    inputs = _upstream_inputs(root, "preprocess", "split")
    summary = require_stage(root, "split")["summary"]
    cutoff = pl.Series([summary["cutoff"]]).str.to_datetime(time_zone="UTC").item()
    train, test = scan(root, "split", art.TRAIN), scan(root, "split", art.TEST)
    check_schema(train.collect_schema(), INTERACTIONS, source=str(stage_dir(root, "split")))
    weighted = features.confidence_weights(
        train, cutoff=cutoff, half_life_days=f.recency_half_life_days,
        recency_floor=f.recency_floor,
    )
    items = scan(root, "preprocess", art.ITEMS)
    with art.open_stage(root, "features") as out:
        n_train = out.sink_parquet(weighted, art.FEATURES_TRAIN)
        out.sink_parquet(test.with_columns(pl.lit(1.0, pl.Float32).alias(WEIGHT)),
                         art.FEATURES_TEST)
        out.sink_parquet(features.item_features(train, items, n_users=summary["n_users"]),
                         art.ITEM_FEATURES)
        n_u = out.sink_parquet(features.user_features(train, cutoff=cutoff), art.USER_FEATURES)
        folder = art.commit_stage(out, {
            "config": table_dict(f), "inputs": inputs,
            "summary": {"n_train": n_train, "n_users_with_history": n_u},
            **measure.record(),
        })
    return f"{n_train:,} weighted interactions, {n_u:,} user profiles -> {folder}"


def _weights_matrix(root: Path) -> Any:
    shape = require_stage(root, "split")["summary"]
    frame = pl.read_parquet(stage_dir(root, "features") / art.FEATURES_TRAIN,
                            columns=[USER_IDX, TRACK_IDX, WEIGHT])
    return build_matrix(frame, value=WEIGHT, n_users=shape["n_users"], n_tracks=shape["n_tracks"])


def run_train(cfg: Config) -> str:
    """Fit the configured models on 03_features weights; write 04_train NPZ + JSON."""
    measure, t, root = _Measure(), cfg.train, Path(cfg.paths.artifacts)
    inputs = _upstream_inputs(root, "split", "features")
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
                params = {k: getattr(t, k) for k in
                          ("factors", "iterations", "regularization", "alpha", "seed")}
                with progress("train als", t.iterations) as bar:
                    model = fit_als(user_items, callback=lambda *_: bar.advance(0), **params)
            out.write_arrays(model.arrays(), f"{name}.npz")
            models[name] = {"file": f"{name}.npz", "params": params}
            timings[name] = {"train_seconds": round(time.perf_counter() - start, 3)}
            log.info("trained %s in %.1f s", name, timings[name]["train_seconds"])
        out.write_json(models, art.MODELS_JSON)
        out.write_json({"models": timings, "matrix": {"shape": list(user_items.shape),
                        "nnz": int(user_items.nnz)}}, art.METRICS_JSON)
        folder = art.commit_stage(out, {"config": table_dict(t), "inputs": inputs,
                                        "summary": {"models": list(t.models)},
                                        **measure.record()})
    took = ", ".join(f"{m} {v['train_seconds']:.1f}s" for m, v in timings.items())
    return f"{took} on {user_items.shape[0]:,} x {user_items.shape[1]:,} ({user_items.nnz:,} nnz) -> {folder}"


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


def run_predict(cfg: Config) -> str:
    """Top-N per user for every trained model, streamed in user blocks to 05_predict."""
    measure, p, root = _Measure(), cfg.predict, Path(cfg.paths.artifacts)
    inputs = _upstream_inputs(root, "preprocess", "split", "train")
    models = load_models(root)
    user_items = art.load_matrix(root, "split", art.TRAIN_MATRIX)
    user_ids = pl.read_parquet(stage_dir(root, "preprocess") / art.USERS).sort(USER_IDX)[USER_ID]
    track_ids = pl.read_parquet(stage_dir(root, "preprocess") / art.ITEMS).sort(TRACK_IDX)[TRACK_ID]
    users = np.flatnonzero(np.diff(user_items.indptr) > 0)
    blocks = [users[i: i + p.block_size] for i in range(0, len(users), p.block_size)]
    rows = 0
    with art.open_stage(root, "predict") as out, progress("predict", len(blocks) * len(models)) as bar:
        writer: pq.ParquetWriter | None = None
        for name, model in models.items():
            for block in blocks:
                recs = predict.recommend_block(model, block, user_items, n=p.n, model_name=name)
                recs = recs.with_columns(
                    user_ids.gather(recs[USER_IDX]).alias(USER_ID),
                    track_ids.gather(recs[TRACK_IDX]).alias(TRACK_ID),
                ).select(USER_IDX, USER_ID, "rank", TRACK_IDX, TRACK_ID, "score", MODEL)
                table = recs.to_arrow()
                writer = writer or pq.ParquetWriter(out.path(art.PREDICTIONS), table.schema,
                                                    compression="zstd")
                writer.write_table(table)
                rows += recs.height
                bar.advance(0)
        if writer is not None:
            writer.close()
        out.add_file(art.PREDICTIONS, rows=rows)
        folder = art.commit_stage(out, {
            "config": table_dict(p), "inputs": inputs,
            "summary": {"n_users": len(users), "models": list(models), "rows": rows},
            **measure.record(),
        })
    return f"top-{p.n} for {len(users):,} users x {len(models)} model(s), {rows:,} rows -> {folder}"


def run_evaluate(cfg: Config) -> tuple[str, pl.DataFrame]:
    """Ranking metrics of 05_predict against 02_split test; writes 06_evaluate."""
    measure, e, root = _Measure(), cfg.evaluate, Path(cfg.paths.artifacts)
    inputs = _upstream_inputs(root, "split", "predict")
    n_tracks = require_stage(root, "split")["summary"]["n_tracks"]
    recs = scan(root, "predict", art.PREDICTIONS)
    test = scan(root, "split", art.TEST)
    ks = tuple(sorted(set(e.k)))
    per_user = evaluate.per_user_metrics(recs, test, ks=ks).collect(engine="streaming")
    summary = evaluate.summarise(
        per_user.lazy(), evaluate.coverage(recs, ks=ks, n_items=n_tracks)
    ).collect()
    n_test_users = test.select(pl.col(USER_IDX).n_unique()).collect().item()
    n_predicted = recs.select(pl.col(USER_IDX).n_unique()).collect().item()
    metrics = {
        "n_users_evaluated": n_test_users,
        "n_users_without_test": max(n_predicted - n_test_users, 0),
        "k": list(ks),
        "models": {row.pop(MODEL): row for row in summary.to_dicts()},
    }
    with art.open_stage(root, "evaluate") as out:
        out.write_parquet(per_user, art.PER_USER_METRICS)
        out.write_json(metrics, art.METRICS_JSON)
        folder = art.commit_stage(out, {"config": table_dict(e), "inputs": inputs,
                                        "summary": {"n_users_evaluated": n_test_users},
                                        **measure.record()})
    return f"{n_test_users:,} test users, {summary.height} model(s) -> {folder}", summary
