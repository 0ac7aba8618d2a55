"""Each model's parameters, and its fit adapter from TrainingData to the model module.

A parameter class is a frozen dataclass whose fields are read from `[train]` (see
`registry.ModelSpec.prefix`). An adapter is (data, params, fitted) -> model: it takes from
TrainingData the matrix its model is fitted on, and `fitted` holds the models a blend is built
from. The registry (stages.models.registry) pairs them with a name, a loader and capabilities.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import scipy.sparse as sp

from stages.models import (
    Arrays,
    Recommender,
    als,
    blend,
    bpr,
    content,
    ease,
    hybrid,
    knn,
    popularity,
    rp3beta,
)
from stages.models.training import TrainingData
from stages.schema import PLAY_COUNT, TRACK_IDX

JsonValue = bool | int | float | str | list[Any] | dict[str, Any] | None
Record = dict[str, JsonValue]
Fitted = Mapping[str, Recommender]
M = TypeVar("M")


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

    similarity: knn.KnnSimilarity
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
    """Blend weights [als, content, popularity, rp3beta] by history, and for new listeners.

    `few`/`warm` apply to catalogues with audio features, `few_no_audio`/`warm_no_audio` to
    those without (stages.models.hybrid.catalogue_weights); `liked` to new listeners.
    """

    cold: tuple[float, ...]
    few: tuple[float, ...]
    warm: tuple[float, ...]
    few_no_audio: tuple[float, ...]
    warm_no_audio: tuple[float, ...]
    min_tracks: int
    liked: tuple[float, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlendParams:
    """Weights of [ease, rp3beta, als] ([train].blend_weights)."""

    weights: tuple[float, ...]


def fit_popularity(data: TrainingData, _p: NoParams, _f: Fitted) -> popularity.PopularityModel:
    """Share of training users who played each track."""
    return popularity.fit_popularity(data.weights)


def fit_trending(data: TrainingData, p: TrendingParams, _f: Fitted) -> popularity.PopularityModel:
    """Play counts decayed by the age of each pair's last play."""
    ages = data.ages()
    return popularity.fit_trending(
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
        return als.bm25_confidence(data.counts(), k1=p.bm25_k1, b=p.bm25_b)
    if p.confidence == "raw":
        return data.counts()
    if p.confidence == "binary":
        ones = data.weights.copy()
        ones.data[:] = 1.0
        return ones
    return data.weights


def fit_als(data: TrainingData, p: AlsParams, _f: Fitted) -> als.AlsModel:
    """ALS (implicit's) on `als_matrix`, scaled by alpha in place where nothing reads it after."""
    matrix = als_matrix(data, p)
    return als.fit_als(
        matrix,
        scale_in_place=matrix is not data.weights or data.weights_spare,
        factors=p.factors,
        iterations=p.iterations,
        regularization=p.regularization,
        alpha=p.alpha,
        seed=p.seed,
        callback=lambda *_: data.on_iteration(),
    )


def record_als(p: AlsParams, _: TrainingData) -> Record:
    """Every ALS setting, the BM25 ones only where they were used."""
    keep = dataclasses.asdict(p)
    if p.confidence != "bm25":
        del keep["bm25_k1"], keep["bm25_b"]
    return keep


def fit_bpr(data: TrainingData, p: BprParams, _f: Fitted) -> bpr.BprModel:
    """BPR (implicit's) on the confidence weights."""
    return bpr.fit_bpr(
        data.weights, **dataclasses.asdict(p), callback=lambda *_: data.on_iteration()
    )


def fit_knn(data: TrainingData, p: KnnParams, _f: Fitted) -> knn.KnnModel:
    """Item-item neighbours of the confidence weights."""
    return knn.fit_knn(data.weights, similarity=p.similarity, neighbours=p.neighbours)


def fit_rp3beta(data: TrainingData, p: Rp3betaParams, _f: Fitted) -> knn.KnnModel:
    """The RP3beta random walk over the confidence weights."""
    return rp3beta.fit_rp3beta(data.weights, alpha=p.alpha, beta=p.beta, neighbours=p.neighbours)


def fit_ease(data: TrainingData, p: EaseParams, _f: Fitted) -> ease.EaseModel:
    """EASE's closed form, refused beforehand if it would take over `max_gib`."""
    max_bytes = int(p.max_gib * 2**30)
    return ease.fit_ease(data.weights, regularization=p.regularization, max_bytes=max_bytes)


def fit_content(data: TrainingData, _p: NoParams, _f: Fitted) -> content.ContentModel:
    """Cosine of the standardised audio features."""
    return content.fit_content(data.audio)


def _component(fitted: Fitted, name: str, kind: type[M]) -> M:
    """`fitted[name]`, checked to be the class a blend is built from."""
    model = fitted[name]
    if not isinstance(model, kind):
        msg = f"the hybrid needs a fitted {kind.__name__} as {name!r}, got {type(model).__name__}"
        raise TypeError(msg)
    return model


def fit_hybrid(_data: TrainingData, p: HybridParams, fitted: Fitted) -> hybrid.HybridModel:
    """The per-user blend of the ALS, content, popularity and RP3beta models fitted before it."""
    return hybrid.build_hybrid(
        als=_component(fitted, "als", als.AlsModel),
        content=_component(fitted, "content", content.ContentModel),
        popularity=_component(fitted, "popularity", popularity.PopularityModel),
        rp3beta=_component(fitted, "rp3beta", knn.KnnModel),
        weights={
            "cold": p.cold,
            "few": p.few,
            "warm": p.warm,
            "few_no_audio": p.few_no_audio,
            "warm_no_audio": p.warm_no_audio,
        },
        min_tracks=p.min_tracks,
        liked=p.liked,
    )


def load_hybrid(arrays: Arrays, record: Record) -> hybrid.HybridModel:
    """The hybrid, with the new-listener weights of its record (all 0 if it has none)."""
    liked = record.get("liked")
    default = (0.0,) * len(hybrid.COMPONENTS)
    return hybrid.load_hybrid(arrays, liked=tuple(liked) if isinstance(liked, list) else default)


def fit_blend(_data: TrainingData, p: BlendParams, fitted: Fitted) -> blend.BlendModel:
    """The blend of the EASE, RP3beta and ALS models fitted before it."""
    return blend.build_blend({n: fitted[n] for n in blend.COMPONENTS}, p.weights)
