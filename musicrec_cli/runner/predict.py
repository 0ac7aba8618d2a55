"""Run the predict stage: 04_train models -> 05_predict/{predictions,similar_tracks}.parquet.

Users are scored one block at a time and each block is appended to a Parquet file inside the
stage's partial folder, so memory is bounded by the block size and yesterday's folder stays in
place until the new one is complete (artifacts.commit_stage).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from musicrec_cli import artifacts as art
from musicrec_cli import lineage
from musicrec_cli.config import Config, ConfigError, PredictConfig, engine_of, table_dict
from musicrec_cli.console import progress
from musicrec_cli.runner import (
    Measure,
    predict_output,
    predict_spark,
    predict_users,
    upstream_inputs,
)
from musicrec_cli.runner.predict_catalog import Catalog, codes, item_attributes, load_catalog
from musicrec_cli.runner.train import load_models
from stages import ann, predict, rerank, songs
from stages.models import Factorised, Recommender
from stages.schema import (
    GENERATED_AT,
    MODEL,
    PREDICTIONS,
    TIMESTAMP,
    TRACK_GROUP_ID,
    TRACK_ID,
    TRACK_IDX,
    USER_ID,
    USER_IDX,
)

log = logging.getLogger(__name__)

SIMILAR_TRACK_ID = "similar_track_id"
RERANK_SUFFIX = "+rerank"
PREDICTION_COLUMNS = tuple(PREDICTIONS)
_UNKNOWN_SAMPLE = 20


def _hnsw(vectors: npt.NDArray[np.float32], name: str, p: PredictConfig) -> Any:
    start = time.perf_counter()
    try:
        index = ann.build_hnsw(vectors, m=p.hnsw_m, ef_construction=max(40, p.hnsw_m * 2))
    except ImportError as exc:
        msg = '[predict].search = "hnsw" needs faiss: `pip install faiss-cpu`, or set "exact".'
        raise ConfigError(msg) from exc
    log.info(
        "HNSW index over %s's %d tracks in %.1f s", name, len(vectors), time.perf_counter() - start
    )
    return index


def _hnsw_search(name: str, p: PredictConfig) -> Callable[[Factorised], predict.FactorSearch]:
    """For [predict].search = "hnsw": the approximate search over a factor model's items."""

    def build(model: Factorised) -> predict.FactorSearch:
        index = _hnsw(model.item_factors, name, p)
        return lambda queries, heard, k: ann.search_unheard(
            index, queries, heard, k=k, overfetch=k, ef_search=p.hnsw_ef_search
        )

    return build


def _fetch_rows(
    score: predict.Scorer,
    block: npt.NDArray[np.int64],
    items: sp.csr_matrix,
    rows: npt.NDArray[np.int64],
    k: int,
) -> songs.Candidates:
    """Candidates of some rows of a block (songs.plain_lists' fetch)."""
    return score(block[rows], items[rows], k)


def _block_frames(
    models: dict[str, Recommender],
    blocks: list[npt.NDArray[np.int64]],
    user_items: sp.csr_matrix,
    catalog: Catalog,
    p: PredictConfig,
    spark_lists: dict[str, Path],
    *,
    keep_heard: bool = False,
) -> Iterator[tuple[int, pl.DataFrame]]:
    """Exact lists as part 0 and re-ranked ones as part 1, model by model, block by block.

    Frames have columns (user_idx, rank, track_idx, score, model). Every list has at most one
    track per song (track_group_id), and none of a song the user has heard unless
    [predict].allow_heard_songs. The exact lists of models in `spark_lists` are read from
    Spark's output instead of scored here.
    """
    group = codes(catalog.group_ids)
    for name, model in models.items():
        attrs = item_attributes(catalog, model, name, p) if name in p.rerank_models else None
        if name in spark_lists:
            yield from ((0, frame) for frame in predict_spark.read_lists(spark_lists[name], name))
            if attrs is None:
                continue
        params = rerank.RerankParams(
            n=p.n,
            mmr_lambda=p.mmr_lambda,
            novelty_weight=p.novelty_weight,
            max_per_artist=p.max_per_artist,
            one_per_group=p.one_per_group,
        )
        score = predict.scorer(
            model,
            factor_search=_hnsw_search(name, p) if p.search == "hnsw" else None,
            keep_heard=keep_heard,
        )
        for block in blocks:
            items = user_items[block]
            heard = None if p.allow_heard_songs else songs.heard_groups(items, group)
            if name not in spark_lists:
                idx, best = songs.plain_lists(
                    functools.partial(_fetch_rows, score, block, items),
                    len(block),
                    group,
                    n=p.n,
                    heard=heard,
                    depth=p.n * max(p.candidates, 1),
                    one_per_group=p.one_per_group,
                )
                yield 0, predict.ranked_frame(block, idx, best, model_name=name)
            if attrs is not None:
                c_idx, c_best = score(block, items, p.n * p.candidates)
                if heard is not None:
                    c_idx, c_best = songs.drop_heard_songs(c_idx, c_best, group, heard)
                r_idx, r_best = rerank.rerank(c_idx, c_best, attrs, params)
                yield 1, predict.ranked_frame(block, r_idx, r_best, model_name=name + RERANK_SUFFIX)


def _with_ids(frame: pl.DataFrame, catalog: Catalog, generated_at: dt.datetime) -> pl.DataFrame:
    return frame.with_columns(
        catalog.user_ids.gather(frame[USER_IDX]).alias(USER_ID),
        catalog.track_ids.gather(frame[TRACK_IDX]).alias(TRACK_ID),
        catalog.group_ids.gather(frame[TRACK_IDX]).alias(TRACK_GROUP_ID),
        pl.lit(generated_at, dtype=TIMESTAMP).alias(GENERATED_AT),
    ).select(PREDICTION_COLUMNS)


def _similar_frames(
    models: dict[str, Recommender], catalog: Catalog, p: PredictConfig
) -> Iterator[tuple[int, pl.DataFrame]]:
    """similar_tracks rows from the first factor model (none if no model has factors).

    One version per song, never one of the query's own song (`songs.similar_lists`).
    """
    factor_models = [(m, f) for m, f in models.items() if predict.is_factorised(f)]
    if not factor_models or p.similar_k == 0:
        return
    name, model = factor_models[0]
    unit = predict.unit_rows(model.item_factors)
    tracks = np.arange(unit.shape[0], dtype=np.int64)
    index = _hnsw(unit, name, p) if p.search == "hnsw" else None
    cosine = predict.FactorTopK(unit) if index is None else None
    group = codes(catalog.group_ids)

    def fetch(
        block: npt.NDArray[np.int64], rows: npt.NDArray[np.int64], k: int
    ) -> songs.Candidates:
        if cosine is not None:
            return predict.similar_block(cosine, block[rows], k)
        return ann.similar_tracks(index, unit, block[rows], k=k, ef_search=p.hnsw_ef_search)

    for start in range(0, len(tracks), p.block_size):
        block = tracks[start : start + p.block_size]
        idx, best = songs.similar_lists(
            functools.partial(fetch, block),
            block,
            group,
            n=p.similar_k,
            depth=2 * p.similar_k,
            one_per_group=p.one_per_group,
        )
        frame = predict.similar_frame(block, idx, best)
        yield (
            0,
            frame.with_columns(
                catalog.track_ids.gather(frame[TRACK_IDX]).alias(TRACK_ID),
                catalog.track_ids.gather(frame[predict.SIMILAR_TRACK_IDX]).alias(SIMILAR_TRACK_ID),
                pl.lit(name).alias(MODEL),
            ),
        )


def run_predict(cfg: Config, *, users_file: Path | None = None) -> str:
    """Top-N per user for every trained model, streamed in user blocks to 05_predict.

    With `users_file`, the users' new rows replace theirs in the previous full predictions when
    those were made from the same settings, code and upstream runs (scope "all", merged); else
    the folder holds only those users (scope "users"), which evaluate and `all` treat as stale.
    """
    measure, p, root = Measure(), cfg.predict, Path(cfg.paths.artifacts)
    # one person's log is tested on the tracks they play again: lists may hold them
    replay = art.require_stage(root, "split")["summary"].get("test_view") == "replay"
    if replay:
        p = dataclasses.replace(p, allow_heard_songs=True)
        log.info("predict: one user's log (split test_view replay): heard tracks allowed")
    generated_at = dt.datetime.now(dt.UTC)  # one timestamp for every row of this run
    inputs = upstream_inputs(root, "preprocess", "split", "train")
    base = None if users_file is None else predict_output.merge_base(root, p, inputs)
    models = load_models(root)
    for name in p.rerank_models:
        if name not in models:
            log.warning("[predict].rerank_models: %r is not in 04_train; not re-ranked", name)
    user_items = art.load_matrix(root, "split", art.TRAIN_MATRIX)
    catalog = load_catalog(root, user_items)
    users, unknown = predict_users.resolve_users(catalog.user_ids, user_items, users_file)
    blocks = [users[i : i + p.block_size] for i in range(0, len(users), p.block_size)]
    n_sim = -(-user_items.shape[1] // p.block_size) if p.similar_k else 0
    written = [*models, *(m + RERANK_SUFFIX for m in models if m in p.rerank_models)]
    engine = engine_of(cfg, "predict")
    scope = lineage.SCOPE_USERS if users_file is not None and base is None else lineage.SCOPE_ALL
    with art.open_stage(root, "predict") as out:
        spark_lists = (
            predict_spark.spark_lists(cfg, out, models, users, codes(catalog.group_ids))
            if engine == "spark"
            else {}
        )
        with progress("predict", len(blocks) * len(written) + n_sim) as step:
            frames = (
                (part, _with_ids(f, catalog, generated_at))
                for part, f in _block_frames(
                    models, blocks, user_items, catalog, p, spark_lists, keep_heard=replay
                )
            )
            fresh = out.path(art.PREDICTIONS if base is None else "users.parquet")
            with out.writing(fresh.name):
                rows = predict_output.stream_rows(frames, fresh, step)
            if base is not None:
                with out.writing(art.PREDICTIONS):
                    rows = predict_output.merge_rows(root, fresh, users, out.path(art.PREDICTIONS))
            similar = _similar_frames(models, catalog, p)
            with out.writing(art.SIMILAR_TRACKS):
                sim_rows = predict_output.stream_rows(similar, out.path(art.SIMILAR_TRACKS), step)
        out.add_file(art.PREDICTIONS, rows=rows)
        for folder in spark_lists.values():
            shutil.rmtree(folder)
        if out.path(art.SIMILAR_TRACKS).exists():
            out.add_file(art.SIMILAR_TRACKS, rows=sim_rows)
        users_part = (
            {}
            if users_file is None
            else {
                "users_file": str(users_file),
                "users_file_sha256": art.sha256_file(users_file),
                "merged_into_run_of": None if base is None else base.get("created_at"),
            }
        )
        n_users = len(users) if base is None else int(base["summary"]["n_users"])
        folder = art.commit_stage(
            out,
            {
                "config": table_dict(p),
                "engine": engine,
                "inputs": inputs,
                "generated_at": generated_at.isoformat(),
                "summary": {
                    "scope": scope,
                    "n_users": n_users,
                    "n_users_predicted": len(users),
                    "n_unknown_users": len(unknown),
                    "unknown_users_sample": unknown[:_UNKNOWN_SAMPLE],
                    "models": written,
                    "rows": rows,
                    "similar_rows": sim_rows,
                    **users_part,
                },
                **measure.record(),
            },
        )
    what = {
        lineage.SCOPE_ALL: "" if base is None else f", merged into the run of {n_users:,} users",
        lineage.SCOPE_USERS: " ONLY (no full run to merge into; evaluate will refuse)",
    }[scope]
    return (
        f"top-{p.n} for {len(users):,} users{what} x {len(written)} list(s), {rows:,} rows "
        f"-> {folder}"
    )
