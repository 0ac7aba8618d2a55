"""The Spark engine: the same stages on Spark DataFrames, imported only when engine = "spark".

Spark moves and groups the data (shuffles, joins, ALS); the rules themselves are the Polars
stage functions, applied through Arrow to whole groups of users (`apply_by_users`), so the two
engines cannot drift apart. Spark has no unsigned integers: frames leave a Polars function with
UInt* columns widened to signed ones (`spark_schema`), and `polars_cast` restores the project's
dtypes when an artifact is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import polars as pl
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F  # noqa: N812
from pyspark.sql import types as T  # noqa: N812

GROUP = "_group"
_SPARK_TYPES: dict[type[pl.DataType], T.DataType] = {
    pl.UInt16: T.IntegerType(),
    pl.UInt32: T.LongType(),
    pl.UInt64: T.LongType(),
    pl.Int32: T.IntegerType(),
    pl.Int64: T.LongType(),
    pl.Float32: T.FloatType(),
    pl.Float64: T.DoubleType(),
    pl.String: T.StringType(),
    pl.Boolean: T.BooleanType(),
    pl.Datetime: T.TimestampType(),
}
_WIDER: dict[type[pl.DataType], type[pl.DataType]] = {
    pl.UInt16: pl.Int32,
    pl.UInt32: pl.Int64,
    pl.UInt64: pl.Int64,
}


def spark_schema(schema: Mapping[str, pl.DataType]) -> T.StructType:
    """The Spark schema of a Polars schema (UInt32 -> long, Datetime -> timestamp, ...)."""
    return T.StructType(
        [T.StructField(name, _SPARK_TYPES[type(dtype)], True) for name, dtype in schema.items()]
    )


def to_spark_arrow(frame: pl.DataFrame) -> pa.Table:
    """`frame` as Arrow in the types `spark_schema` declares.

    Unsigned integers are widened, and strings are Arrow's `string` (Polars gives
    `large_string`, which Spark's grouped Arrow UDFs refuse).
    """
    wide = {c: _WIDER[type(d)]() for c, d in frame.schema.items() if type(d) in _WIDER}
    table = frame.cast(wide).to_arrow()  # type: ignore[arg-type]
    fields = [
        pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def polars_cast(frame: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """A frame read back from Spark's Parquet, in the project's dtypes and column order."""
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


def key_groups(keys: list[Column], *, n_groups: int) -> Column:
    """A group number in [0, n_groups) from a hash of `keys`: equal keys, the same group."""
    return F.pmod(F.xxhash64(*keys), F.lit(n_groups))


def apply_by_groups(
    frame: DataFrame,
    work: Callable[[pl.LazyFrame], pl.LazyFrame],
    *,
    keys: list[str],
    n_groups: int,
    inputs: Mapping[str, pl.DataType],
    schema: Mapping[str, pl.DataType],
) -> DataFrame:
    """Run a Polars stage function on `frame` one hash group of its `keys` at a time.

    Exact for functions whose result for a key depends only on that key's rows (per user: the
    de-duplication and aggregation of plays, the split; per spelling: its play count). A group
    is held in memory by one Python worker: choose `n_groups` so that a group's rows fit
    (Spark's own warning for applyInArrow).

    Args:
        frame: Rows with the `keys` columns.
        work: LazyFrame -> LazyFrame with (at least) the columns of `schema`.
        keys: The grouping columns.
        n_groups: Number of groups the users are hashed into.
        inputs: The project's dtypes of the input columns (e.g. PLAYS), restored before `work`
            runs: hashes and sorts depend on them.
        schema: Output schema (Polars dtypes).
    """

    def run(table: pa.Table) -> pa.Table:
        rows = polars_cast(pl.from_arrow(table).lazy(), inputs)  # type: ignore[union-attr]
        out = polars_cast(work(rows), schema).collect(engine="in-memory")
        return to_spark_arrow(out)

    group = key_groups([F.col(k) for k in keys], n_groups=n_groups)
    grouped = frame.withColumn(GROUP, group).groupBy(GROUP)
    return grouped.applyInArrow(run, spark_schema(schema))


def map_batches(
    frame: DataFrame,
    work: Callable[[pl.LazyFrame], pl.LazyFrame],
    *,
    inputs: Mapping[str, pl.DataType],
    schema: Mapping[str, pl.DataType],
) -> DataFrame:
    """Run a row-local Polars function on each Arrow batch of `frame` (mapInArrow).

    `inputs` are the project's dtypes of the input columns, restored first; the output is
    cast to `schema`.
    """

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = polars_cast(pl.from_arrow(batch).lazy(), inputs)  # type: ignore[union-attr]
            yield from to_spark_arrow(polars_cast(work(rows), schema).collect()).to_batches()

    return frame.mapInArrow(run, spark_schema(schema))
