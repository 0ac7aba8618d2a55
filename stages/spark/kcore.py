"""The k-core filter and the renumbering of preprocess, on Spark DataFrames.

`kcore` is `stages.preprocess.encode.kcore` as Spark joins and group-bys over the aggregated
pairs (the large frame); what it returns is one index per kept user and track, as the Polars
engine returns them. `reindex` renumbers the pairs or plays on the executors with the very
`encode.reindex` of the Polars engine and its lookup arrays, broadcast (4 bytes per user or
track), batch by batch: the rows keep their order, so a sorted frame stays sorted.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl
from pyspark.sql import DataFrame
from pyspark.sql import functions as F  # noqa: N812

from stages.preprocess import encode
from stages.schema import TRACK_IDX, USER_IDX
from stages.spark import map_batches, polars_cast

_INDEX = {USER_IDX: pl.UInt32(), TRACK_IDX: pl.UInt32()}


def _kept(frame: DataFrame, column: str, minimum: int) -> DataFrame:
    """Values of `column` with at least `minimum` rows in `frame`, materialised on the executors.

    localCheckpoint cuts the lineage: round n does not recompute rounds 1..n-1.
    """
    counts = frame.groupBy(column).agg(F.count(F.lit(1)).alias("n"))
    return counts.filter(F.col("n") >= minimum).select(column).localCheckpoint()


def _collect(frame: DataFrame, column: str) -> pl.DataFrame:
    """One index column on the driver, sorted, in the project's dtype (as `encode.kcore` gives)."""
    table = pl.from_arrow(frame.toArrow())
    return polars_cast(table.lazy(), {column: _INDEX[column]}).sort(column).collect()  # type: ignore[union-attr]


def kcore(
    pairs: DataFrame, *, min_user_tracks: int, min_track_users: int, max_rounds: int
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """`encode.kcore` on Spark: the same rounds, the same stopping rule, the same result.

    Args:
        pairs: Aggregated pairs (user_idx, track_idx, ...), ideally cached: every round
            reads them.
        min_user_tracks: Tracks a user needs in a round to stay.
        min_track_users: Users a track needs in a round to stay.
        max_rounds: At most this many rounds; fewer when a round removes nothing.

    Returns:
        (user_idx frame, track_idx frame, rounds run), sorted, UInt32, on the driver.
    """
    users = pairs.select(USER_IDX).distinct().localCheckpoint()
    tracks = pairs.select(TRACK_IDX).distinct().localCheckpoint()
    n_users, n_tracks = users.count(), tracks.count()
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007
        current = pairs.join(users, on=USER_IDX, how="left_semi").join(
            tracks, on=TRACK_IDX, how="left_semi"
        )
        new_users = _kept(current, USER_IDX, min_user_tracks)
        new_tracks = _kept(current, TRACK_IDX, min_track_users)
        counted = new_users.count(), new_tracks.count()
        stable = counted == (n_users, n_tracks)
        users, tracks, (n_users, n_tracks) = new_users, new_tracks, counted
        if stable:
            break
    return _collect(users, USER_IDX), _collect(tracks, TRACK_IDX), rounds


def reindex(
    frame: DataFrame,
    *,
    schema: Mapping[str, pl.DataType],
    users: np.ndarray,
    tracks: np.ndarray,
) -> DataFrame:
    """`encode.reindex` of `frame` (rows of `schema`) on the executors; row order kept.

    Args:
        frame: Pairs or plays with provisional user_idx and track_idx.
        schema: The project's dtypes of `frame`'s columns (PLAYS, INTERACTIONS, ...).
        users: `encode.index_lookup` of the kept users.
        tracks: `encode.index_lookup` of the kept tracks.
    """
    lookups = frame.sparkSession.sparkContext.broadcast((users, tracks))

    def work(rows: pl.LazyFrame) -> pl.LazyFrame:
        by_user, by_track = lookups.value
        return encode.reindex(rows, users=by_user, tracks=by_track)

    return map_batches(frame, work, inputs=schema, schema=schema)
