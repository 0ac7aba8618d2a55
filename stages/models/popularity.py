"""Popularity baseline: every user gets the tracks with the most listeners."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp


@dataclass(frozen=True, slots=True, kw_only=True)
class PopularityModel:
    """Attributes: item_scores, (n_items,) float32 share of training users who played each track."""

    item_scores: npt.NDArray[np.float32]

    @property
    def n_items(self) -> int:
        """Number of tracks."""
        return int(self.item_scores.shape[0])

    def score(
        self, user_idx: npt.NDArray[np.int64], user_items: sp.csr_matrix
    ) -> npt.NDArray[np.float32]:
        """The same popularity row for every user: (len(user_idx), n_items) float32."""
        return np.tile(self.item_scores, (len(user_idx), 1))

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """{'item_scores': (n_items,) float32}."""
        return {"item_scores": self.item_scores}


def fit_popularity(user_items: sp.csr_matrix) -> PopularityModel:
    """Listener share per track from a (n_users, n_items) CSR of training interactions."""
    listeners = np.diff(user_items.tocsc().indptr).astype(np.float32)
    return PopularityModel(item_scores=listeners / max(user_items.shape[0], 1))


def load_popularity(arrays: dict[str, npt.NDArray[np.generic]]) -> PopularityModel:
    """Inverse of `PopularityModel.arrays`."""
    return PopularityModel(item_scores=arrays["item_scores"].astype(np.float32))
