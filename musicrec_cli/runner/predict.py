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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow.parquet as pq
import scipy.sparse as sp

from musicrec_cli import artifacts as art
from musicrec_cli import lineage
from musicrec_cli.artifacts import stage_dir
from musicrec_cli.codehash import source_fingerprint
from musicrec_cli.config import Config, ConfigError, PredictConfig, engine_of, table_dict
from musicrec_cli.console import progress
from musicrec_cli.runner import Measure, upstream_inputs
from musicrec_cli.runner.train import load_models
from musicrec_cli.sources import InputError
from stages import ann, predict, rerank, songs
from stages.models import Factorised, Recommender
from stages.preprocess.names import ARTIST_KEY
from stages.schema import (
    ARTIST_ID,
    AUDIO_FEATURES,
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
# tracks per broadcast block of item factors on Spark (128 MiB at 64 factors)
SPARK_BLOCK_ITEMS = 500_000


@dataclass(frozen=True, slots=True, kw_only=True)
class _Catalog:
    """Id lookups by index and the re-ranking attributes of every track."""

    user_ids: pl.Series
    track_ids: pl.Series
    group_ids: pl.Series
    items: pl.DataFrame
    listeners: npt.NDArray[np.int64]
    n_train_users: int


def read_user_file(path: Path) -> pl.Series:
    """User ids from a .parquet or .csv file with a user_id column, or a text file of one per line.

    A text file may start with a `user_id` header line; blank lines and repeats are ignored.

    Raises:
        InputError: The file cannot be read or has no user_id column.
    """
    try:
        if path.suffix.lower() in (".parquet", ".csv"):
            frame = (
                pl.read_parquet(path)
                if path.suffix.lower() == ".parquet"
                else pl.read_csv(path, infer_schema=False)
            )
            if USER_ID not in frame.columns:
                msg = (
                    f"{path}: no {USER_ID!r} column (found {', '.join(frame.columns)}); "
                    f"expected a {USER_ID} column or a text file with one id per line."
                )
                raise InputError(msg)
            ids = frame[USER_ID].cast(pl.String)
        else:
            # utf-8-sig: a byte-order mark (Windows editors) is not part of the first id
            text = path.read_text(encoding="utf-8-sig")
            lines = [line.strip() for line in text.splitlines()]
            ids = pl.Series(USER_ID, lines[lines[:1] == [USER_ID] :], dtype=pl.String)
    except (OSError, UnicodeDecodeError, pl.exceptions.PolarsError) as exc:
        msg = f"{path}: cannot read the user list: {exc}."
        raise InputError(msg) from exc
    return ids.drop_nulls().filter(ids.drop_nulls() != "").unique(maintain_order=True)


def _load_catalog(root: Path, user_items: sp.csr_matrix) -> _Catalog:
    users = pl.read_parquet(stage_dir(root, "preprocess") / art.USERS, columns=[USER_ID, USER_IDX])
    items = pl.read_parquet(stage_dir(root, "preprocess") / art.ITEMS).sort(TRACK_IDX)
    if TRACK_GROUP_ID in items.columns:
        group = pl.col(TRACK_GROUP_ID).cast(pl.String).fill_null(pl.col(TRACK_ID))
    else:
        log.info("items.parquet has no %s column; each track is its own group", TRACK_GROUP_ID)
        group = pl.col(TRACK_ID)
    return _Catalog(
        user_ids=users.sort(USER_IDX)[USER_ID],
        track_ids=items[TRACK_ID],
        group_ids=items.select(group.alias(TRACK_GROUP_ID))[TRACK_GROUP_ID],
        items=items,
        listeners=np.bincount(user_items.indices, minlength=user_items.shape[1]).astype(np.int64),
        n_train_users=int((np.diff(user_items.indptr) > 0).sum()),
    )


def _codes(column: pl.Series) -> npt.NDArray[np.int64]:
    return column.rank("dense").fill_null(0).to_numpy().astype(np.int64)


def _audio_vectors(items: pl.DataFrame) -> npt.NDArray[np.float32]:
    z = rerank.audio_matrix(items)
    if z is None:
        msg = (
            f"01_preprocess/{art.ITEMS}: no audio feature columns ({', '.join(AUDIO_FEATURES)}) "
            f'for [predict].mmr_features = "audio"; set it to "factors" or add a catalog.'
        )
        raise ConfigError(msg)
    return predict.unit_rows(z)


def item_attributes(
    catalog: _Catalog, model: Recommender, name: str, p: PredictConfig
) -> rerank.ItemAttributes:
    """Group and artist codes, novelty and MMR vectors of every track for re-ranking `model`."""
    artist_col = next((c for c in (ARTIST_ID, ARTIST_KEY) if c in catalog.items.columns), None)
    if p.mmr_features == "audio":
        vectors = _audio_vectors(catalog.items)
    elif predict.is_factorised(model):
        vectors = predict.unit_rows(model.item_factors)
    else:
        msg = (
            f"[predict].rerank_models: model {name!r} has no item factors for "
            f'mmr_features = "factors"; set [predict].mmr_features = "audio" or drop it.'
        )
        raise ConfigError(msg)
    return rerank.ItemAttributes(
        group=_codes(catalog.group_ids),
        artist=_codes(catalog.items[artist_col]) if artist_col else None,
        novelty=rerank.novelty_scores(catalog.listeners, n_users=catalog.n_train_users),
        vectors=vectors,
    )


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


def _read_lists(folder: Path, name: str) -> Iterator[pl.DataFrame]:
    """Ranked lists written by Spark (stages.spark.predict.top_n), in file and row order."""
    from stages.spark import polars_cast
    from stages.spark.predict import LISTS

    for path in sorted(folder.glob("part-*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches():
            frame = polars_cast(pl.from_arrow(batch).lazy(), LISTS)  # type: ignore[union-attr]
            yield frame.with_columns(pl.lit(name).alias(MODEL)).collect()


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
    catalog: _Catalog,
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
    group = _codes(catalog.group_ids)
    for name, model in models.items():
        attrs = item_attributes(catalog, model, name, p) if name in p.rerank_models else None
        if name in spark_lists:
            yield from ((0, frame) for frame in _read_lists(spark_lists[name], name))
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


def _with_ids(frame: pl.DataFrame, catalog: _Catalog, generated_at: dt.datetime) -> pl.DataFrame:
    return frame.with_columns(
        catalog.user_ids.gather(frame[USER_IDX]).alias(USER_ID),
        catalog.track_ids.gather(frame[TRACK_IDX]).alias(TRACK_ID),
        catalog.group_ids.gather(frame[TRACK_IDX]).alias(TRACK_GROUP_ID),
        pl.lit(generated_at, dtype=TIMESTAMP).alias(GENERATED_AT),
    ).select(PREDICTION_COLUMNS)


def _stream(
    frames: Iterator[tuple[int, pl.DataFrame]], path: Path, tick: Callable[[], object]
) -> int:
    """Write (part, frame) pairs to one Parquet file (zstd); returns the row count.

    Part 1 frames go to a side file that is appended after all of part 0, so the row order
    (exact lists model by model, then re-ranked lists) does not depend on the block size.
    """
    paths = (path, path.with_name(path.name + ".part1"))
    writers: list[pq.ParquetWriter | None] = [None, None]
    rows = 0
    try:
        for part, frame in frames:
            table = frame.to_arrow()
            writers[part] = writers[part] or pq.ParquetWriter(
                paths[part], table.schema, compression="zstd"
            )
            writers[part].write_table(table)  # type: ignore[union-attr]
            rows += frame.height
            tick()
        if writers[1] is not None:
            writers[1].close()
            writers[1] = None
            main = writers[0]
            for batch in pq.ParquetFile(paths[1]).iter_batches():
                main = main or pq.ParquetWriter(path, batch.schema, compression="zstd")
                main.write_batch(batch)
            writers[0] = main
            paths[1].unlink()
    finally:
        for writer in writers:
            if writer is not None:
                writer.close()
    return rows


def _similar_frames(
    models: dict[str, Recommender], catalog: _Catalog, p: PredictConfig
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
    group = _codes(catalog.group_ids)

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


def _resolve_users(
    catalog: _Catalog, user_items: sp.csr_matrix, users_file: Path | None
) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Users to score and the unknown ids of `users_file` (logged; an error if all unknown)."""
    requested = None if users_file is None else read_user_file(users_file)
    users, unknown = predict.select_users(catalog.user_ids, user_items, requested)
    if unknown:
        log.warning(
            "%d of %d requested user ids are unknown and get no predictions, e.g. %s",
            len(unknown),
            len(unknown) + len(users),
            ", ".join(unknown[:5]),
        )
    if len(users) == 0:
        msg = f"{users_file}: none of its {len(unknown)} user ids is in 01_preprocess/users."
        raise InputError(msg)
    return users, unknown


def _spark_lists(
    cfg: Config,
    out: art.StageWriter,
    models: dict[str, Recommender],
    users: npt.NDArray[np.int64],
    catalog: _Catalog,
) -> dict[str, Path]:
    """Exact lists of every factor model on Spark, each into a folder of part files in `out`."""
    from musicrec_cli.spark import spark_session
    from stages.spark import predict as spark_predict

    p, root = cfg.predict, Path(cfg.paths.artifacts)
    factor_models = {m: f for m, f in models.items() if predict.is_factorised(f)}
    others = [m for m in models if m not in factor_models]
    if others:
        log.info("no item factors, scored on this machine: %s", ", ".join(others))
    if p.search != "exact":
        log.info('the Spark engine scores exactly ([predict].search = "%s" is not used)', p.search)
    folders: dict[str, Path] = {}
    if not factor_models:
        return folders
    settings = spark_predict.ListSettings(
        n=p.n,
        depth=p.n * max(p.candidates, 1),
        one_per_group=p.one_per_group,
        allow_heard_songs=p.allow_heard_songs,
        block_items=SPARK_BLOCK_ITEMS,
    )
    with spark_session(cfg.spark, workdir=out.partial) as spark:
        train = spark.read.parquet(str(stage_dir(root, "split") / art.TRAIN))
        for name, model in factor_models.items():
            rows = spark_predict.user_rows(spark, model.user_factors, users, train)
            lists = spark_predict.top_n(
                spark,
                rows,
                model.item_factors,
                _codes(catalog.group_ids),
                settings,
            )
            folders[name] = out.path(f".{name}.spark")
            with out.writing(art.PREDICTIONS):
                lists.write.mode("overwrite").parquet(str(folders[name]))
    return folders


def _merge_base(root: Path, p: PredictConfig, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of the full predictions a --users run may merge into, else None.

    Only a run over every user, with the same settings, code and upstream manifests, qualifies:
    merging into anything else would mix two runs in one file.
    """
    previous = art.read_manifest(root, "predict")
    if previous is None or previous.get("summary", {}).get("scope") == lineage.SCOPE_USERS:
        return None
    same = (
        previous.get("config") == table_dict(p)
        and previous.get("source_sha256") == source_fingerprint("predict")
        and lineage.recorded_upstream(previous) == lineage.recorded_upstream({"inputs": inputs})
    )
    return previous if same else None


def _merge_rows(root: Path, fresh: Path, users: npt.NDArray[np.int64], out: Path) -> int:
    """Write the previous predictions minus `users`, then `fresh` (their new rows), to `out`."""
    kept = art.scan(root, "predict", art.PREDICTIONS).filter(
        ~pl.col(USER_IDX).is_in(pl.Series(users).cast(pl.UInt32))
    )
    pl.concat([kept, pl.scan_parquet(fresh)], how="vertical_relaxed").sink_parquet(
        out, compression="zstd"
    )
    fresh.unlink()
    return int(pl.scan_parquet(out).select(pl.len()).collect().item())


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
    base = None if users_file is None else _merge_base(root, p, inputs)
    models = load_models(root)
    for name in p.rerank_models:
        if name not in models:
            log.warning("[predict].rerank_models: %r is not in 04_train; not re-ranked", name)
    user_items = art.load_matrix(root, "split", art.TRAIN_MATRIX)
    catalog = _load_catalog(root, user_items)
    users, unknown = _resolve_users(catalog, user_items, users_file)
    blocks = [users[i : i + p.block_size] for i in range(0, len(users), p.block_size)]
    n_sim = -(-user_items.shape[1] // p.block_size) if p.similar_k else 0
    written = [*models, *(m + RERANK_SUFFIX for m in models if m in p.rerank_models)]
    engine = engine_of(cfg, "predict")
    scope = lineage.SCOPE_USERS if users_file is not None and base is None else lineage.SCOPE_ALL
    with art.open_stage(root, "predict") as out:
        spark_lists = _spark_lists(cfg, out, models, users, catalog) if engine == "spark" else {}
        with progress("predict", len(blocks) * len(written) + n_sim) as step:
            frames = (
                (part, _with_ids(f, catalog, generated_at))
                for part, f in _block_frames(
                    models, blocks, user_items, catalog, p, spark_lists, keep_heard=replay
                )
            )
            fresh = out.path(art.PREDICTIONS if base is None else "users.parquet")
            with out.writing(fresh.name):
                rows = _stream(frames, fresh, step)
            if base is not None:
                with out.writing(art.PREDICTIONS):
                    rows = _merge_rows(root, fresh, users, out.path(art.PREDICTIONS))
            similar = _similar_frames(models, catalog, p)
            with out.writing(art.SIMILAR_TRACKS):
                sim_rows = _stream(similar, out.path(art.SIMILAR_TRACKS), step)
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
