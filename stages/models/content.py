"""Content-based: cosine similarity of standardised audio features (scikit-learn).

A user's profile is the play-weighted mean of the feature vectors of the tracks they heard;
tracks are scored by the cosine similarity of their vector to the profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from stages.audio import standardise
from stages.models import Arrays, Explanation, NotScorableError, UserHistory, top_contributions

# sklearn is imported where it is used: it takes 0.9 s to import, which every `musicrec`
# command paid (the CLI imports this module to register `recommend`), preprocess included


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentModel:
    """Attributes: item_vectors, (n_items, d) float32 standardised features (0 where unknown)."""

    item_vectors: npt.NDArray[np.float32]

    @property
    def n_items(self) -> int:
        """Number of tracks."""
        return int(self.item_vectors.shape[0])

    def profiles(self, user_items: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """Play-weighted mean feature vector per user: (b, d) float32 (0 for no history)."""
        weights = np.asarray(user_items.sum(axis=1), dtype=np.float64).ravel()
        weights[weights == 0] = 1.0
        sums = np.asarray(user_items @ self.item_vectors, dtype=np.float64)
        return (sums / weights[:, None]).astype(np.float32)

    def score(
        self, user_idx: npt.NDArray[np.int64], user_items: sp.csr_matrix
    ) -> npt.NDArray[np.float32]:
        """Cosine of each track to the user's profile: (len(user_idx), n_items) float32.

        Tracks without audio features score -1 (the minimum); users none of whose tracks
        have features score 0 everywhere.
        """
        if self.item_vectors.shape[1] == 0:
            return np.zeros((user_items.shape[0], self.n_items), dtype=np.float32)
        from sklearn.metrics.pairwise import cosine_similarity  # noqa: PLC0415

        profiles = self.profiles(user_items)
        sims = np.asarray(cosine_similarity(profiles, self.item_vectors), dtype=np.float32)
        sims[:, ~self.has_features] = -1.0  # unknown sound ranks last, not mid-table at 0
        sims[~np.any(profiles != 0, axis=1)] = 0.0  # no profile: no opinion on any track
        return sims

    @property
    def has_features(self) -> npt.NDArray[np.bool_]:
        """(n_items,) True where the track has audio features (a non-zero vector)."""
        return np.asarray(np.any(self.item_vectors != 0, axis=1))

    def cosines(self, track_idx: int) -> npt.NDArray[np.float32]:
        """Cosine of one track's vector to every track's: (n_items,) float32, -1 if unknown."""
        if self.item_vectors.shape[1] == 0:
            return np.zeros(self.n_items, dtype=np.float32)
        from sklearn.metrics.pairwise import cosine_similarity  # noqa: PLC0415

        seed = self.item_vectors[[track_idx]]
        sims = np.asarray(cosine_similarity(seed, self.item_vectors)[0], dtype=np.float32)
        sims[~self.has_features] = -1.0
        return sims

    def similar_items(self, track_idx: int) -> npt.NDArray[np.float32]:
        """Audio-feature cosine to `track_idx`: (n_items,) float32, -inf for unknown sound.

        Raises:
            NotScorableError: `track_idx` has no audio features.
        """
        if not self.has_features[track_idx]:
            msg = f"track {track_idx} has no audio features in the catalogue"
            raise NotScorableError(msg)
        scores = self.cosines(track_idx)
        scores[~self.has_features] = -np.inf
        return scores

    def score_new(self, user_items: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """New listeners are scored like training users, from their rows: (b, n_items)."""
        return self.score(np.arange(user_items.shape[0]), user_items)

    def explain(self, user: UserHistory, track_idx: int, *, n: int) -> Explanation:
        """Heard tracks by weight x audio-feature cosine, under "content" (none if no features)."""
        if self.item_vectors.shape[1] == 0:
            return Explanation(contributions={}, shares=[])
        values = np.asarray(user.counts.toarray().ravel() * self.cosines(track_idx))
        contributions = top_contributions(values.astype(np.float32), user.counts, n=n)
        return Explanation(contributions={"content": contributions}, shares=[])

    def arrays(self) -> Arrays:
        """{'item_vectors': (n_items, d) float32}."""
        return {"item_vectors": self.item_vectors}


def fit_content(features: npt.NDArray[np.floating]) -> ContentModel:
    """Z-scores (`stages.audio.standardise`) of (n_items, d) audio features; unknown -> 0.

    Standardising keeps tempo (tens of BPM) from outweighing features in [0, 1]. A track with
    any feature unknown (NaN) gets the zero vector, so it has no features here (its score is
    -1). With d = 0, or nothing known, the model scores every track 0.
    """
    values = np.asarray(features, dtype=np.float64)
    if values.shape[1] == 0 or np.isnan(values).all():
        return ContentModel(item_vectors=np.zeros((values.shape[0], 0), dtype=np.float32))
    known = np.asarray(~np.isnan(values).any(axis=1))
    scaled = np.where(known[:, None], standardise(values), 0.0)
    return ContentModel(item_vectors=scaled.astype(np.float32))


def load_content(arrays: Arrays) -> ContentModel:
    """Inverse of `ContentModel.arrays`."""
    return ContentModel(item_vectors=arrays["item_vectors"].astype(np.float32))
