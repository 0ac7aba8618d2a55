"""musicrec.toml: the settings, one frozen dataclass per table.

Reading them (the file, then repeatable `--set table.key=value`, validated against the field types
and `config_rules.RULES`) is `config_load.load_config`; this module only says what they are.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages import split as split_stage
from stages.evaluate.results import EvaluateSettings

DEFAULT_CONFIG = Path("musicrec.toml")


class ConfigError(ValueError):
    """The configuration file or an override is invalid."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PathsConfig:
    """Where raw data lives and where artifacts go."""

    raw: str = "data/raw/listens"
    catalog: str = "data/raw/tracks.parquet"
    artifacts: str = "artifacts"


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerateConfig:
    """Size and seed of the built-in synthetic dataset."""

    users: int = 3000
    tracks: int = 4000
    events: int = 400_000
    genres: int = 20
    seed: int = 42
    chunk_events: int = 5_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class PreprocessConfig:
    """Cleaning and filtering of the raw log."""

    format: str = "generate"
    columns: tuple[str, ...] = ()
    user_id: str = "auto"
    catalog_columns: tuple[str, ...] = ()
    names: str = ""
    drop_shows: tuple[str, ...] = ()
    show_minutes: float = 15.0
    min_ms_played: int = 30_000
    ts_min: dt.datetime = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    ts_max: dt.datetime = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    max_plays_per_day: float = 1000.0
    min_user_tracks: int = 5
    min_track_users: int = 3
    kcore_rounds: int = 3
    max_bad_share: float = 0.01
    buckets: int = 0
    bucket_rows: int = 20_000_000
    batch_bytes: int = 1 << 30


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitConfig(split_stage.SplitSettings):
    """Train/test split protocol (stages.split.SplitSettings), plus two the runner reads.

    `strategy` may be "auto" (resolved from the data); `plays_per_part` is how many plays are
    split at once.
    """

    strategy: str = "auto"
    plays_per_part: int = 50_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class FeaturesConfig:
    """Confidence weighting of interactions."""

    recency_half_life_days: float = 90.0
    recency_floor: float = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    """Models to fit and their hyper-parameters."""

    # the default choice of models (all of them today); the list of models is stages.models.registry
    models: tuple[str, ...] = (
        "popularity",
        "trending",
        "als",
        "bpr",
        "knn",
        "rp3beta",
        "content",
        "hybrid",
    )
    factors: int = 64
    iterations: int = 15
    regularization: float = 0.05
    alpha: float = 20.0
    seed: int = 42
    confidence: str = "log"
    bm25_k1: float = 100.0
    bm25_b: float = 0.8
    trending_half_life_days: float = 14.0
    bpr_factors: int = 64
    bpr_iterations: int = 100
    bpr_learning_rate: float = 0.01
    bpr_regularization: float = 0.01
    knn_similarity: str = "cosine"
    knn_neighbours: int = 50
    rp3beta_alpha: float = 1.0
    rp3beta_beta: float = 0.5
    rp3beta_neighbours: int = 100
    ease_regularization: float = 500.0
    ease_max_gib: float = 16.0
    hybrid_cold: tuple[float, ...] = (0.0, 0.7, 0.3, 0.0)
    hybrid_few: tuple[float, ...] = (0.1, 0.2, 0.1, 0.6)
    hybrid_warm: tuple[float, ...] = (0.1, 0.1, 0.0, 0.8)
    hybrid_few_no_audio: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0)
    hybrid_warm_no_audio: tuple[float, ...] = (0.8, 0.0, 0.0, 0.2)
    hybrid_liked: tuple[float, ...] = (0.7, 0.3, 0.0, 0.0)
    hybrid_min_tracks: int = 5
    blend_weights: tuple[float, ...] = (1.0, 1.0, 1.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictConfig:
    """Batch top-N recommendation."""

    n: int = 50
    block_size: int = 1024
    candidates: int = 3
    rerank_models: tuple[str, ...] = ("als",)
    mmr_lambda: float = 0.7
    mmr_features: str = "factors"
    novelty_weight: float = 0.5
    max_per_artist: int = 2
    one_per_group: bool = True
    allow_heard_songs: bool = False
    similar_k: int = 20
    search: str = "exact"
    hnsw_m: int = 32
    hnsw_ef_search: int = 128


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluateConfig(EvaluateSettings):
    """[evaluate]: exactly the stage's settings (stages.evaluate.results.EvaluateSettings)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SparkConfig:
    """Where and how the Spark engine runs (used only when engine = "spark").

    `local_dir` "" puts Spark's shuffle and spill files in a folder of the run's own under the
    artifacts directory, deleted when the command ends. `conf` holds extra "key=value" Spark
    settings, applied last.
    """

    master: str = "local[*]"
    app_name: str = "musicrec"
    shuffle_partitions: int = 0
    driver_memory: str = "4g"
    executor_memory: str = ""
    local_dir: str = ""
    conf: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole resolved configuration: the engine and one attribute per table."""

    engine: str = "polars"
    paths: PathsConfig = field(default_factory=PathsConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)


SPLIT_STRATEGIES = ("auto", *split_stage.STRATEGIES)
ENGINES = ("polars", "spark")
# stages with a Spark implementation; the others always run on Polars
SPARK_STAGES = ("preprocess", "split", "features", "train", "predict")


def engine_of(cfg: Config, stage: str) -> str:
    """The engine `stage` runs on: cfg.engine for the stages Spark implements, else "polars"."""
    return cfg.engine if stage in SPARK_STAGES else "polars"


def table_dict(table: object) -> dict[str, Any]:
    """A config table as JSON-ready values (tuples as lists, datetimes as ISO strings)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(table):  # type: ignore[arg-type]
        value = getattr(table, f.name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dt.datetime):
            value = value.isoformat()
        out[f.name] = value
    return out


def toml_value(value: Any) -> str:
    """A TOML literal of a setting (string, number, bool or list of them)."""
    if isinstance(value, str | bool):
        return json.dumps(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)
