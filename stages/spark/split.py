"""The split on Spark: the same protocols and rules as `stages.split`, on every user group.

`split_users` is exact on any subset of users, so it runs on hash groups of users as it is;
only "track known in train" needs all users, and is a Spark semi-join.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import polars as pl
from pyspark.sql import DataFrame
from pyspark.sql import functions as F  # noqa: N812

from stages import split
from stages.schema import INTERACTIONS, PLAYS, TRACK_IDX, USER_IDX
from stages.spark import apply_by_groups

PART = "_part"  # 0 train, 1 test candidate, 2 replay candidate
_PARTS = {**INTERACTIONS, PART: pl.Int32()}


@dataclass(frozen=True, slots=True, kw_only=True)
class SparkSplit:
    """Train, test and replay (schema INTERACTIONS, widened), each sorted by the pair."""

    train: DataFrame
    test: DataFrame
    replay: DataFrame


def _all_parts(
    plays: pl.LazyFrame,
    *,
    params: split.SplitParams,
    cutoff: dt.datetime | None,
    held_out: pl.DataFrame | None,
) -> pl.LazyFrame:
    parts = split.split_users(
        plays, params=params, cutoff=cutoff, held_out=None if held_out is None else held_out.lazy()
    )
    return pl.concat(
        [
            frame.with_columns(pl.lit(i, pl.Int32).alias(PART))
            for i, frame in enumerate((parts.train, parts.test, parts.replay))
        ]
    )


def split_plays(
    plays: DataFrame,
    *,
    params: split.SplitParams,
    cutoff: dt.datetime | None,
    held_out: pl.DataFrame | None,
    n_groups: int,
) -> SparkSplit:
    """The rows of `stages.split.split_plays` for `plays` (schema PLAYS), on Spark.

    Args:
        plays: Schema PLAYS.
        params: The protocol.
        cutoff: The global cut-off (temporal only), from `stages.split.temporal_cutoff`.
        held_out: Column user_idx of the held-out users (held-out-users only).
        n_groups: User groups split one by one (each held in memory by one worker).
    """
    work = functools.partial(_all_parts, params=params, cutoff=cutoff, held_out=held_out)
    parts = apply_by_groups(
        plays, work, keys=[USER_IDX], n_groups=n_groups, inputs=PLAYS, schema=_PARTS
    ).cache()
    train = parts.filter(F.col(PART) == 0).drop(PART)
    known = train.select(TRACK_IDX).distinct()
    order = [USER_IDX, TRACK_IDX]

    def view(part: int) -> DataFrame:
        rows = parts.filter(F.col(PART) == part).drop(PART)
        return rows.join(known, on=TRACK_IDX, how="left_semi").select(train.columns).orderBy(order)

    return SparkSplit(train=train.orderBy(order), test=view(1), replay=view(2))
