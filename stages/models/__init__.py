"""Recommender models: one module per family, the list of them in `registry.py`.

Every model is a `Recommender`; what else it can do is a capability, a protocol below that the
model class implements and that its registry entry names, so callers (predict, the query
commands, a server) ask `registry.spec(name).capabilities` and never branch on model types:

- "similar" (`SimilarTracks`): tracks like a given track, without a user.
- "fold_in" (`FoldIn`): scores for listeners not in the training data, from their tracks.
- "explain" (`Explains`): the heard tracks behind one score.

Two scoring shortcuts are structural: `Factorised` models (score = user_factors @
item_factors.T) and `SharedScores` models (one score row for everybody) let predict skip the
dense (users, n_items) score matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

Arrays = dict[str, npt.NDArray[np.generic]]


class MemoryPlanError(MemoryError):
    """A fit would need more memory than it is allowed; raised before allocating (EASE)."""


class NotScorableError(ValueError):
    """The model has no answer for this input (a seed track without audio features, say)."""


class Recommender(Protocol):
    """What every trained model does: score tracks for training users, and save itself."""

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

    def arrays(self) -> Arrays:
        """The model's state as named arrays, for an NPZ file."""
        ...


@runtime_checkable
class SimilarTracks(Protocol):
    """Capability "similar": how alike every track is to one track."""

    def similar_items(self, track_idx: int) -> npt.NDArray[np.float32]:
        """(n_items,) float32 similarity to `track_idx`; -inf for tracks that are no candidate.

        Raises:
            NotScorableError: The model knows nothing of `track_idx` (no features, say).
        """
        ...


@runtime_checkable
class FoldIn(Protocol):
    """Capability "fold_in": scores for people who are not in the training data."""

    def score_new(self, user_items: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """(b, n_items) float32 scores from a (b, n_items) CSR of each new listener's tracks."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Share:
    """One component's part in a blended score: weight x normalised score = contribution."""

    model: str
    weight: float
    normalised_score: float
    contribution: float
    share: float


@dataclass(frozen=True, slots=True, kw_only=True)
class UserHistory:
    """One training user as the models see them.

    Attributes:
        user_idx: The user's index.
        counts: (1, n_items) float32 CSR of play counts in train (02_split).
        weights: (1, n_items) float32 CSR of confidence weights (03_features), same tracks.
    """

    user_idx: int
    counts: sp.csr_matrix
    weights: sp.csr_matrix


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    """Why a track scores what it does for one user.

    Attributes:
        contributions: Per model (or component) name, (track_idx, contribution) of the heard
            tracks contributing most, largest first.
        shares: For blends, each component's part of the score (else empty).
    """

    contributions: dict[str, list[tuple[int, float]]]
    shares: list[Share]


@runtime_checkable
class Explains(Protocol):
    """Capability "explain": the heard tracks behind one user's score of one track."""

    def explain(self, user: UserHistory, track_idx: int, *, n: int) -> Explanation:
        """At most `n` contributions per model, largest first."""
        ...


@runtime_checkable
class Factorised(Protocol):
    """A model whose score is user_factors[u] @ item_factors.T (ALS, BPR)."""

    @property
    def user_factors(self) -> npt.NDArray[np.float32]:
        """(n_users, f) float32."""
        ...

    @property
    def item_factors(self) -> npt.NDArray[np.float32]:
        """(n_items, f) float32."""
        ...


@runtime_checkable
class SharedScores(Protocol):
    """A model that gives every user the same score row (popularity, trending)."""

    @property
    def item_scores(self) -> npt.NDArray[np.float32]:
        """(n_items,) float32."""
        ...


def top_contributions(
    values: npt.NDArray[np.float32], user_row: sp.csr_matrix, *, n: int
) -> list[tuple[int, float]]:
    """The `n` heard tracks with the largest positive (n_items,) contributions, largest first."""
    heard = user_row.indices[values[user_row.indices] > 0]
    order = heard[np.argsort(-values[heard], kind="stable")][:n]
    return [(int(i), float(values[i])) for i in order]
