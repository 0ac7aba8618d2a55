"""What each musicrec.toml setting may hold beyond its type: `RULES`, checked by config_load.

A rule is (check, what is expected); the message of a failed check quotes the second part. The
common ranges are written once (`POSITIVE_INT`, `FRACTION`, ...) and given to every key they fit.
"""

from __future__ import annotations

import typing
from typing import Any

from musicrec_cli.config import SPLIT_STRATEGIES
from stages.models import registry
from stages.preprocess import columns
from stages.preprocess.detect import AUTO
from stages.preprocess.formats import KNOWN_FORMATS
from stages.preprocess.layout import RULES as USER_ID_RULES
from stages.preprocess.layout import check_rule

Rule = tuple[typing.Callable[[Any], bool], str]

POSITIVE_INT: Rule = (lambda v: v > 0, "a positive integer")
POSITIVE_NUMBER: Rule = (lambda v: v > 0, "a positive number")
NON_NEGATIVE_NUMBER: Rule = (lambda v: v >= 0, "a number >= 0")
AT_LEAST_ONE: Rule = (lambda v: v >= 1, "an integer >= 1")
FRACTION: Rule = (lambda v: 0 <= v <= 1, "a number between 0 and 1")
OPEN_FRACTION: Rule = (lambda v: 0 < v < 1, "a number between 0 and 1 (exclusive)")
HYBRID_WEIGHTS: Rule = (
    lambda v: len(v) == 4 and min(v) >= 0 and sum(v) > 0,
    "4 weights >= 0 for [als, content, popularity, rp3beta], not all 0",
)

_RAW_COLUMNS = (*columns.REQUIRED, *columns.OPTIONAL)
_MODELS = list(registry.names())  # for the messages; the checks ask the registry

# key -> rule; checked after the type (config_load)
RULES: dict[str, Rule] = {
    **dict.fromkeys(
        (
            "generate.users",
            "generate.tracks",
            "generate.events",
            "generate.genres",
            "generate.chunk_events",
            "preprocess.bucket_rows",
            "preprocess.batch_bytes",
            "split.plays_per_part",
            "train.factors",
            "train.iterations",
            "train.bpr_factors",
            "train.bpr_iterations",
            "train.knn_neighbours",
            "train.rp3beta_neighbours",
            "predict.block_size",
            "predict.hnsw_ef_search",
        ),
        POSITIVE_INT,
    ),
    **dict.fromkeys(
        (
            "features.recency_half_life_days",
            "train.alpha",
            "train.bm25_k1",
            "train.trending_half_life_days",
            "train.bpr_learning_rate",
            "train.rp3beta_alpha",
            "train.ease_regularization",
        ),
        POSITIVE_NUMBER,
    ),
    **dict.fromkeys(
        ("train.regularization", "train.bpr_regularization", "train.rp3beta_beta"),
        NON_NEGATIVE_NUMBER,
    ),
    **dict.fromkeys(
        (
            "preprocess.min_user_tracks",
            "preprocess.min_track_users",
            "preprocess.kcore_rounds",
            "train.hybrid_min_tracks",
        ),
        AT_LEAST_ONE,
    ),
    **dict.fromkeys(
        (
            "preprocess.max_bad_share",
            "features.recency_floor",
            "train.bm25_b",
            "predict.mmr_lambda",
        ),
        FRACTION,
    ),
    **dict.fromkeys(
        ("split.test_fraction", "split.held_out_share", "evaluate.alpha"), OPEN_FRACTION
    ),
    **dict.fromkeys(
        (
            f"train.hybrid_{h}"
            for h in ("cold", "few", "warm", "few_no_audio", "warm_no_audio", "liked")
        ),
        HYBRID_WEIGHTS,
    ),
    "train.blend_weights": (
        lambda v: len(v) == 3 and min(v) >= 0 and sum(v) > 0,
        "3 weights >= 0 for [ease, rp3beta, als], not all 0",
    ),
    "preprocess.format": (
        lambda v: v in (AUTO, *KNOWN_FORMATS),
        f"one of {[AUTO, *KNOWN_FORMATS]}",
    ),
    "preprocess.user_id": (lambda v: check_rule(v) is None, f"one of {list(USER_ID_RULES)}"),
    "preprocess.catalog_columns": (
        lambda v: all(c.partition("=")[2] for c in v),
        'a list of "column=source" mappings (e.g. "track_name=name", "track_uri=id")',
    ),
    "preprocess.columns": (
        lambda v: all(c.partition("=")[0] in _RAW_COLUMNS and c.partition("=")[2] for c in v),
        f'a list of "raw=source" column mappings with raw in {list(_RAW_COLUMNS)}',
    ),
    "preprocess.min_ms_played": (lambda v: v >= 0, "an integer >= 0"),
    "preprocess.show_minutes": (lambda v: v >= 0, "a number >= 0 (0 disables the rule)"),
    "preprocess.max_plays_per_day": (lambda v: v >= 0, "a number >= 0 (0 disables the check)"),
    "preprocess.buckets": (lambda v: v >= 0, "an integer >= 0 (0 = chosen from the input size)"),
    "split.strategy": (lambda v: v in SPLIT_STRATEGIES, f"one of {list(SPLIT_STRATEGIES)}"),
    "split.test_last_n": (lambda v: v >= 0, "an integer >= 0 (0 = use test_fraction)"),
    "split.min_user_tracks": (lambda v: v >= 2, "an integer >= 2"),
    "train.models": (
        lambda v: len(v) > 0 and set(v) <= set(registry.names()),
        f"a non-empty list of model names from {_MODELS}",
    ),
    "train.confidence": (
        lambda v: v in ("log", "bm25", "binary", "raw"),
        "one of 'log', 'bm25', 'binary', 'raw'",
    ),
    "train.knn_similarity": (lambda v: v in ("cosine", "bm25"), "'cosine' or 'bm25'"),
    "train.ease_max_gib": (lambda v: v > 0, "a positive number of GiB"),
    "predict.n": (lambda v: 0 < v <= 10_000, "an integer between 1 and 10000"),
    "predict.rerank_models": (
        lambda v: set(v) <= set(registry.names()),
        f"a list of model names from {_MODELS}",
    ),
    "predict.candidates": (lambda v: 1 <= v <= 100, "an integer between 1 and 100"),
    "predict.mmr_features": (lambda v: v in ("factors", "audio"), 'one of ["factors", "audio"]'),
    "predict.novelty_weight": (lambda v: v >= 0, "a number >= 0"),
    "predict.max_per_artist": (lambda v: v >= 0, "an integer >= 0 (0 = no cap)"),
    "predict.similar_k": (lambda v: 0 <= v <= 1000, "an integer between 0 and 1000 (0 = none)"),
    "predict.search": (lambda v: v in ("exact", "hnsw"), 'one of ["exact", "hnsw"]'),
    "predict.hnsw_m": (lambda v: 4 <= v <= 256, "an integer between 4 and 256"),
    "evaluate.k": (
        lambda v: len(v) > 0 and min(v) > 0 and max(v) <= 10_000,
        "a non-empty list of integers between 1 and 10000",
    ),
    "evaluate.baseline": (
        lambda v: v.removesuffix("+rerank") in registry.names(),
        f'a model name from {_MODELS} (or "<name>+rerank"), e.g. "popularity"',
    ),
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
