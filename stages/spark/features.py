"""The features stage on Spark: the functions of `stages.features`, distributed.

Confidence weights are row-local (`map_batches`); user features depend only on the user's rows
(hash groups of users); item features depend only on the track's train rows and its items row,
so train and items are co-grouped by a hash of track_idx and `features.item_features` runs on
each pair of groups as it is. Every output comes sorted as the Polars engine writes it.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping

import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F  # noqa: N812

from stages import features
from stages.schema import AUDIO_FEATURES, INTERACTIONS, TRACK_IDX, USER_IDX
from stages.spark import (
    GROUP,
    apply_by_groups,
    key_groups,
    map_batches,
    polars_cast,
    spark_schema,
    to_spark_arrow,
)
from stages.spark.preprocess import schema_of

Schema = Mapping[str, pl.DataType]


def confidence_weights(
    train: DataFrame, *, cutoff: dt.datetime | None, half_life_days: float, recency_floor: float
) -> tuple[DataFrame, dict[str, pl.DataType]]:
    """`features.confidence_weights` of train (schema INTERACTIONS), sorted by the pair."""
    work = functools.partial(
        features.confidence_weights,
        cutoff=cutoff,
        half_life_days=half_life_days,
        recency_floor=recency_floor,
    )
    schema = schema_of(work, INTERACTIONS)
    weighted = map_batches(train, work, inputs=INTERACTIONS, schema=schema)
    return weighted.orderBy(USER_IDX, TRACK_IDX), schema


def user_features(
    train: DataFrame, *, cutoff: dt.datetime | None, n_groups: int
) -> tuple[DataFrame, dict[str, pl.DataType]]:
    """`features.user_features` of train on hash groups of users, sorted by user_idx."""
    work = functools.partial(features.user_features, cutoff=cutoff)
    schema = schema_of(work, INTERACTIONS)
    users = apply_by_groups(
        train, work, keys=[USER_IDX], n_groups=n_groups, inputs=INTERACTIONS, schema=schema
    )
    return users.orderBy(USER_IDX), schema


def item_features(
    train: DataFrame, items: DataFrame, *, items_schema: Schema, n_users: int, n_groups: int
) -> tuple[DataFrame, dict[str, pl.DataType]]:
    """`features.item_features` on train and items co-grouped by track, sorted by track_idx.

    Args:
        train: Schema INTERACTIONS.
        items: 01_preprocess items (track_idx and any audio features are used).
        items_schema: The project's dtypes of `items`' columns.
        n_users: Distinct users in train (`stages.interactions.count_users`).
        n_groups: Hash groups of tracks (each held in memory by one worker).
    """
    audio = [c for c in AUDIO_FEATURES if c in items_schema]
    item_cols = {c: items_schema[c] for c in (TRACK_IDX, *audio)}
    work = functools.partial(features.item_features, n_users=n_users)
    schema = dict(
        work(pl.LazyFrame(schema=dict(INTERACTIONS)), pl.LazyFrame(schema=item_cols))
        .collect_schema()
    )  # fmt: skip

    def run(left: pa.Table, right: pa.Table) -> pa.Table:
        rows = polars_cast(pl.from_arrow(left).lazy(), INTERACTIONS)  # type: ignore[union-attr]
        tracks = polars_cast(pl.from_arrow(right).lazy(), item_cols)  # type: ignore[union-attr]
        return to_spark_arrow(polars_cast(work(rows, tracks), schema).collect())

    def grouped(frame: DataFrame, columns: list[str]) -> object:
        group = key_groups([F.col(TRACK_IDX)], n_groups=n_groups)
        return frame.select(*columns).withColumn(GROUP, group).groupBy(GROUP)

    cogrouped = grouped(train, list(INTERACTIONS)).cogroup(grouped(items, list(item_cols)))  # type: ignore[attr-defined]
    out: DataFrame = cogrouped.applyInArrow(run, spark_schema(schema))
    return out.orderBy(TRACK_IDX), schema
