"""The base class of factor models (ALS, BPR): scores are dot products of user and item factors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from stages.models import Arrays


@dataclass(frozen=True, slots=True, kw_only=True)
class FactorModel:
    """Attributes: user_factors (n_users, f) and item_factors (n_items, f), float32.

    Subclasses are `stages.models.Factorised`, so predict ranks them with its exact pruned
    top-k over the factors (`stages.predict.FactorTopK`) instead of dense scores.
    """

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

    def arrays(self) -> Arrays:
        """{'user_factors', 'item_factors'}."""
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}
