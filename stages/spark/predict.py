"""Top-N of factor models on Spark: user partitions x item-factor blocks, heard tracks removed.

Users travel as rows (user_idx, factors, heard tracks); the item factors are cut into blocks
that are broadcast to the executors. Each user partition is scored against one block at a time
by the project's own exact top-k (`stages.predict.FactorTopK`, which drops heard tracks) and
song rules (`stages.songs.plain_lists`: one version per song, no song already heard), so no
(user, track) cross join is ever formed; with several blocks, the per-block lists are merged
with windows over each user's candidates. The lists equal those of the Polars engine.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import scipy.sparse as sp
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F  # noqa: N812

from stages import predict, songs
from stages.schema import RANK, SCORE, TRACK_IDX, USER_IDX
from stages.spark import spark_schema, to_spark_arrow

FACTORS = "factors"
HEARD = "heard"
SONG = "_song"
LISTS = {USER_IDX: pl.UInt32(), RANK: pl.UInt16(), TRACK_IDX: pl.UInt32(), SCORE: pl.Float32()}
_SCORED = {**LISTS, SONG: pl.Int64()}


def user_rows(
    spark: SparkSession,
    user_factors: npt.NDArray[np.float32],
    users: npt.NDArray[np.int64],
    train: DataFrame,
) -> DataFrame:
    """Rows (user_idx, factors, heard) of the users to score.

    Args:
        spark: The session.
        user_factors: (n_users, f) float32.
        users: Sorted user_idx to score.
        train: Training pairs with user_idx, track_idx (02_split/train.parquet).
    """
    f = user_factors.shape[1]
    factors = pa.FixedSizeListArray.from_arrays(
        pa.array(np.ascontiguousarray(user_factors[users]).ravel()), f
    ).cast(pa.list_(pa.float32()))
    table = pa.table({USER_IDX: pa.array(users, pa.int64()), FACTORS: factors})
    heard = train.groupBy(USER_IDX).agg(F.collect_list(F.col(TRACK_IDX).cast("long")).alias(HEARD))
    return spark.createDataFrame(table).join(heard, on=USER_IDX, how="left")


@dataclass(frozen=True, slots=True, kw_only=True)
class ListSettings:
    """What a list holds ([predict]) and the tracks per broadcast block of item factors.

    n tracks, the first fetch's depth, one version per song, whether songs already heard may
    come back ([predict].allow_heard_songs), and whether heard tracks stay in the lists
    (`keep_heard`: one person's log tested on what they play again, as `predict.scorer`).
    """

    n: int
    depth: int
    one_per_group: bool
    allow_heard_songs: bool
    block_items: int
    keep_heard: bool = False


def _heard(batch: pa.RecordBatch, n_items: int) -> sp.csr_matrix:
    """(b, n_items) CSR of the heard tracks of a batch of user rows."""
    heard = batch.column(HEARD)
    lengths = heard.value_lengths().fill_null(0).to_numpy()
    tracks = heard.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    csr = sp.csr_matrix(
        (np.ones(len(tracks), np.float32), tracks, indptr), shape=(len(lengths), n_items)
    )
    csr.sum_duplicates()
    return csr


def _score_block(
    batches: Iterator[pa.RecordBatch],
    items: npt.NDArray[np.float32],
    start: int,
    group: npt.NDArray[np.int64],
    s: ListSettings,
) -> Iterator[pa.RecordBatch]:
    """Lists from one item block for each batch of users, by `stages.songs.plain_lists`.

    Yields (user_idx, rank, track_idx, score, song code) batches.
    """
    top = predict.FactorTopK(items, threads=1)
    block_group = group[start : start + len(items)]
    for batch in batches:
        users = batch.column(USER_IDX).to_numpy().astype(np.int64)
        factors = batch.column(FACTORS).flatten().to_numpy(zero_copy_only=False)
        queries = factors.reshape(len(users), -1).astype(np.float32)
        heard = _heard(batch, len(group))
        if s.keep_heard:  # the history fed the factors; nothing is taken out of the lists
            heard = sp.csr_matrix(heard.shape, dtype=heard.dtype)
        in_block = heard[:, start : start + len(items)].tocsr()
        heard_songs = None if s.allow_heard_songs else songs.heard_groups(heard, group)
        idx, best = songs.plain_lists(
            songs.block_fetch(top, queries, in_block),
            len(users),
            block_group,
            n=s.n,
            heard=heard_songs,
            depth=s.depth,
            one_per_group=s.one_per_group,
        )
        idx = np.where(idx >= 0, idx + start, -1)
        frame = predict.ranked_frame(users, idx, best, model_name="")
        frame = frame.with_columns(pl.Series(SONG, group[frame[TRACK_IDX].to_numpy()]))
        yield from to_spark_arrow(frame.select(list(_SCORED))).to_batches()


def top_n(
    spark: SparkSession,
    users: DataFrame,
    item_factors: npt.NDArray[np.float32],
    group: npt.NDArray[np.int64],
    settings: ListSettings,
) -> DataFrame:
    """Each user's list, as the Polars engine makes it: (user_idx, rank, track_idx, score).

    Args:
        spark: The session (broadcasts the item blocks and the group codes).
        users: From `user_rows`; heard may be null (no training pairs).
        item_factors: (n_items, f) float32.
        group: (n_items,) int64 song (track_group_id) code of every track.
        settings: List length and the song rules.

    Returns:
        Sorted by (user_idx, rank). With several item blocks, each block's lists are merged
        per user: the best version of each song, then the best n by (score, lower track_idx).
        A song in the overall top n is in the top n of the block holding its best version,
        so the merge is exact.
    """
    users = users.withColumn(HEARD, F.coalesce(F.col(HEARD), F.array().cast("array<long>")))
    codes = spark.sparkContext.broadcast(group)
    parts = []
    for start in range(0, len(item_factors), settings.block_items):
        block = spark.sparkContext.broadcast(item_factors[start : start + settings.block_items])

        def score(
            batches: Iterator[pa.RecordBatch], block: Any = block, start: int = start
        ) -> Iterator[pa.RecordBatch]:
            return _score_block(batches, block.value, start, codes.value, settings)

        parts.append(users.mapInArrow(score, spark_schema(_SCORED)))
    lists = functools.reduce(DataFrame.unionByName, parts)
    if len(parts) > 1:
        best_first = [F.col(SCORE).desc(), F.col(TRACK_IDX)]
        if settings.one_per_group:
            per_song = Window.partitionBy(USER_IDX, SONG).orderBy(*best_first)
            lists = lists.withColumn("_nth", F.row_number().over(per_song)).filter("_nth = 1")
        per_user = Window.partitionBy(USER_IDX).orderBy(*best_first)
        lists = lists.withColumn(RANK, F.row_number().over(per_user)).filter(
            F.col(RANK) <= settings.n
        )
    return lists.select(list(LISTS)).orderBy(USER_IDX, RANK)


def _candidates_block(
    batches: Iterator[pa.RecordBatch],
    items: npt.NDArray[np.float32],
    start: int,
    n_items: int,
    k: int,
    *,
    keep_heard: bool,
) -> Iterator[pa.RecordBatch]:
    """The k best tracks of one item block for each batch of users (FactorTopK, heard out)."""
    top = predict.FactorTopK(items, threads=1)
    for batch in batches:
        users = batch.column(USER_IDX).to_numpy().astype(np.int64)
        factors = batch.column(FACTORS).flatten().to_numpy(zero_copy_only=False)
        queries = factors.reshape(len(users), -1).astype(np.float32)
        heard = _heard(batch, n_items)
        if keep_heard:
            heard = sp.csr_matrix(heard.shape, dtype=heard.dtype)
        idx, best = top(queries, heard[:, start : start + len(items)].tocsr(), k)
        idx = np.where(idx >= 0, idx + start, -1)
        frame = predict.ranked_frame(users, idx, best, model_name="")
        yield from to_spark_arrow(frame.select(list(LISTS))).to_batches()


def top_candidates(
    spark: SparkSession,
    users: DataFrame,
    item_factors: npt.NDArray[np.float32],
    *,
    k: int,
    block_items: int,
    keep_heard: bool = False,
) -> DataFrame:
    """Each user's k best tracks by score, as `predict.scorer` fetches them for the re-ranker.

    Heard tracks are left out unless `keep_heard`; no song rule is applied (the driver's
    `songs.drop_heard_songs` and `rerank.rerank` take it from here, k per user: the lists the
    driver re-ranks stay small). With several item blocks, each block's k best are merged per
    user by (score, lower track_idx): the overall k best are among them.

    Returns:
        (user_idx, rank, track_idx, score), sorted by (user_idx, rank).
    """
    users = users.withColumn(HEARD, F.coalesce(F.col(HEARD), F.array().cast("array<long>")))
    n_items = len(item_factors)
    parts = []
    for start in range(0, n_items, block_items):
        block = spark.sparkContext.broadcast(item_factors[start : start + block_items])

        def fetch(
            batches: Iterator[pa.RecordBatch], block: Any = block, start: int = start
        ) -> Iterator[pa.RecordBatch]:
            return _candidates_block(batches, block.value, start, n_items, k, keep_heard=keep_heard)

        parts.append(users.mapInArrow(fetch, spark_schema(LISTS)))
    found = functools.reduce(DataFrame.unionByName, parts)
    if len(parts) > 1:
        per_user = Window.partitionBy(USER_IDX).orderBy(F.col(SCORE).desc(), F.col(TRACK_IDX))
        found = found.withColumn(RANK, F.row_number().over(per_user)).filter(F.col(RANK) <= k)
    return found.select(list(LISTS)).orderBy(USER_IDX, RANK)
