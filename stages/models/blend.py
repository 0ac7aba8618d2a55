"""Blend: a weighted sum of the strong simple models' scores, each standardised per user.

Re-evaluations of implicit-feedback recommenders find EASE, RP3beta and a well-set ALS close to
each other and their errors different: on the default data (temporal split) each alone is 2-4%
above implicit's best list, their blend more (benchmarks/results/vs_implicit_default.json).
Each component's scores of a user are standardised over the catalogue (zero mean, unit
deviation), so that weights compare like with like whatever each model's scale, then summed
with `[train].blend_weights` (found by `musicrec tune --model blend`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from stages.models import Arrays, FoldIn, Recommender

COMPONENTS = ("ease", "rp3beta", "als")


def standardised(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each row minus its mean, over its standard deviation (rows of one value become 0).

    Args:
        scores: (b, n_items) float32, finite.
    """
    centred = scores - scores.mean(axis=1, keepdims=True, dtype=np.float64)
    spread = centred.std(axis=1, keepdims=True, dtype=np.float64)
    out: npt.NDArray[np.float32] = np.divide(
        centred, spread, out=np.zeros_like(centred), where=spread > 0
    ).astype(np.float32)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class BlendModel:
    """Attributes: components by name (COMPONENTS order) and their weights, (len,) float32."""

    components: Mapping[str, Recommender]
    weights: npt.NDArray[np.float32]

    @property
    def n_items(self) -> int:
        """Number of tracks."""
        return next(iter(self.components.values())).n_items

    def score(
        self, user_idx: npt.NDArray[np.int64], user_items: sp.csr_matrix
    ) -> npt.NDArray[np.float32]:
        """sum_m w_m * standardised(score_m): (len(user_idx), n_items) float32."""
        total = np.zeros((len(user_idx), self.n_items), dtype=np.float32)
        for weight, model in zip(self.weights, self.components.values(), strict=True):
            if weight != 0:
                total += weight * standardised(model.score(user_idx, user_items))
        return total

    def score_new(self, user_items: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """New listeners, from their rows: the components' fold-in scores, blended alike."""
        total = np.zeros((user_items.shape[0], self.n_items), dtype=np.float32)
        for weight, model in zip(self.weights, self.components.values(), strict=True):
            if weight != 0:
                if not isinstance(model, FoldIn):
                    msg = f"blend: component {type(model).__name__} cannot fold in listeners"
                    raise TypeError(msg)
                total += weight * standardised(model.score_new(user_items))
        return total

    def arrays(self) -> Arrays:
        """Each component's arrays prefixed "<name>__", plus `weights`."""
        out: Arrays = {"weights": self.weights}
        for name, model in self.components.items():
            out |= {f"{name}__{k}": v for k, v in model.arrays().items()}
        return out


def build_blend(components: Mapping[str, Recommender], weights: tuple[float, ...]) -> BlendModel:
    """The blend of `components` (COMPONENTS order) with one weight each (>= 0, not all 0)."""
    if len(weights) != len(components):
        msg = f"blend: {len(components)} components need as many weights, got {len(weights)}."
        raise ValueError(msg)
    return BlendModel(components=dict(components), weights=np.asarray(weights, np.float32))


def component_arrays(arrays: Arrays, name: str) -> Arrays:
    """The arrays of component `name` inside a blend's arrays."""
    prefix = f"{name}__"
    return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}
