"""Recommender models: one module per family, each fit -> arrays, saved as NPZ + JSON."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp


class Recommender(Protocol):
    """What `predict` needs of a trained model."""

    @property
    def n_items(self) -> int:
        """Number of tracks the model scores."""
        ...

    def score(
        self, user_idx: npt.NDArray[np.int64], user_items: sp.csr_matrix
    ) -> npt.NDArray[np.float32]:
        """Scores of every track for each user: (len(user_idx), n_items) float32.

        Args:
            user_idx: (n,) users to score.
            user_items: (n, n_items) CSR of those users' training interactions, row i for
                user_idx[i].
        """
        ...

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """The model's state as named arrays, for an NPZ file."""
        ...
