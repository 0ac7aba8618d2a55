"""Predict's lists, model by model and block by block: top-N per user and similar tracks.

`run_predict` (runner/predict.py) loads the models and the catalogue, streams these frames to
05_predict and writes the manifest. Each list keeps one version per song and, unless
[predict].allow_heard_songs, none of a song the user has heard (stages/songs.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from musicrec_cli.config import ConfigError, PredictConfig
from musicrec_cli.runner import predict_spark
from musicrec_cli.runner.predict_catalog import Catalog, codes, item_attributes
from stages import ann, predict, rerank, schema, songs
from stages.models import Factorised, Recommender

log = logging.getLogger(__name__)

SIMILAR_TRACK_ID = "similar_track_id"
RERANK_SUFFIX = "+rerank"
PREDICTION_COLUMNS = tuple(schema.PREDICTIONS)


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


def block_frames(
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
    Spark's output instead of scored here, and so are the candidates of their re-ranked lists
    (key `name + predict_spark.CANDIDATES`); only the song rule and the re-ranker run here.
    """
    group = codes(catalog.group_ids)
    for name, model in models.items():
        attrs = item_attributes(catalog, model, name, p) if name in p.rerank_models else None
        if name in spark_lists:
            yield from ((0, frame) for frame in predict_spark.read_lists(spark_lists[name], name))
            if attrs is None:
                continue
        k = p.n * p.candidates
        found = spark_lists.get(name + predict_spark.CANDIDATES)
        fetched = (
            predict_spark.read_candidates(found, blocks, min(k, user_items.shape[1]))
            if found is not None
            else None
        )
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
        # the first fetch's depth: k while the re-ranker's candidates are reused or HNSW
        # searches (it recalls better deeper); for exact lists alone, learnt block by block
        depth = p.n * max(p.candidates, 1)
        learn = attrs is None and p.search == "exact"
        for block in blocks:
            items = user_items[block]
            heard = None if p.allow_heard_songs else songs.heard_groups(items, group)
            # the re-ranker's candidates: Spark's (the same k best as `score`) when it fetched
            # them; scored here, they are also the plain list's first fetch (same block, same
            # k when candidates >= 1), so each block is scored once for both lists
            cands = None
            if attrs is not None:
                cands = next(fetched) if fetched is not None else score(block, items, k)
            if name not in spark_lists:
                fetch = songs.block_fetch(score, block, items)
                if cands is not None and fetched is None:
                    fetch = songs.reuse_first(fetch, k, cands)
                needed = np.empty(len(block), dtype=np.int64) if learn else None
                idx, best = songs.plain_lists(
                    fetch,
                    len(block),
                    group,
                    n=p.n,
                    heard=heard,
                    depth=depth,
                    one_per_group=p.one_per_group,
                    needed=needed,
                )
                if needed is not None:
                    depth = songs.next_depth(needed, n=p.n, cap=p.n * max(p.candidates, 1))
                yield 0, predict.ranked_frame(block, idx, best, model_name=name)
            if attrs is not None and cands is not None:
                c_idx, c_best = cands
                if heard is not None:
                    c_idx, c_best = songs.drop_heard_songs(c_idx, c_best, group, heard)
                r_idx, r_best = rerank.rerank(c_idx, c_best, attrs, params)
                yield 1, predict.ranked_frame(block, r_idx, r_best, model_name=name + RERANK_SUFFIX)


def with_ids(frame: pl.DataFrame, catalog: Catalog, generated_at: dt.datetime) -> pl.DataFrame:
    """A `block_frames` frame with user, track and song ids and the run's time (PREDICTIONS)."""
    return frame.with_columns(
        catalog.user_ids.gather(frame[schema.USER_IDX]).alias(schema.USER_ID),
        catalog.track_ids.gather(frame[schema.TRACK_IDX]).alias(schema.TRACK_ID),
        catalog.group_ids.gather(frame[schema.TRACK_IDX]).alias(schema.TRACK_GROUP_ID),
        pl.lit(generated_at, dtype=schema.TIMESTAMP).alias(schema.GENERATED_AT),
    ).select(PREDICTION_COLUMNS)


def similar_frames(
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

    # as for users' lists: 2 x similar_k first, then learnt from the block before (exact only)
    depth = 2 * p.similar_k
    needed = np.empty(p.block_size, dtype=np.int64) if cosine is not None else None
    for start in range(0, len(tracks), p.block_size):
        block = tracks[start : start + p.block_size]
        idx, best = songs.similar_lists(
            functools.partial(fetch, block),
            block,
            group,
            n=p.similar_k,
            depth=depth,
            one_per_group=p.one_per_group,
            needed=None if needed is None else needed[: len(block)],
        )
        if needed is not None:
            depth = songs.next_depth(needed[: len(block)], n=p.similar_k, cap=2 * p.similar_k)
        frame = predict.similar_frame(block, idx, best)
        yield (
            0,
            frame.with_columns(
                catalog.track_ids.gather(frame[schema.TRACK_IDX]).alias(schema.TRACK_ID),
                catalog.track_ids.gather(frame[predict.SIMILAR_TRACK_IDX]).alias(SIMILAR_TRACK_ID),
                pl.lit(name).alias(schema.MODEL),
            ),
        )
