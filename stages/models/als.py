"""Implicit-feedback ALS (Hu, Koren and Volinsky 2008) through the `implicit` library."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

IterationCallback = Callable[[int, float, float], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class AlsModel:
    """Attributes: user_factors (n_users, f) and item_factors (n_items, f), float32."""

    user_factors: npt.NDArray[np.float32]
    item_factors: npt.NDArray[np.float32]

    @property
    def n_items(self) -> int:
        """Number of tracks."""
        return int(self.item_factors.shape[0])

    def score(
        self, user_idx: npt.NDArray[np.int64], user_items: sp.csr_matrix
    ) -> npt.NDArray[np.float32]:
        """Dot products of user and item factors: (len(user_idx), n_items) float32."""
        return self.user_factors[user_idx] @ self.item_factors.T

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """{'user_factors', 'item_factors'}."""
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def to_implicit(self) -> AlternatingLeastSquares:
        """An implicit model holding these factors, for its recommend/explain/recalculate_user."""
        with threadpool_limits(1, "blas"):  # implicit checks the BLAS threads on construction
            model = AlternatingLeastSquares(factors=self.user_factors.shape[1])
        model.user_factors = self.user_factors
        model.item_factors = self.item_factors
        return model


def fit_als(
    user_items: sp.csr_matrix,
    *,
    factors: int,
    iterations: int,
    regularization: float,
    alpha: float,
    seed: int,
    callback: IterationCallback | None = None,
) -> AlsModel:
    """Fit ALS on a (n_users, n_items) float32 CSR of confidence weights.

    BLAS is limited to one thread while fitting: implicit parallelises over users itself, and a
    second BLAS thread pool makes it several times slower (implicit's own warning).
    """
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=factors,
            iterations=iterations,
            regularization=regularization,
            alpha=alpha,
            random_state=seed,
        )
        model.fit(user_items, show_progress=False, callback=callback)
    return AlsModel(
        user_factors=np.ascontiguousarray(model.user_factors, dtype=np.float32),
        item_factors=np.ascontiguousarray(model.item_factors, dtype=np.float32),
    )


def load_als(arrays: dict[str, npt.NDArray[np.generic]]) -> AlsModel:
    """Inverse of `AlsModel.arrays`."""
    return AlsModel(
        user_factors=arrays["user_factors"].astype(np.float32),
        item_factors=arrays["item_factors"].astype(np.float32),
    )
