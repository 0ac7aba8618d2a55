"""Implicit-feedback ALS (Hu, Koren and Volinsky 2008): implicit's algorithm, our compiled sweep."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from stages.models import Arrays, Explanation, UserHistory
from stages.models.factors import FactorModel

if TYPE_CHECKING:
    from implicit.cpu.als import AlternatingLeastSquares

# implicit is imported where it is used (~0.2 s of CPU, and every musicrec command imports the
# model registry, most of them never fitting a model)

IterationCallback = Callable[[int, float], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class AlsModel(FactorModel):
    """Attributes: user_factors (n_users, f) and item_factors (n_items, f), float32.

    `regularization` and `alpha` are the fitting settings, kept so that fold-in
    (`fold_in`) and `explain` solve the same least-squares problem as training.
    """

    regularization: float = 0.05
    alpha: float = 1.0

    def arrays(self) -> Arrays:
        """{'user_factors', 'item_factors', 'regularization', 'alpha'} (the last two 0-d)."""
        return {
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "regularization": np.asarray(self.regularization, dtype=np.float64),
            "alpha": np.asarray(self.alpha, dtype=np.float64),
        }

    def to_implicit(self) -> AlternatingLeastSquares:
        """An implicit model holding these factors, for its recommend/explain/recalculate_user."""
        from implicit.cpu.als import AlternatingLeastSquares

        with threadpool_limits(1, "blas"):  # implicit checks the BLAS threads on construction
            model = AlternatingLeastSquares(
                factors=self.user_factors.shape[1],
                regularization=self.regularization,
                alpha=self.alpha,
            )
        model.user_factors = self.user_factors
        model.item_factors = self.item_factors
        return model

    def fold_in(self, user_items: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """Factors of users not in training, from their items: (b, f) float32.

        Args:
            user_items: (b, n_items) CSR of confidence weights, one row per new user.
        """
        with threadpool_limits(1, "blas"):
            factors = self.to_implicit().recalculate_user(
                np.arange(user_items.shape[0]), sp.csr_matrix(user_items, dtype=np.float32)
            )
        return np.asarray(factors, dtype=np.float32)

    def score_new(self, user_items: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """Scores for new listeners from their folded-in factors: (b, n_items) float32."""
        return np.asarray(self.fold_in(user_items) @ self.item_factors.T, dtype=np.float32)

    def explain(self, user: UserHistory, track_idx: int, *, n: int) -> Explanation:
        """The `n` heard tracks contributing most to the user's score of `track_idx`.

        Uses the user's confidence weights, what ALS was fitted on (implicit's `explain`,
        Hu et al. 2008, section 5); contributions are under "als", largest first.
        """
        with threadpool_limits(1, "blas"):
            _, top, _ = self.to_implicit().explain(
                0, sp.csr_matrix(user.weights, dtype=np.float32), int(track_idx), N=n
            )
        return Explanation(contributions={"als": [(int(i), float(s)) for i, s in top]}, shares=[])

    def similar_items(self, track_idx: int) -> npt.NDArray[np.float32]:
        """Cosine similarity of one track's factors to every track's: (n_items,) float32."""
        norms = np.linalg.norm(self.item_factors, axis=1)
        norms[norms == 0] = 1.0
        seed = self.item_factors[track_idx] / norms[track_idx]
        similarity: npt.NDArray[np.float32] = ((self.item_factors @ seed) / norms).astype(
            np.float32
        )
        return similarity


def bm25_confidence(counts: sp.csr_matrix, *, k1: float, b: float) -> sp.csr_matrix:
    """BM25-weighted (n_users, n_items) float32 CSR from play counts (implicit's bm25_weight).

    Tracks are the "documents" and users the "terms", as in implicit's lastfm example: a user
    who plays everything says less about each track.
    """
    from implicit.nearest_neighbours import bm25_weight

    return sp.csr_matrix(bm25_weight(counts.T, K1=k1, B=b).T, dtype=np.float32)


def fit_als(
    user_items: sp.csr_matrix,
    *,
    factors: int,
    iterations: int,
    regularization: float,
    alpha: float,
    seed: int,
    callback: IterationCallback | None = None,
    scale_in_place: bool = False,
    cg_steps: int = 3,
) -> AlsModel:
    """Fit ALS on a (n_users, n_items) float32 CSR of confidence weights.

    implicit's algorithm (`AlternatingLeastSquares` with conjugate gradient: same random start
    for a seed, same sweeps, same float32 arithmetic up to the order of sums) with the sweep
    compiled by numba (`stages.models.als_cg`), 2-3x faster than implicit's at the 800M shape.
    The confidence alpha * user_items is formed here; with `scale_in_place` (the caller needs
    `user_items` no more) its values are scaled where they are, otherwise beside it, sharing
    its indices.

    `callback(iteration, seconds)` is called after each iteration.
    """
    from stages.models import als_cg

    confidence = user_items
    if user_items.dtype != np.float32:
        confidence, scale_in_place = user_items.astype(np.float32), True  # our own copy
    if alpha != 1.0:
        scale = np.float32(alpha)
        if scale_in_place:
            confidence.data *= scale
        else:
            confidence = sp.csr_matrix(
                (np.multiply(confidence.data, scale, dtype=np.float32), confidence.indices,
                 confidence.indptr), shape=confidence.shape, copy=False,
            )  # fmt: skip
    by_item = confidence.T.tocsr()
    rng = np.random.default_rng(seed)  # implicit's start: check_random_state(seed).random
    n_users, n_items = confidence.shape
    user_factors = rng.random((n_users, factors), dtype=np.float32) * np.float32(0.01)
    item_factors = rng.random((n_items, factors), dtype=np.float32) * np.float32(0.01)
    with threadpool_limits(1, "blas"):  # YtY on one thread beside numba's
        for iteration in range(iterations):
            start = time.perf_counter()
            als_cg.cg_sweep(
                confidence.indptr, confidence.indices, confidence.data,
                user_factors, item_factors, regularization, cg_steps,
            )  # fmt: skip
            als_cg.cg_sweep(
                by_item.indptr, by_item.indices, by_item.data,
                item_factors, user_factors, regularization, cg_steps,
            )  # fmt: skip
            if callback is not None:
                callback(iteration, time.perf_counter() - start)
    if not (np.isfinite(user_factors).all() and np.isfinite(item_factors).all()):
        msg = f"ALS diverged (non-finite factors); raise the regularization ({regularization})"
        raise ValueError(msg)
    return AlsModel(
        user_factors=user_factors,
        item_factors=item_factors,
        regularization=regularization,
        alpha=alpha,
    )


def load_als(arrays: Arrays) -> AlsModel:
    """Inverse of `AlsModel.arrays` (files without the settings load with the defaults)."""
    extra = {k: float(arrays[k]) for k in ("regularization", "alpha") if k in arrays}
    return AlsModel(
        user_factors=arrays["user_factors"].astype(np.float32),
        item_factors=arrays["item_factors"].astype(np.float32),
        **extra,
    )
