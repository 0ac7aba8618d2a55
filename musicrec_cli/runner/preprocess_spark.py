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
from musicrec_cli.spark import write_artifact
from stages.preprocess import encode, names, parse
from stages.schema import INTERACTIONS
from stages.spark import kcore as spark_kcore
from stages.spark import polars_cast
from stages.spark import preprocess as spark_pp

# user and spelling counts are merged in this many hash groups (their rows are small)
SURVEY_GROUPS = 16


def _collect(frame: Any, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """A (small) Spark frame on the driver, in the project's dtypes."""
    return polars_cast(pl.from_arrow(frame.toArrow()).lazy(), schema).collect()  # type: ignore[union-attr]


class SparkPasses:
    """The raw log parsed on Spark once (kept on the executors), and both passes over it."""

    def __init__(
        self, spark: Any, files: list[Path], parse_one: Callable[[list[Path]], pl.LazyFrame]
    ) -> None:
        from pyspark import StorageLevel

        self.schema = dict(parse_one(files[:1]).collect_schema())
        self.parsed = spark_pp.parse_files(spark, files, parse_one, self.schema).persist(
            StorageLevel.MEMORY_AND_DISK
        )

    def counts(self) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """(user_reason_counts, keyed spellings as `names.canonicalise` gives, file counts)."""
        users, spell, per_file = spark_pp.survey_counts(
            self.parsed, schema=self.schema, n_groups=SURVEY_GROUPS
        )
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

        Both are persisted (memory, then disk) and counted, so the parsed rows can go.
        """
        from pyspark import StorageLevel

        encoded, schema = spark_pp.encode_plays(
            self.parsed,
            schema=self.schema,
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
        plays.count(), pairs.count()
        self.parsed.unpersist()
        return plays, pairs

    def kcore(
        self, pairs: Any, *, min_user_tracks: int, min_track_users: int, max_rounds: int
    ) -> tuple[pl.DataFrame, pl.DataFrame, int]:
        """`encode.kcore` of the pairs, run on Spark (stages.spark.kcore)."""
        return spark_kcore.kcore(
            pairs,
            min_user_tracks=min_user_tracks,
            min_track_users=min_track_users,
            max_rounds=max_rounds,
        )

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
