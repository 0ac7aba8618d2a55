"""The Spark passes of the preprocess stage (engine = "spark"): survey and buckets on Spark.

`runner.preprocess` runs the same recipe either way; on Spark the two passes over the raw
events (counts and name keys; encoding, de-duplication and aggregation) run on the cluster
through `stages.spark.preprocess`, and their small or sorted outputs come back as the frames
and files the Polars passes make, so everything after them is shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import StageWriter
from musicrec_cli.inputs import Entry
from musicrec_cli.sources import InputError, csv_options, file_kind
from musicrec_cli.spark import write_artifact
from stages.preprocess import encode, mapped, names, parse
from stages.preprocess.columns import SOURCE_FILE
from stages.preprocess.formats import PRESETS, Preset
from stages.schema import INTERACTIONS, TRACK_URI
from stages.spark import kcore as spark_kcore
from stages.spark import polars_cast
from stages.spark import preprocess as spark_pp

# user and spelling counts are merged in this many hash groups (their rows are small)
SURVEY_GROUPS = 16


def _collect(frame: Any, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """A (small) Spark frame on the driver, in the project's dtypes."""
    return polars_cast(pl.from_arrow(frame.toArrow()).lazy(), schema).collect()  # type: ignore[union-attr]


def read_uris(spark: Any, chosen: list[Entry], preset: Preset) -> Any:
    """The native rows of a URI input's files, read by Spark's own readers, with source_file.

    Parquet as it is; delimited text (CSV, TSV, gzipped or not) as text columns, with the
    separator, header and quoting `sources.csv_options` finds in the first file's first line
    (the other files are taken to share it), and the format's column names where it has them.
    source_file is Spark's `_metadata.file_path`, the `uri` of `musicrec_cli.spark.list_uri`.

    Raises:
        InputError: JSON files, or Parquet and text mixed (read those from a local copy).
    """
    from pyspark.sql import functions as F  # noqa: N812

    uris = [e.uri or str(e.path) for e in chosen]
    kinds = sorted({file_kind(Path(e.name)) for e in chosen})
    if kinds not in (["parquet"], ["csv"]):
        msg = (
            f"{chosen[0].shown}: a URI input is read as Parquet or as delimited text (CSV/TSV), "
            f"one kind per input; found {', '.join(kinds)} files. Read JSON exports from a "
            "local copy."
        )
        raise InputError(msg)
    if kinds == ["parquet"]:
        frame = spark.read.parquet(*uris)
    else:
        first = spark.read.text(uris[0]).limit(1).collect()
        options = csv_options(first[0].value if first else "", name=chosen[0].name, preset=preset)
        reader = spark.read.options(
            sep=options.separator,
            header=str(options.has_header).lower(),
            quote=options.quote_char or "",  # "" turns quoting off
            escape='"',
            mode="PERMISSIVE",
        )
        if preset.columns:
            reader = reader.schema(", ".join(f"`{c}` STRING" for c in preset.columns))
        frame = reader.csv(uris)
    return frame.withColumn(SOURCE_FILE, F.col("_metadata.file_path"))


def read_names(spark: Any, found: list[Entry]) -> pl.LazyFrame | None:
    """`preprocess_side.scan_names` of a URI input's names tables, read by Spark (one row per id).

    A names table is small (one row per track id): it is collected to the driver.
    """
    tables = []
    for entry in found:
        native = read_uris(spark, [entry], PRESETS["counts"])
        rows = pl.from_arrow(native.toArrow())
        assert isinstance(rows, pl.DataFrame)
        try:
            tables.append(mapped.names_table(rows.lazy(), entry.shown))
        except pl.exceptions.PolarsError as exc:
            msg = f"{entry.shown}: cannot read as a names table: {str(exc).splitlines()[0]}"
            raise InputError(msg) from exc
    if not tables:
        return None
    return pl.concat(tables).unique(TRACK_URI, keep="first", maintain_order=True)


class SparkPasses:
    """Both passes over the raw log on Spark; each parses the log's pieces again (`Source`)."""

    def __init__(
        self, source: spark_pp.Source, *, native: dict[str, pl.DataType] | None = None
    ) -> None:
        self.source = source
        self.schema = source.schema
        self.native = native  # the reader's columns, for a URI input

    @classmethod
    def of_input(
        cls,
        spark: Any,
        files: list[Path],
        chosen: list[Entry],
        preset: Preset,
        *,
        parse_files: Callable[[list[Path]], pl.LazyFrame],
        parse_native: Callable[[pl.LazyFrame], pl.LazyFrame],
    ) -> SparkPasses:
        """Local `files` parsed one per task, or (none: a URI input) `chosen` read by Spark."""
        if files:
            return cls.of_files(spark, files, parse_files)
        return cls.of_native(read_uris(spark, chosen, preset), parse_native)

    @classmethod
    def of_files(
        cls, spark: Any, files: list[Path], parse_one: Callable[[list[Path]], pl.LazyFrame]
    ) -> SparkPasses:
        """Local files (at the same path on every executor), parsed one per task."""
        schema = dict(parse_one(files[:1]).collect_schema())
        return cls(spark_pp.file_source(spark, files, parse_one, schema))

    @classmethod
    def of_native(cls, native: Any, parse: Callable[[pl.LazyFrame], pl.LazyFrame]) -> SparkPasses:
        """Rows a Spark reader read (`read_uris`), parsed a partition at a time on the executors.

        The format's columns are checked here, on the driver, on the readers' schema.
        """
        inputs = dict(pl.from_arrow(native.limit(0).toArrow()).schema)  # type: ignore[union-attr]
        schema = spark_pp.schema_of(parse, inputs)
        return cls(spark_pp.native_source(native, parse, inputs=inputs, schema=schema),
                   native=inputs)  # fmt: skip

    def bad_examples(self, *, n: int) -> pl.DataFrame:
        """`parse.bad_examples` of some unreadable rows (Spark picks which)."""
        bad, schema = spark_pp.bad_rows(self.source, n=n)
        return _collect(bad.limit(n), schema)

    def counts(self) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """(user_reason_counts, keyed spellings as `names.canonicalise` gives, file counts)."""
        users, spell, per_file = spark_pp.survey_counts(self.source, n_groups=SURVEY_GROUPS)
        spell = spell.cache()
        artists, titles = spark_pp.name_keys(spell)
        spell_schema = spark_pp.schema_of(spark_pp.kept_spellings, self.schema)
        keyed = names.keyed_spellings(
            _collect(spell, spell_schema).lazy(), artists.lazy(), titles.lazy()
        ).collect(engine="in-memory")
        user_schema = spark_pp.schema_of(parse.user_reason_counts, self.schema)
        file_schema = spark_pp.schema_of(parse.file_reason_counts, self.schema)
        return _collect(users, user_schema), keyed, _collect(per_file, file_schema)

    def buckets(
        self,
        id_map: pl.DataFrame,
        users: pl.DataFrame,
        *,
        by_hash: bool,
        counted: bool,
        n_groups: int,
    ) -> tuple[Any, Any]:
        """(plays, pairs): de-duplicated plays and aggregated pairs, sorted, on the executors.

        Both are persisted (memory, then disk) and counted: the k-core and the renumbering read
        them several times.
        """
        from pyspark import StorageLevel

        encoded, schema = spark_pp.encode_plays(
            self.source,
            id_map=id_map,
            users=users,
            by_hash=by_hash,
            counted=counted,
        )
        self.plays_schema = spark_pp.schema_of(encode.dedupe_plays, schema)
        plays, pairs = spark_pp.dedupe_and_aggregate(
            encoded, schema=schema, plays_schema=self.plays_schema, n_groups=n_groups
        )
        plays, pairs = (f.persist(StorageLevel.MEMORY_AND_DISK) for f in (plays, pairs))
        plays.count(), pairs.count()  # plays first: pairs are aggregated from the cached plays
        return plays, pairs

    def events(
        self,
        out: StageWriter,
        id_map: pl.DataFrame,
        users: pl.DataFrame,
        *,
        by_hash: bool,
        counted: bool,
        n_groups: int,
        kcore: dict[str, int],
        renumber: Callable[..., tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]],
        lap: Callable[[str], None],
    ) -> tuple[pl.DataFrame, pl.DataFrame, tuple[int, int, int, int, int]]:
        """The second pass on Spark: buckets, k-core (`stages.spark.kcore`), renumbered files.

        `renumber` turns the k-core's users and tracks into (user map, track map, lookups).
        Returns (user map, track map, (rounds, pairs, de-duplicated plays, events, plays)).
        """
        plays, pairs = self.buckets(id_map, users, by_hash=by_hash, counted=counted,
                                    n_groups=n_groups)  # fmt: skip
        lap("buckets")
        users_k, tracks_k, rounds = spark_kcore.kcore(pairs, **kcore)
        lap("kcore")
        umap, tmap, lookups = renumber(users_k, tracks_k)
        n_pairs0, n_deduped = pairs.count(), plays.count()
        n_events, n_plays = self.write_events(out, pairs, plays, **lookups)
        return umap, tmap, (rounds, n_pairs0, n_deduped, n_events, n_plays)

    def write_events(
        self, out: StageWriter, pairs: Any, plays: Any, *, users: np.ndarray, tracks: np.ndarray
    ) -> tuple[int, int]:
        """events.parquet and plays.parquet renumbered on Spark; their row counts."""
        counts = []
        for frame, schema, name in (
            (pairs, INTERACTIONS, art.EVENTS),
            (plays, self.plays_schema, art.PLAYS),
        ):
            renumbered = spark_kcore.reindex(frame, schema=schema, users=users, tracks=tracks)
            counts.append(write_artifact(out, renumbered, name, schema))
            frame.unpersist()
        return counts[0], counts[1]
