"""THE list of models: name -> parameters, fit, load, capabilities. Every caller asks here.

To add a model: write its module (a class implementing `stages.models.Recommender` plus any
capability protocols, a fit function, a load function), its parameter class and fit adapter
(stages/models/fitting.py), add its settings to `[train]` (musicrec_cli/config.py and
musicrec.toml), and add one `ModelSpec` to `MODELS` below. Config validation, `train`,
`predict`, the query commands and the tests of every spec follow.

A spec's parameters are a frozen dataclass; each field is read from the `[train]` key of the
same name with the spec's `prefix` (BPR's `factors` is `[train].bpr_factors`), but for the
fields in `shared` (BPR's seed is ALS's). `record` gives what models.json keeps of them (by
default all fields); the loader gets it back, so a model is saved as NPZ arrays plus that
JSON, never pickled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from stages.models import Arrays, Recommender, fitting
from stages.models.als import load_als
from stages.models.blend import COMPONENTS, BlendModel, component_arrays
from stages.models.bpr import load_bpr
from stages.models.content import load_content
from stages.models.ease import load_ease
from stages.models.fitting import Record
from stages.models.knn import load_knn
from stages.models.popularity import load_popularity
from stages.models.training import TrainingData

Capability = Literal["similar", "fold_in", "explain"]
if TYPE_CHECKING:
    from _typeshed import DataclassInstance

P = TypeVar("P", bound="DataclassInstance")
# what the item-item and factor models answer beyond scores
EVERYTHING: frozenset[Capability] = frozenset({"similar", "fold_in", "explain"})
FOLD_IN: frozenset[Capability] = frozenset({"fold_in"})


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
        prefix: Put before a parameter's name to give its `[train]` key.
        shared: Parameters read without the prefix (settings shared with other models).
        needs: Models fitted first and handed to `fit` (a blend's components).
        record: What models.json keeps: (params, data) -> JSON object; default: every field.
        reads_weights: Whether `fit` reads `data.weights` (the train runner lets the last
            model that does overwrite them, see TrainingData.weights_spare).
    """

    name: str
    summary: str
    params: type[P]
    fit: Callable[[TrainingData, P, Mapping[str, Recommender]], Recommender]
    load: Callable[[Arrays, Record], Recommender]
    capabilities: frozenset[Capability] = frozenset()
    prefix: str = ""
    shared: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    record: Callable[[P, TrainingData], Record] | None = None
    reads_weights: bool = True

    def config_keys(self) -> dict[str, str]:
        """Parameter field -> the `[train]` key it is read from."""
        fields = [f.name for f in dataclasses.fields(self.params)]
        return {f: f if f in self.shared else self.prefix + f for f in fields}

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


def _arrays_only(load: Callable[[Arrays], Recommender]) -> Callable[[Arrays, Record], Recommender]:
    """A loader for a model whose arrays say everything (its record is not needed)."""
    return lambda arrays, _record: load(arrays)


# one row a model (fmt: off keeps it a table): name and summary; parameters, the [train] prefix,
# fit adapter and loader; capabilities and the rest
# fmt: off
MODELS: dict[str, ModelSpec[Any]] = {s.name: s for s in (
    ModelSpec(name="popularity", summary="share of training users who played each track",
              params=fitting.NoParams, fit=fitting.fit_popularity,
              load=_arrays_only(load_popularity), capabilities=FOLD_IN),
    ModelSpec(name="trending", summary="play counts with exponential time decay",
              params=fitting.TrendingParams, prefix="trending_", fit=fitting.fit_trending,
              load=_arrays_only(load_popularity), capabilities=FOLD_IN),
    ModelSpec(name="als", summary="implicit ALS on confidence weights",
              params=fitting.AlsParams, fit=fitting.fit_als, record=fitting.record_als,
              load=_arrays_only(load_als), capabilities=EVERYTHING),
    ModelSpec(name="bpr", summary="implicit BPR (pairwise ranking)",
              params=fitting.BprParams, prefix="bpr_", shared=("seed",), fit=fitting.fit_bpr,
              load=_arrays_only(load_bpr)),
    ModelSpec(name="knn", summary="item-item nearest neighbours (cosine or BM25)",
              params=fitting.KnnParams, prefix="knn_", fit=fitting.fit_knn,
              load=_arrays_only(load_knn), capabilities=EVERYTHING),
    ModelSpec(name="rp3beta", summary="item-item random walk with popularity penalty (RP3beta)",
              params=fitting.Rp3betaParams, prefix="rp3beta_", fit=fitting.fit_rp3beta,
              load=lambda arrays, _r: load_knn(arrays, name="rp3beta"), capabilities=EVERYTHING),
    ModelSpec(name="ease",
              summary="closed-form item-item ridge regression (EASE; dense, small catalogues)",
              params=fitting.EaseParams, prefix="ease_", fit=fitting.fit_ease,
              record=lambda p, _d: {"regularization": p.regularization},
              load=_arrays_only(load_ease), capabilities=EVERYTHING),
    ModelSpec(name="content", summary="cosine of standardised audio features",
              params=fitting.NoParams, fit=fitting.fit_content,
              record=lambda _p, data: {"n_features": int(data.audio.shape[1])},
              load=_arrays_only(load_content), capabilities=EVERYTHING, reads_weights=False),
    ModelSpec(name="hybrid", summary="per-user blend of ALS, content, popularity and RP3beta",
              params=fitting.HybridParams, prefix="hybrid_",
              needs=("als", "content", "popularity", "rp3beta"),
              fit=fitting.fit_hybrid, load=fitting.load_hybrid,
              capabilities=frozenset({"fold_in", "explain"}), reads_weights=False),
    ModelSpec(name="blend", summary="weighted sum of EASE, RP3beta and ALS, standardised per user",
              params=fitting.BlendParams, prefix="blend_", needs=COMPONENTS,
              fit=fitting.fit_blend, load=lambda arrays, _r: _load_blend(arrays),
              capabilities=FOLD_IN, reads_weights=False),
)}
# fmt: on


def _load_blend(arrays: Arrays) -> BlendModel:
    """The blend and its components, each loaded from its prefixed arrays."""
    parts = {name: load(name, component_arrays(arrays, name), {}) for name in COMPONENTS}
    return BlendModel(components=parts, weights=arrays["weights"].astype("float32"))


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
