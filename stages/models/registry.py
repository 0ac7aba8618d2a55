"""THE list of models: name -> parameters, fit, load, capabilities. Every caller asks here.

To add a model: write its module (a class implementing `stages.models.Recommender` plus any
capability protocols, a fit function, a load function), add its settings to `[train]`
(musicrec_cli/config.py and musicrec.toml), and add one `ModelSpec` to `MODELS` below. Config
validation, `train`, `predict`, the query commands and the tests of every spec follow.

A spec's parameters are a frozen dataclass; each field is read from the `[train]` key of the
same name, or the key `keys` maps it to (BPR's `factors` is `[train].bpr_factors`). `record`
gives what models.json keeps of them (by default all fields); the loader gets it back, so a
model is saved as NPZ arrays plus that JSON, never pickled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from stages.interactions import build_matrix
from stages.models import Arrays, Recommender
from stages.models.als import AlsModel, bm25_confidence, fit_als, load_als
from stages.models.bpr import fit_bpr, load_bpr
from stages.models.content import ContentModel, fit_content, load_content
from stages.models.ease import fit_ease, load_ease
from stages.models.hybrid import HybridModel, build_hybrid, load_hybrid
from stages.models.knn import KnnSimilarity, fit_knn, load_knn
from stages.models.popularity import (
    PopularityModel,
    fit_popularity,
    fit_trending,
    load_popularity,
)
from stages.models.rp3beta import fit_rp3beta
from stages.schema import LAST_TS, PLAY_COUNT, TRACK_IDX, WEIGHT

Capability = Literal["similar", "fold_in", "explain"]
JsonValue = bool | int | float | str | list[Any] | dict[str, Any] | None
Record = dict[str, JsonValue]
IterationCallback = Callable[[], None]
if TYPE_CHECKING:
    from _typeshed import DataclassInstance

P = TypeVar("P", bound="DataclassInstance")
_DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingData:
    """What the models are fitted on (03_features).

    Attributes:
        frame: features_train: user_idx, track_idx, weight, play_count, last_ts; one row per
            training (user, track) pair.
        weights: (n_users, n_items) float32 CSR of `weight` (confidence).
        audio: (n_items, d) float64 audio features, NaN where unknown (d may be 0).
        on_iteration: Called after each iteration of iterative fits (a progress bar).
    """

    frame: pl.DataFrame
    weights: sp.csr_matrix
    audio: npt.NDArray[np.float64]
    on_iteration: IterationCallback = lambda: None

    @classmethod
    def build(
        cls, frame: pl.DataFrame, audio: npt.NDArray[np.float64], *, n_users: int, n_tracks: int
    ) -> TrainingData:
        """From features_train and the audio array, with the weights CSR built once."""
        weights = build_matrix(frame, value=WEIGHT, n_users=n_users, n_tracks=n_tracks)
        return cls(frame=frame, weights=weights, audio=audio)

    def counts(self) -> sp.csr_matrix:
        """(n_users, n_items) float32 CSR of play counts, same non-zeros as `weights`."""
        n_users, n_tracks = self.weights.shape
        return build_matrix(self.frame, value=PLAY_COUNT, n_users=n_users, n_tracks=n_tracks)

    def ages(self) -> pl.DataFrame:
        """track_idx, play_count, age_days (last play's age before the newest play in train).

        Without timestamps (a play-count table) every age is 0: trending is then popularity.
        """
        newest = self.frame[LAST_TS].max()
        age = (pl.lit(newest) - pl.col(LAST_TS)).dt.total_microseconds() / _DAY_US
        age = age.fill_null(0.0) if newest is not None else pl.lit(0.0)
        return self.frame.select(TRACK_IDX, PLAY_COUNT, age.alias("age_days"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec(Generic[P]):
    """One model: how to fit, save and load it, and what it can do.

    Attributes:
        name: The name in `[train].models`, models.json and `--model`.
        summary: One line for help texts.
        params: Frozen dataclass of its hyper-parameters (see the module docstring).
        fit: (data, params, fitted) -> model; `fitted` holds the models of `needs`.
        load: (arrays, record) -> model, the inverse of `model.arrays()` and `record`.
        capabilities: What it implements beyond `Recommender`.
        keys: Parameter field -> `[train]` key, where the names differ.
        needs: Models fitted first and handed to `fit` (a blend's components).
        record: What models.json keeps: (params, data) -> JSON object; default: every field.
    """

    name: str
    summary: str
    params: type[P]
    fit: Callable[[TrainingData, P, Mapping[str, Recommender]], Recommender]
    load: Callable[[Arrays, Record], Recommender]
    capabilities: frozenset[Capability] = frozenset()
    keys: Mapping[str, str] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    record: Callable[[P, TrainingData], Record] | None = None

    def config_keys(self) -> dict[str, str]:
        """Parameter field -> the `[train]` key it is read from."""
        fields = dataclasses.fields(self.params)
        return {f.name: self.keys.get(f.name, f.name) for f in fields}

    def params_from(self, settings: object) -> P:
        """The parameters, read from an object with the `[train]` keys as attributes."""
        return self.params(**{f: getattr(settings, k) for f, k in self.config_keys().items()})

    def recorded(self, params: P, data: TrainingData) -> Record:
        """What models.json keeps of `params` (tuples as lists)."""
        if self.record is not None:
            return self.record(params, data)
        return json_ready(dataclasses.asdict(params))


def json_ready(values: Mapping[str, Any]) -> Record:
    """Tuples as lists, so that the record equals what JSON gives back."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class NoParams:
    """A model without hyper-parameters."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrendingParams:
    """half_life_days: a play this old counts half ([train].trending_half_life_days)."""

    half_life_days: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AlsParams:
    """ALS settings; `confidence` picks the matrix it fits (see `als_matrix`)."""

    factors: int
    iterations: int
    regularization: float
    alpha: float
    seed: int
    confidence: Literal["log", "bm25", "binary", "raw"]
    bm25_k1: float
    bm25_b: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BprParams:
    """BPR settings ([train].bpr_*; the seed is shared with ALS)."""

    factors: int
    iterations: int
    learning_rate: float
    regularization: float
    seed: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KnnParams:
    """Item-kNN settings ([train].knn_*)."""

    similarity: KnnSimilarity
    neighbours: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Rp3betaParams:
    """RP3beta settings ([train].rp3beta_*)."""

    alpha: float
    beta: float
    neighbours: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EaseParams:
    """EASE settings: ridge strength, and the memory its dense matrices may take (GiB)."""

    regularization: float
    max_gib: float


@dataclass(frozen=True, slots=True, kw_only=True)
class HybridParams:
    """Blend weights [als, content, popularity] by history, and for new listeners (`liked`)."""

    cold: tuple[float, ...]
    few: tuple[float, ...]
    warm: tuple[float, ...]
    min_tracks: int
    liked: tuple[float, ...]


def _fit_trending(
    data: TrainingData, p: TrendingParams, _: Mapping[str, Recommender]
) -> PopularityModel:
    ages = data.ages()
    return fit_trending(
        ages[TRACK_IDX].to_numpy(),
        ages[PLAY_COUNT].to_numpy(),
        ages["age_days"].to_numpy(),
        n_items=data.weights.shape[1],
        half_life_days=p.half_life_days,
    )


def als_matrix(data: TrainingData, p: AlsParams) -> sp.csr_matrix:
    """The (n_users, n_items) float32 CSR of confidence that ALS fits.

    03_features weights ("log"), BM25 of play counts ("bm25"), 1 per heard pair ("binary") or
    the play counts themselves ("raw").
    """
    if p.confidence == "bm25":
        return bm25_confidence(data.counts(), k1=p.bm25_k1, b=p.bm25_b)
    if p.confidence == "raw":
        return data.counts()
    if p.confidence == "binary":
        ones = data.weights.copy()
        ones.data[:] = 1.0
        return ones
    return data.weights


def _fit_als(data: TrainingData, p: AlsParams, _: Mapping[str, Recommender]) -> AlsModel:
    matrix = als_matrix(data, p)
    return fit_als(
        matrix,
        factors=p.factors,
        iterations=p.iterations,
        regularization=p.regularization,
        alpha=p.alpha,
        seed=p.seed,
        callback=lambda *_: data.on_iteration(),
    )


def _record_als(p: AlsParams, _: TrainingData) -> Record:
    keep = dataclasses.asdict(p)
    if p.confidence != "bm25":
        del keep["bm25_k1"], keep["bm25_b"]
    return keep


M = TypeVar("M")


def _component(fitted: Mapping[str, Recommender], name: str, kind: type[M]) -> M:
    """`fitted[name]`, checked to be the class a blend is built from."""
    model = fitted[name]
    if not isinstance(model, kind):
        msg = f"the hybrid needs a fitted {kind.__name__} as {name!r}, got {type(model).__name__}"
        raise TypeError(msg)
    return model


def _fit_hybrid(
    data: TrainingData, p: HybridParams, fitted: Mapping[str, Recommender]
) -> HybridModel:
    return build_hybrid(
        als=_component(fitted, "als", AlsModel),
        content=_component(fitted, "content", ContentModel),
        popularity=_component(fitted, "popularity", PopularityModel),
        weights={"cold": p.cold, "few": p.few, "warm": p.warm},
        min_tracks=p.min_tracks,
        liked=p.liked,
    )


def _load_hybrid(arrays: Arrays, record: Record) -> HybridModel:
    liked = record.get("liked")
    return load_hybrid(arrays, liked=tuple(liked) if isinstance(liked, list) else (0.0, 0.0, 0.0))


MODELS: dict[str, ModelSpec[Any]] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="popularity",
            summary="share of training users who played each track",
            params=NoParams,
            fit=lambda data, _p, _f: fit_popularity(data.weights),
            load=lambda arrays, _r: load_popularity(arrays),
            capabilities=frozenset({"fold_in"}),
        ),
        ModelSpec(
            name="trending",
            summary="play counts with exponential time decay",
            params=TrendingParams,
            keys={"half_life_days": "trending_half_life_days"},
            fit=_fit_trending,
            load=lambda arrays, _r: load_popularity(arrays),
            capabilities=frozenset({"fold_in"}),
        ),
        ModelSpec(
            name="als",
            summary="implicit ALS on confidence weights",
            params=AlsParams,
            fit=_fit_als,
            record=_record_als,
            load=lambda arrays, _r: load_als(arrays),
            capabilities=frozenset({"similar", "fold_in", "explain"}),
        ),
        ModelSpec(
            name="bpr",
            summary="implicit BPR (pairwise ranking)",
            params=BprParams,
            keys={
                "factors": "bpr_factors",
                "iterations": "bpr_iterations",
                "learning_rate": "bpr_learning_rate",
                "regularization": "bpr_regularization",
            },
            fit=lambda data, p, _f: fit_bpr(
                data.weights, **dataclasses.asdict(p), callback=lambda *_: data.on_iteration()
            ),
            load=lambda arrays, _r: load_bpr(arrays),
        ),
        ModelSpec(
            name="knn",
            summary="item-item nearest neighbours (cosine or BM25)",
            params=KnnParams,
            keys={"similarity": "knn_similarity", "neighbours": "knn_neighbours"},
            fit=lambda data, p, _f: fit_knn(
                data.weights, similarity=p.similarity, neighbours=p.neighbours
            ),
            load=lambda arrays, _r: load_knn(arrays),
            capabilities=frozenset({"similar", "fold_in", "explain"}),
        ),
        ModelSpec(
            name="rp3beta",
            summary="item-item random walk with popularity penalty (RP3beta)",
            params=Rp3betaParams,
            keys={
                "alpha": "rp3beta_alpha",
                "beta": "rp3beta_beta",
                "neighbours": "rp3beta_neighbours",
            },
            fit=lambda data, p, _f: fit_rp3beta(
                data.weights, alpha=p.alpha, beta=p.beta, neighbours=p.neighbours
            ),
            load=lambda arrays, _r: load_knn(arrays, name="rp3beta"),
            capabilities=frozenset({"similar", "fold_in", "explain"}),
        ),
        ModelSpec(
            name="ease",
            summary="closed-form item-item ridge regression (EASE; dense, small catalogues)",
            params=EaseParams,
            keys={"regularization": "ease_regularization", "max_gib": "ease_max_gib"},
            fit=lambda data, p, _f: fit_ease(
                data.weights, regularization=p.regularization, max_bytes=int(p.max_gib * 2**30)
            ),
            record=lambda p, _d: {"regularization": p.regularization},
            load=lambda arrays, _r: load_ease(arrays),
            capabilities=frozenset({"similar", "fold_in", "explain"}),
        ),
        ModelSpec(
            name="content",
            summary="cosine of standardised audio features",
            params=NoParams,
            fit=lambda data, _p, _f: fit_content(data.audio),
            record=lambda _p, data: {"n_features": int(data.audio.shape[1])},
            load=lambda arrays, _r: load_content(arrays),
            capabilities=frozenset({"similar", "fold_in", "explain"}),
        ),
        ModelSpec(
            name="hybrid",
            summary="per-user blend of ALS, content and popularity",
            params=HybridParams,
            keys={
                "cold": "hybrid_cold",
                "few": "hybrid_few",
                "warm": "hybrid_warm",
                "min_tracks": "hybrid_min_tracks",
                "liked": "hybrid_liked",
            },
            needs=("als", "content", "popularity"),
            fit=_fit_hybrid,
            load=_load_hybrid,
            capabilities=frozenset({"fold_in", "explain"}),
        ),
    )
}


def names() -> tuple[str, ...]:
    """Every model name, in registry order."""
    return tuple(MODELS)


def spec(name: str) -> ModelSpec[Any]:
    """The spec of model `name`; KeyError naming the known models if there is none."""
    try:
        return MODELS[name]
    except KeyError:
        msg = f"unknown model {name!r}; known: {', '.join(MODELS)}"
        raise KeyError(msg) from None


def with_capability(capability: Capability) -> tuple[str, ...]:
    """Names of the models that have `capability`, in registry order."""
    return tuple(n for n, s in MODELS.items() if capability in s.capabilities)


def fit_order(requested: tuple[str, ...]) -> tuple[str, ...]:
    """`requested` plus the models they need, each after its needs (registry order otherwise)."""
    wanted: list[str] = []

    def add(name: str) -> None:
        for need in spec(name).needs:
            add(need)
        if name not in wanted:
            wanted.append(name)

    for name in requested:
        add(name)
    return tuple(wanted)


def fit(
    name: str, data: TrainingData, settings: object, fitted: Mapping[str, Recommender]
) -> tuple[Recommender, Record]:
    """Fit model `name` with its parameters read from `settings` ([train]).

    Args:
        name: A registered model.
        data: The training data.
        settings: Object with the `[train]` keys as attributes (musicrec_cli's TrainConfig).
        fitted: Models fitted already, by name; must hold `spec(name).needs`.

    Returns:
        The model and what models.json records of its parameters.
    """
    s = spec(name)
    params = s.params_from(settings)
    return s.fit(data, params, fitted), s.recorded(params, data)


def load(name: str, arrays: Arrays, record: Record) -> Recommender:
    """Model `name` from its NPZ arrays and its models.json record."""
    return spec(name).load(arrays, record)
