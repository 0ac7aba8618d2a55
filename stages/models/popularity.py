"""Popularity baselines: every user gets the most-played tracks, all-time or trending."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from stages.models import Arrays


@dataclass(frozen=True, slots=True, kw_only=True)
class PopularityModel:
    """Attributes: item_scores, (n_items,) float32 popularity of each track (higher = better)."""

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

    def score_new(self, user_items: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """The same popularity row for new listeners too: (b, n_items) float32."""
        return self.score(np.arange(user_items.shape[0]), user_items)

    def arrays(self) -> Arrays:
        """{'item_scores': (n_items,) float32}."""
        return {"item_scores": self.item_scores}


def fit_popularity(user_items: sp.csr_matrix) -> PopularityModel:
    """Listener share per track from a (n_users, n_items) CSR of training interactions.

    The definition of `stages.interactions.listener_share` (listeners / users with at least
    one training track), computed on the CSR the model is fitted from.
    """
    listeners = _column_counts(user_items).astype(np.float32)
    users = int((np.diff(user_items.indptr) > 0).sum())
    return PopularityModel(item_scores=(listeners / max(users, 1)).astype(np.float32))


def fit_trending(
    track_idx: npt.NDArray[np.integer],
    play_count: npt.NDArray[np.integer],
    age_days: npt.NDArray[np.floating],
    *,
    n_items: int,
    half_life_days: float,
) -> PopularityModel:
    """Plays with exponential time decay: sum of play_count * 2 ** (-age_days / half_life_days).

    Args:
        track_idx: (p,) track of each (user, track) pair.
        play_count: (p,) plays of the pair.
        age_days: (p,) days between the pair's last play and the newest play of the data set.
        n_items: Number of tracks (length of the result).
        half_life_days: A play this many days old counts half as much as one today. > 0.

    Returns:
        PopularityModel whose scores are the decayed play counts divided by their maximum.
    """
    decayed = play_count.astype(np.float64) * np.exp2(-age_days.astype(np.float64) / half_life_days)
    totals = np.bincount(track_idx, weights=decayed, minlength=n_items)
    top = totals.max() if totals.size else 0.0
    return PopularityModel(item_scores=(totals / top if top > 0 else totals).astype(np.float32))


def load_popularity(arrays: Arrays) -> PopularityModel:
    """Inverse of `PopularityModel.arrays`."""
    return PopularityModel(item_scores=arrays["item_scores"].astype(np.float32))


def _column_counts(matrix: sp.csr_matrix, *, block: int = 1 << 24) -> npt.NDArray[np.int64]:
    """Stored entries per column of a CSR: (n_cols,) int64.

    Counted in blocks of the indices: `tocsc()` would copy the matrix (2 GB at 254M pairs) and
    one `np.bincount` copies the int32 indices to int64 (the same 2 GB).
    """
    counts = np.zeros(matrix.shape[1], dtype=np.int64)
    for start in range(0, matrix.nnz, block):
        counts += np.bincount(matrix.indices[start : start + block], minlength=matrix.shape[1])
    return counts
