"""The preprocess recipe on Spark: the Polars functions of `stages.preprocess`, distributed.

Spark reads the raw files one per task (`parse_files`: the format readers and `parse_raw` run
on each file as they do on one machine); each file's user and spelling counts are merged in
hash groups of their keys (`merge_user_counts`, `merge_spellings`: exact, a key never spans two
groups); the name keys are computed once per distinct artist name and title on the executors
(`names.artist_keys`, `names.title_keys` through Arrow); the plays are encoded against the
broadcast id map (`encode_plays`), then de-duplicated and aggregated in groups of whole users
(`dedupe_plays`, `aggregate_sorted_plays`). What is left on the driver is small or streamed:
canonical ids from the keyed spellings, the id tables, the k-core and the renumbering.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812

from stages.preprocess import encode, names, parse
from stages.preprocess.columns import SOURCE_FILE
from stages.schema import (
    ARTIST_NAME,
    INTERACTIONS,
    MS_PLAYED,
    PLAYED_AT,
    TRACK_IDX,
    TRACK_NAME,
    USER_ID,
    USER_IDX,
)
from stages.spark import apply_by_groups, map_batches, polars_cast, spark_schema, to_spark_arrow

PATH = "path"
Schema = Mapping[str, pl.DataType]
Work = Callable[[pl.LazyFrame], pl.LazyFrame]


def schema_of(work: Work, schema: Schema) -> dict[str, pl.DataType]:
    """The output schema of `work` on rows of `schema` (Polars plans it without data)."""
    return dict(work(pl.LazyFrame(schema=dict(schema))).collect_schema())


def parse_files(
    spark: SparkSession, files: list[Path], parse_one: Callable[[list[Path]], pl.LazyFrame],
    schema: Schema,
) -> DataFrame:  # fmt: skip
    """Parsed rows of every raw file, one file per task (`parse_one([file])` on an executor).

    Args:
        spark: The session.
        files: Raw files, readable at the same path on every executor.
        parse_one: Files -> the rows of `parse.parse_raw` (the runner's reader and parser).
        schema: The parsed rows' schema (what `parse_one` gives for the first file).
    """

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for path in batch.column(PATH).to_pylist():
                rows = polars_cast(parse_one([Path(path)]), schema).collect(engine="streaming")
                yield from to_spark_arrow(rows).to_batches()

    paths = spark.createDataFrame(pa.table({PATH: [str(f) for f in files]}))
    return paths.repartition(max(1, len(files)), PATH).mapInArrow(run, spark_schema(schema))


def per_partition(frame: DataFrame, work: Work, *, inputs: Schema, schema: Schema) -> DataFrame:
    """`work` on all rows of each partition at once (a partial count per raw file)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        found = list(batches)
        if not found:
            return
        rows = polars_cast(pl.from_arrow(pa.Table.from_batches(found)).lazy(), inputs)  # type: ignore[union-attr]
        yield from to_spark_arrow(polars_cast(work(rows), schema).collect()).to_batches()

    return frame.mapInArrow(run, spark_schema(schema))


def kept_spellings(rows: pl.LazyFrame) -> pl.LazyFrame:
    """`parse.spellings` of the kept rows."""
    return parse.spellings(parse.kept_plays(rows))


def survey_counts(
    parsed: DataFrame, *, schema: Schema, n_groups: int
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(user_reason_counts, spellings, file_reason_counts) of all parsed rows.

    Counted per raw file, then merged in hash groups of their keys, as the Polars engine
    merges its batches.
    """
    out = []
    for count, keys, merge in (
        (parse.user_reason_counts, [USER_ID], parse.merge_user_counts),
        (kept_spellings, list(parse.SPELLING), parse.merge_spellings),
        (parse.file_reason_counts, [SOURCE_FILE], parse.merge_file_counts),
    ):
        partial = schema_of(count, schema)
        parts = per_partition(parsed, count, inputs=schema, schema=partial)
        out.append(
            apply_by_groups(
                parts, merge, keys=keys, n_groups=n_groups, inputs=partial, schema=partial
            )
        )
    return out[0], out[1], out[2]


def name_keys(spell: DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keys of the distinct artist names and titles of `spell`, computed on the executors.

    Returns:
        (artists, titles): `names.artist_keys` and `names.title_keys` of the distinct names.
    """
    found = []
    for column, work in ((ARTIST_NAME, names.artist_keys), (TRACK_NAME, names.title_keys)):
        keyed_schema = schema_of(work, {column: pl.String()})
        distinct = spell.select(column).distinct()
        keyed = map_batches(distinct, work, inputs={column: pl.String()}, schema=keyed_schema)
        table = pl.from_arrow(keyed.toArrow())
        found.append(polars_cast(table.lazy(), keyed_schema).collect())  # type: ignore[union-attr]
    return found[0], found[1]


def encode_plays(
    parsed: DataFrame,
    *,
    schema: Schema,
    id_map: pl.DataFrame,
    users: pl.DataFrame,
    by_hash: bool,
    counted: bool,
) -> tuple[DataFrame, dict[str, pl.DataType]]:
    """`encode.encode_plays` of the kept rows against the broadcast id map; (rows, schema)."""
    maps = parsed.sparkSession.sparkContext.broadcast((id_map.to_arrow(), users.to_arrow()))

    def work(rows: pl.LazyFrame) -> pl.LazyFrame:
        spellings, people = (pl.from_arrow(t) for t in maps.value)
        return encode.encode_plays(
            rows,
            id_map=spellings.lazy(),  # type: ignore[union-attr]
            users=people.lazy(),  # type: ignore[union-attr]
            by_hash=by_hash,
            counted=counted,
        )

    out = dict(
        encode.encode_plays(
            pl.LazyFrame(schema=dict(schema)), id_map=id_map.lazy(), users=users.lazy(),
            by_hash=by_hash, counted=counted,
        ).collect_schema()
    )  # fmt: skip
    kept = parsed.filter(F.col(parse.DROP_REASON).isNull())
    return map_batches(kept, work, inputs=schema, schema=out), out


def dedupe_and_aggregate(
    encoded: DataFrame, *, schema: Schema, plays_schema: Schema, n_groups: int
) -> tuple[DataFrame, DataFrame]:
    """(plays, pairs): de-duplicated plays and their aggregated pairs, sorted as on Polars.

    Plays (`plays_schema`: `encode.dedupe_plays`' columns, a count table's play_count
    included) come sorted by (user_idx, track_idx, played_at, ms_played), pairs by (user_idx,
    track_idx), with the provisional indexes of `encode_plays`.
    """
    plays = apply_by_groups(
        encoded, encode.dedupe_plays, keys=[USER_IDX], n_groups=n_groups, inputs=schema,
        schema=plays_schema,
    ).cache()  # fmt: skip
    pairs = apply_by_groups(
        plays,
        lambda rows: encode.aggregate_sorted_plays(encode.dedupe_plays(rows)),
        keys=[USER_IDX],
        n_groups=n_groups,
        inputs=plays_schema,
        schema=INTERACTIONS,
    )
    return (
        plays.orderBy(USER_IDX, TRACK_IDX, PLAYED_AT, MS_PLAYED),
        pairs.orderBy(USER_IDX, TRACK_IDX),
    )
