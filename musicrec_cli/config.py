"""musicrec.toml: one frozen dataclass per table, validated when it loads.

Precedence: dataclass defaults < the config file < repeatable `--set table.key=value`.
Unknown tables or keys and values of the wrong type are errors that name the key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages import split as split_stage
from stages.models import registry
from stages.preprocess import columns
from stages.preprocess.detect import AUTO
from stages.preprocess.formats import KNOWN_FORMATS
from stages.preprocess.layout import RULES, check_rule

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
class SplitConfig:
    """Train/test split protocol (see stages.split)."""

    strategy: str = "auto"
    test_fraction: float = 0.2
    test_last_n: int = 0
    min_user_tracks: int = 5
    held_out_share: float = 0.1
    seed: int = 42
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
    hybrid_cold: tuple[float, ...] = (0.0, 0.7, 0.3)
    hybrid_few: tuple[float, ...] = (0.3, 0.4, 0.3)
    hybrid_warm: tuple[float, ...] = (0.6, 0.3, 0.1)
    hybrid_liked: tuple[float, ...] = (0.7, 0.3, 0.0)
    hybrid_min_tracks: int = 5


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
class EvaluateConfig:
    """Cut-offs of the metrics and the model the others are compared with."""

    k: tuple[int, ...] = (5, 10, 20)
    baseline: str = "popularity"
    alpha: float = 0.05
    bootstrap_samples: int = 1000
    seed: int = 42
    metric_variants: bool = False
    segments: tuple[int, ...] = (1, 5, 20)


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
SPARK_STAGES = ("preprocess", "split", "train", "predict")
_RAW_COLUMNS = (*columns.REQUIRED, *columns.OPTIONAL)
# key -> (check, what is expected); checked after types
_RULES: dict[str, tuple[typing.Callable[[Any], bool], str]] = {
    "generate.users": (lambda v: v > 0, "a positive integer"),
    "generate.tracks": (lambda v: v > 0, "a positive integer"),
    "generate.events": (lambda v: v > 0, "a positive integer"),
    "generate.genres": (lambda v: v > 0, "a positive integer"),
    "generate.chunk_events": (lambda v: v > 0, "a positive integer"),
    "preprocess.format": (
        lambda v: v in (AUTO, *KNOWN_FORMATS),
        f"one of {[AUTO, *KNOWN_FORMATS]}",
    ),
    "preprocess.user_id": (lambda v: check_rule(v) is None, f"one of {list(RULES)}"),
    "preprocess.catalog_columns": (
        lambda v: all(c.partition("=")[2] for c in v),
        'a list of "column=source" mappings (e.g. "track_name=name", "track_uri=id")',
    ),
    "preprocess.columns": (
        lambda v: all(c.partition("=")[0] in _RAW_COLUMNS and c.partition("=")[2] for c in v),
        f'a list of "raw=source" column mappings with raw in {list(_RAW_COLUMNS)}',
    ),
    "preprocess.min_ms_played": (lambda v: v >= 0, "an integer >= 0"),
    "preprocess.max_plays_per_day": (lambda v: v >= 0, "a number >= 0 (0 disables the check)"),
    "preprocess.max_bad_share": (lambda v: 0 <= v <= 1, "a number between 0 and 1"),
    "preprocess.buckets": (lambda v: v >= 0, "an integer >= 0 (0 = chosen from the input size)"),
    "preprocess.bucket_rows": (lambda v: v > 0, "a positive integer"),
    "preprocess.batch_bytes": (lambda v: v > 0, "a positive integer"),
    "preprocess.min_user_tracks": (lambda v: v >= 1, "an integer >= 1"),
    "preprocess.min_track_users": (lambda v: v >= 1, "an integer >= 1"),
    "preprocess.kcore_rounds": (lambda v: v >= 1, "an integer >= 1"),
    "split.plays_per_part": (lambda v: v > 0, "a positive integer"),
    "split.test_fraction": (lambda v: 0 < v < 1, "a number between 0 and 1 (exclusive)"),
    "split.strategy": (
        lambda v: v in SPLIT_STRATEGIES,
        f"one of {list(SPLIT_STRATEGIES)}",
    ),
    "split.test_last_n": (lambda v: v >= 0, "an integer >= 0 (0 = use test_fraction)"),
    "split.min_user_tracks": (lambda v: v >= 2, "an integer >= 2"),
    "split.held_out_share": (lambda v: 0 < v < 1, "a number between 0 and 1 (exclusive)"),
    "features.recency_half_life_days": (lambda v: v > 0, "a positive number"),
    "features.recency_floor": (lambda v: 0 <= v <= 1, "a number between 0 and 1"),
    "train.models": (
        lambda v: len(v) > 0 and set(v) <= set(registry.names()),
        f"a non-empty list of model names from {list(registry.names())}",
    ),
    "train.factors": (lambda v: v > 0, "a positive integer"),
    "train.iterations": (lambda v: v > 0, "a positive integer"),
    "train.regularization": (lambda v: v >= 0, "a number >= 0"),
    "train.alpha": (lambda v: v > 0, "a positive number"),
    "train.confidence": (
        lambda v: v in ("log", "bm25", "binary", "raw"),
        "one of 'log', 'bm25', 'binary', 'raw'",
    ),
    "train.bm25_k1": (lambda v: v > 0, "a positive number"),
    "train.bm25_b": (lambda v: 0 <= v <= 1, "a number between 0 and 1"),
    "train.trending_half_life_days": (lambda v: v > 0, "a positive number"),
    "train.bpr_factors": (lambda v: v > 0, "a positive integer"),
    "train.bpr_iterations": (lambda v: v > 0, "a positive integer"),
    "train.bpr_learning_rate": (lambda v: v > 0, "a positive number"),
    "train.bpr_regularization": (lambda v: v >= 0, "a number >= 0"),
    "train.knn_similarity": (lambda v: v in ("cosine", "bm25"), "'cosine' or 'bm25'"),
    "train.knn_neighbours": (lambda v: v > 0, "a positive integer"),
    "train.rp3beta_alpha": (lambda v: v > 0, "a positive number"),
    "train.rp3beta_beta": (lambda v: v >= 0, "a number >= 0"),
    "train.rp3beta_neighbours": (lambda v: v > 0, "a positive integer"),
    "train.ease_regularization": (lambda v: v > 0, "a positive number"),
    "train.ease_max_gib": (lambda v: v > 0, "a positive number of GiB"),
    **{
        f"train.hybrid_{h}": (
            lambda v: len(v) == 3 and min(v) >= 0 and sum(v) > 0,
            "3 weights >= 0 for [als, content, popularity], not all 0",
        )
        for h in ("cold", "few", "warm", "liked")
    },
    "train.hybrid_min_tracks": (lambda v: v >= 1, "an integer >= 1"),
    "predict.n": (lambda v: 0 < v <= 10_000, "an integer between 1 and 10000"),
    "predict.rerank_models": (
        lambda v: set(v) <= set(registry.names()),
        f"a list of model names from {list(registry.names())}",
    ),
    "predict.block_size": (lambda v: v > 0, "a positive integer"),
    "predict.candidates": (lambda v: 1 <= v <= 100, "an integer between 1 and 100"),
    "predict.mmr_lambda": (lambda v: 0 <= v <= 1, "a number between 0 and 1"),
    "predict.mmr_features": (lambda v: v in ("factors", "audio"), 'one of ["factors", "audio"]'),
    "predict.novelty_weight": (lambda v: v >= 0, "a number >= 0"),
    "predict.max_per_artist": (lambda v: v >= 0, "an integer >= 0 (0 = no cap)"),
    "predict.similar_k": (lambda v: 0 <= v <= 1000, "an integer between 0 and 1000 (0 = none)"),
    "predict.search": (lambda v: v in ("exact", "hnsw"), 'one of ["exact", "hnsw"]'),
    "predict.hnsw_m": (lambda v: 4 <= v <= 256, "an integer between 4 and 256"),
    "predict.hnsw_ef_search": (lambda v: v > 0, "a positive integer"),
    "evaluate.k": (
        lambda v: len(v) > 0 and min(v) > 0 and max(v) <= 10_000,
        "a non-empty list of integers between 1 and 10000",
    ),
    "evaluate.baseline": (
        lambda v: v.removesuffix("+rerank") in registry.names(),
        f'a model name from {list(registry.names())} (or "<name>+rerank"), e.g. "popularity"',
    ),
    "evaluate.alpha": (lambda v: 0 < v < 1, "a number between 0 and 1 (exclusive)"),
    "evaluate.bootstrap_samples": (lambda v: v >= 0, "an integer >= 0 (0 = no intervals)"),
    "evaluate.segments": (
        lambda v: len(v) > 0 and min(v) > 0 and list(v) == sorted(set(v)),
        "ascending integers > 0, e.g. [1, 5, 20] for users with 0, 1-4, 5-19, 20+ tracks",
    ),
    "spark.master": (lambda v: v.strip() != "", 'a Spark master URL, e.g. "local[*]"'),
    "spark.shuffle_partitions": (lambda v: v >= 0, "an integer >= 0 (0 = Spark's default)"),
    "spark.conf": (
        lambda v: all(c.partition("=")[0].strip() and c.partition("=")[1] for c in v),
        'a list of "key=value" Spark settings, e.g. ["spark.executor.cores=4"]',
    ),
}


def _expected_name(kind: object) -> str:
    names: dict[object, str] = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        dt.datetime: "a TOML date-time such as 2000-01-01T00:00:00Z",
    }
    if typing.get_origin(kind) is tuple:
        item = _expected_name(typing.get_args(kind)[0])
        return f"a list of {item.removeprefix('an ').removeprefix('a ')}s"
    return names.get(kind, str(kind))


def _coerce(value: object, kind: object, key: str, source: str) -> object:
    """Check `value` against the field type; int is accepted for float, a list for a tuple."""
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if isinstance(value, list):
            return tuple(_coerce(v, item, key, source) for v in value)
    elif kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif kind is dt.datetime and isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    elif (
        isinstance(kind, type)
        and isinstance(value, kind)
        and not (kind is int and isinstance(value, bool))
    ):
        return value
    msg = f"{source}: [{key.replace('.', '].', 1)} = {value!r}: expected {_expected_name(kind)}."
    raise ConfigError(msg)


def _unknown(name: str, known: typing.Iterable[str], what: str, source: str) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{source}: unknown {what} {name!r}.{hint} Known: {', '.join(known)}.")


def _build_table(cls: type[Any], table: str, values: dict[str, Any], origin: _Origin) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        source = origin(table, key)
        if key not in names:
            raise _unknown(key, names, f"key in [{table}]", source)
        full = f"{table}.{key}"
        kwargs[key] = _coerce(value, hints[key], full, source)
        check, expected = _RULES.get(full, (lambda _: True, ""))
        if not check(kwargs[key]):
            msg = f"{source}: [{table}].{key} = {value!r}: expected {expected}."
            raise ConfigError(msg)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[str, str, object]:
    """Split "table.key=value" into its parts; the value is read as TOML, else as a string.

    The one top-level key, `engine`, comes back with table "".
    """
    name, sep, raw = text.partition("=")
    table, dot, key = name.strip().partition(".")
    top_level = name.strip() == "engine"
    if not sep or not (top_level or (dot and key)):
        msg = f"--set {text!r}: expected table.key=value, e.g. --set train.factors=128."
        raise ConfigError(msg)
    try:
        value: object = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return ("", "engine", value) if top_level else (table, key.strip(), value)


# (table, key) -> where its value came from, for messages: the file, `--set ...` or a flag
_Origin = typing.Callable[[str, str], str]


def load_config(
    path: Path | None = None,
    overrides: typing.Sequence[str] = (),
    *,
    flags: typing.Mapping[str, str] | None = None,
) -> Config:
    """Read the config file (default ./musicrec.toml if present) and apply `--set` overrides.

    `flags` maps an override that a command option produced (e.g. "generate.events=300") to
    that option ("--events 300"), so that an error blames what the user typed.
    """
    source = path or DEFAULT_CONFIG
    data: dict[str, dict[str, Any]] = {}
    if path is not None and not path.is_file():
        msg = f"{path}: config file not found."
        raise ConfigError(msg)
    if source.is_file():
        try:
            data = tomllib.loads(source.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            msg = f"{source}: not valid TOML: {exc}."
            raise ConfigError(msg) from exc
    file_source = str(source) if source.is_file() else "the built-in defaults"
    given: dict[tuple[str, str], str] = {}
    tables = {f.name: f for f in dataclasses.fields(Config) if f.name != "engine"}
    for text in overrides:
        table, key, value = parse_override(text)
        if table:
            data.setdefault(table, {})[key] = value
            given[table, key] = (flags or {}).get(text, f"--set {text}")
        else:
            data[key] = value  # type: ignore[assignment]

    def origin(table: str, key: str) -> str:
        return given.get((table, key), file_source)

    built: dict[str, Any] = {"engine": _engine(data.pop("engine", "polars"), str(source))}
    for table, values in data.items():
        if table not in tables:
            blame = next((g for (t, _), g in given.items() if t == table), file_source)
            raise _unknown(table, tables, "table", blame)
        if not isinstance(values, dict):
            msg = f"{source}: {table!r} must be a table ([{table}]), got {values!r}."
            raise ConfigError(msg)
        cls = typing.get_type_hints(Config)[table]
        built[table] = _build_table(cls, table, values, origin)
    return Config(**built)


def _engine(value: object, source: str) -> str:
    if value not in ENGINES:
        msg = f"{source}: engine = {value!r}: expected one of {list(ENGINES)}."
        raise ConfigError(msg)
    return str(value)


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


def tuned_overrides(path: Path) -> list[str]:
    """`train.key=value` overrides from the [train] table of a `musicrec tune` result.

    Raises:
        ConfigError: The file cannot be read, is not TOML or has no [train] table.
    """
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("train", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        msg = f"{path}: cannot read the tuned settings: {exc}."
        raise ConfigError(msg) from exc
    if not table:
        msg = f"{path}: no [train] table; expected the <model>_best.toml that `tune` writes."
        raise ConfigError(msg)
    return [f"train.{k}={toml_value(v)}" for k, v in table.items()]
