"""Predict's exact lists of factor models on Spark ([predict].engine = "spark").

Also the candidates of their re-ranked lists (each user's n x candidates best unheard tracks),
which the driver reads back block by block (`read_candidates`) for the song rule and the
re-ranker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow.parquet as pq

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import stage_dir
from musicrec_cli.config import Config, PredictConfig
from stages import predict
from stages.models import Recommender
from stages.schema import MODEL, RANK, SCORE, TRACK_IDX, USER_IDX

log = logging.getLogger(__name__)

# tracks per broadcast block of item factors on Spark (128 MiB at 64 factors)
SPARK_BLOCK_ITEMS = 500_000
# key suffix, in `spark_lists`' result, of a model's re-ranking candidates
CANDIDATES = "+candidates"


def read_lists(folder: Path, name: str) -> Iterator[pl.DataFrame]:
    """Ranked lists written by Spark (stages.spark.predict.top_n), in file and row order."""
    from stages.spark import polars_cast
    from stages.spark.predict import LISTS

    for path in sorted(folder.glob("part-*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches():
            frame = polars_cast(pl.from_arrow(batch).lazy(), LISTS)  # type: ignore[union-attr]
            yield frame.with_columns(pl.lit(name).alias(MODEL)).collect()


def spark_lists(
    cfg: Config,
    out: art.StageWriter,
    models: dict[str, Recommender],
    users: npt.NDArray[np.int64],
    group: npt.NDArray[np.int64],
    *,
    p: PredictConfig,
    keep_heard: bool = False,
) -> dict[str, Path]:
    """Exact lists of every factor model on Spark, each into a folder of part files in `out`.

    Args:
        cfg: The configuration ([spark], [paths]).
        out: The predict stage's writer; the folders are made inside it.
        models: Trained models by name; those without item factors are left to the caller.
        users: (b,) user_idx to score.
        group: (n_items,) song code of every track (one version per song).
        p: The [predict] settings as the run applies them (a one-user log allows heard songs).
        keep_heard: Heard tracks stay in the lists (`stages.predict.scorer`'s keep_heard).
    """
    from musicrec_cli.spark import spark_session
    from stages.spark import predict as spark_predict

    root = Path(cfg.paths.artifacts)
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
        keep_heard=keep_heard,
    )
    with spark_session(cfg.spark, workdir=out.partial) as spark:
        train = spark.read.parquet(str(stage_dir(root, "split") / art.TRAIN))
        for name, model in factor_models.items():
            rows = spark_predict.user_rows(spark, model.user_factors, users, train)
            lists = spark_predict.top_n(
                spark,
                rows,
                model.item_factors,
                group,
                settings,
            )
            folders[name] = out.path(f".{name}.spark")
            with out.writing(art.PREDICTIONS):
                lists.write.mode("overwrite").parquet(str(folders[name]))
            if name not in p.rerank_models:
                continue
            found = spark_predict.top_candidates(
                spark, rows, model.item_factors, k=p.n * p.candidates,
                block_items=SPARK_BLOCK_ITEMS, keep_heard=keep_heard,
            )  # fmt: skip
            folders[name + CANDIDATES] = out.path(f".{name}.candidates.spark")
            with out.writing(art.PREDICTIONS):
                found.write.mode("overwrite").parquet(str(folders[name + CANDIDATES]))
    return folders


def read_candidates(
    folder: Path, blocks: list[npt.NDArray[np.int64]], k: int
) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
    """(b, k) track indexes and scores of each block's users, from `top_candidates`' files.

    The files hold (user_idx, rank, track_idx, score) sorted by user and rank, the blocks are
    the same users in the same order: read once, front to back. Index -1 and score -inf pad
    users with fewer than k candidates, as `predict.scorer` pads them.
    """
    from stages.spark import polars_cast
    from stages.spark.predict import LISTS

    scan = polars_cast(pl.scan_parquet(sorted(folder.glob("part-*.parquet"))), LISTS)
    rows = iter(scan.collect_batches())
    pending = pl.DataFrame(schema=LISTS)
    for block in blocks:
        last = int(block[-1]) if len(block) else -1
        while pending.height == 0 or int(pending[USER_IDX][-1]) <= last:
            chunk = next(rows, None)
            if chunk is None:
                break
            pending = pl.concat([pending, chunk])
        mine = pending.filter(pl.col(USER_IDX) <= last)
        pending = pending.filter(pl.col(USER_IDX) > last)
        idx = np.full((len(block), k), -1, dtype=np.int64)
        best = np.full((len(block), k), -np.inf, dtype=np.float32)
        at = np.searchsorted(block, mine[USER_IDX].to_numpy())
        rank = mine[RANK].to_numpy().astype(np.int64) - 1
        idx[at, rank] = mine[TRACK_IDX].to_numpy()
        best[at, rank] = mine[SCORE].to_numpy()
        yield idx, best
