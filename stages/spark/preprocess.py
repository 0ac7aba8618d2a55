"""The preprocess recipe on Spark: the Polars functions of `stages.preprocess`, distributed.

The raw log is never held by Spark. A `Source` is a Spark frame whose partitions are pieces of
the log (one raw file each, or a partition of rows a Spark reader read) and the function that
parses a piece with the runner's reader and `parse_raw`; each pass parses every piece again on
the executors, as the Polars engine scans the files twice, so only small counts and the
narrow encoded plays cross from Python to the JVM.

Survey: each piece's user, spelling and file counts (one tagged frame), merged in hash groups
of their keys (`merge_user_counts`, ...: exact, a key never spans two groups); the name keys
once per distinct artist name and title (`names.artist_keys`, `names.title_keys`). Second
pass: each piece's kept rows encoded against the broadcast id map (`encode_plays`, one join
per piece), range-partitioned by user, then each partition de-duplicated (`dedupe_plays`) and
aggregated (`aggregate_sorted_plays`) where it lies: the partitions come out in user order and
sorted inside, so plays and pairs are sorted with one shuffle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812

from stages.preprocess import encode, names, parse
from stages.preprocess.columns import SOURCE_FILE
from stages.schema import ARTIST_NAME, INTERACTIONS, TRACK_NAME, USER_ID, USER_IDX
from stages.spark import apply_by_groups, map_batches, polars_cast, spark_schema, to_spark_arrow

Schema = Mapping[str, pl.DataType]
Work = Callable[[pl.LazyFrame], pl.LazyFrame]


def schema_of(work: Work, schema: Schema) -> dict[str, pl.DataType]:
    """The output schema of `work` on rows of `schema` (Polars plans it without data)."""
    return dict(work(pl.LazyFrame(schema=dict(schema))).collect_schema())


PIECE = "piece"
PART = "_part"
# rows of one piece handed to a Polars function at once (bounds a worker's memory)
_BATCH_ROWS = 1_000_000


@dataclass(frozen=True, slots=True)
class Source:
    """The raw log as pieces: `frame`'s partitions, each parsed by `parse` on an executor.

    `parse` turns the Arrow rows of one partition of `frame` into the parsed rows of
    `parse.parse_raw` (in `schema`).
    """

    frame: DataFrame
    parse: Callable[[pa.Table], pl.LazyFrame]
    schema: dict[str, pl.DataType]


def file_source(
    spark: SparkSession, files: list[Path], parse_one: Callable[[list[Path]], pl.LazyFrame],
    schema: Schema,
) -> Source:  # fmt: skip
    """Local raw files (at the same path on every executor), one per partition and task.

    Args:
        spark: The session.
        files: Raw files, readable at the same path on every executor.
        parse_one: Files -> the rows of `parse.parse_raw` (the runner's reader and parser).
        schema: The parsed rows' schema (what `parse_one` gives for the first file).
    """
    names_ = [str(f) for f in files]

    def parse_piece(rows: pa.Table) -> pl.LazyFrame:
        return parse_one([Path(names_[i]) for i in rows.column(PIECE).to_pylist()])

    # spark.range splits ids evenly: one file per partition (a hash repartition may not)
    frame = spark.range(len(files), numPartitions=max(1, len(files))).withColumnRenamed("id", PIECE)
    return Source(frame, parse_piece, dict(schema))


def native_source(native: DataFrame, work: Work, *, inputs: Schema, schema: Schema) -> Source:
    """Rows a Spark reader read (a URI input): each partition parsed by `work` (`parse_raw`)."""

    def parse_piece(rows: pa.Table) -> pl.LazyFrame:
        return work(polars_cast(pl.from_arrow(rows).lazy(), inputs))  # type: ignore[union-attr]

    return Source(native, parse_piece, dict(schema))


def per_piece(source: Source, work: Work, *, schema: Schema) -> DataFrame:
    """`work` on the parsed rows of each piece of `source` (the piece parsed on the executor)."""
    parse_piece, parsed = source.parse, source.schema  # not `source`: its frame stays here

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        found = list(batches)
        if not found:
            return
        rows = polars_cast(parse_piece(pa.Table.from_batches(found)), parsed)
        out = polars_cast(work(rows), schema).collect(engine="streaming")
        yield from to_spark_arrow(out).to_batches(max_chunksize=_BATCH_ROWS)

    return source.frame.mapInArrow(run, spark_schema(schema))


def per_partition(frame: DataFrame, work: Work, *, inputs: Schema, schema: Schema) -> DataFrame:
    """`work` on all rows of each partition of `frame` at once (narrow: no shuffle)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        found = list(batches)
        if not found:
            return
        rows = polars_cast(pl.from_arrow(pa.Table.from_batches(found)).lazy(), inputs)  # type: ignore[union-attr]
        out = polars_cast(work(rows), schema).collect(engine="in-memory")
        yield from to_spark_arrow(out).to_batches(max_chunksize=_BATCH_ROWS)

    return frame.mapInArrow(run, spark_schema(schema))


def kept_spellings(rows: pl.LazyFrame) -> pl.LazyFrame:
    """`parse.spellings` of the kept rows."""
    return parse.spellings(parse.kept_plays(rows))


_SURVEY = (
    (parse.user_reason_counts, [USER_ID], parse.merge_user_counts),
    (kept_spellings, list(parse.SPELLING), parse.merge_spellings),
    (parse.file_reason_counts, [SOURCE_FILE], parse.merge_file_counts),
)


def survey_counts(source: Source, *, n_groups: int) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(user_reason_counts, spellings, file_reason_counts) of all parsed rows.

    Each piece is parsed once and counted three ways (one frame, a tag per count, cached:
    the counts are small); the counts are merged in hash groups of their keys, as the Polars
    engine merges its batches.
    """
    partials = [schema_of(count, source.schema) for count, _, _ in _SURVEY]
    tagged = {PART: pl.Int32()} | {
        f"{i}:{c}": d for i, partial in enumerate(partials) for c, d in partial.items()
    }

    def counts(rows: pl.LazyFrame) -> pl.LazyFrame:
        parsed = rows.collect(engine="streaming").lazy()  # parsed once, counted three ways
        found = pl.collect_all([count(parsed) for count, _, _ in _SURVEY])
        return pl.concat(
            [
                frame.rename({c: f"{i}:{c}" for c in frame.columns}).with_columns(
                    pl.lit(i, pl.Int32).alias(PART)
                )
                for i, frame in enumerate(found)
            ],
            how="diagonal",
        ).lazy()

    parts = per_piece(source, counts, schema=tagged).cache()
    out = []
    for i, ((_, keys, merge), partial) in enumerate(zip(_SURVEY, partials, strict=True)):
        mine = parts.filter(F.col(PART) == i).select(
            [F.col(f"`{i}:{c}`").alias(c) for c in partial]
        )
        out.append(
            apply_by_groups(
                mine, merge, keys=keys, n_groups=n_groups, inputs=partial, schema=partial
            )
        )
    return out[0], out[1], out[2]


def bad_rows(source: Source, *, n: int) -> tuple[DataFrame, dict[str, pl.DataType]]:
    """`parse.bad_examples` of each piece (n each at most); (rows, schema)."""
    schema = schema_of(lambda r: parse.bad_examples(r, n=n), source.schema)
    return per_piece(source, lambda r: parse.bad_examples(r, n=n), schema=schema), schema


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
    source: Source,
    *,
    id_map: pl.DataFrame,
    users: pl.DataFrame,
    by_hash: bool,
    counted: bool,
) -> tuple[DataFrame, dict[str, pl.DataType]]:
    """`encode.encode_plays` of each piece's kept rows against the broadcast id map.

    One join per piece (not per Arrow batch of 10,000 rows): the id map's hash table is
    built once per piece. Returns (rows, schema).
    """
    spark = source.frame.sparkSession
    maps = spark.sparkContext.broadcast((id_map.to_arrow(), users.to_arrow()))

    def work(rows: pl.LazyFrame) -> pl.LazyFrame:
        spellings, people = (pl.from_arrow(t) for t in maps.value)
        return encode.encode_plays(
            parse.kept_plays(rows),
            id_map=spellings.lazy(),  # type: ignore[union-attr]
            users=people.lazy(),  # type: ignore[union-attr]
            by_hash=by_hash,
            counted=counted,
        )

    out = dict(
        encode.encode_plays(
            pl.LazyFrame(schema=dict(source.schema)), id_map=id_map.lazy(), users=users.lazy(),
            by_hash=by_hash, counted=counted,
        ).collect_schema()
    )  # fmt: skip
    return per_piece(source, work, schema=out), out


def dedupe_and_aggregate(
    encoded: DataFrame, *, schema: Schema, plays_schema: Schema, n_groups: int
) -> tuple[DataFrame, DataFrame]:
    """(plays, pairs): de-duplicated plays and their aggregated pairs, sorted as on Polars.

    The encoded rows are range-partitioned by user_idx into `n_groups` partitions (a user's
    rows in one; the partitions in user order); each partition is de-duplicated and sorted
    (`encode.dedupe_plays`) and its pairs aggregated (`encode.aggregate_sorted_plays`) where
    it lies. Plays (`plays_schema`: `encode.dedupe_plays`' columns, a count table's
    play_count included) come sorted by (user_idx, track_idx, played_at, ms_played), pairs by
    (user_idx, track_idx), with the provisional indexes of `encode_plays`.
    """
    ranged = encoded.drop(encode.BUCKET).repartitionByRange(n_groups, F.col(USER_IDX))
    inputs = {c: d for c, d in schema.items() if c != encode.BUCKET}
    plays = per_partition(ranged, encode.dedupe_plays, inputs=inputs, schema=plays_schema)
    pairs = per_partition(
        plays, encode.aggregate_sorted_plays, inputs=plays_schema, schema=INTERACTIONS
    )
    return plays, pairs
