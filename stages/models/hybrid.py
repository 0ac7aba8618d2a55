"""Hybrid: a per-user weighted blend of ALS, content, popularity and RP3beta scores.

Each model's scores are min-max normalised per user before blending, so that weights mean
shares and not scales. The weights follow the user's history: users with no tracks get
content and popularity only (cold start), users with fewer than `min_tracks` tracks a second
set, everyone else a third (defaults in musicrec.toml, measured on held-out users:
docs/evaluation.md). Listeners not in the data (fold-in) get a fourth set, `liked`.
The few and warm sets depend on the catalogue: one pair for catalogues with audio features,
another (`few_no_audio`, `warm_no_audio`) for those without, chosen once when the hybrid is
built (on the default data a popularity share helps, on msd-taste's play counts it loses to
ALS). Every set is scaled to sum to 1, and without audio features content's share is dropped
and the others keep their proportions (`effective_weights`): content scores nothing there.
RP3beta is a component because on held-out users it beat every blend of the other three
(docs/evaluation.md, cold start).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from stages.models import Arrays, Explanation, Share, UserHistory
from stages.models.als import AlsModel, load_als
from stages.models.content import ContentModel, load_content
from stages.models.knn import KnnModel, load_knn
from stages.models.popularity import PopularityModel, load_popularity
from stages.schema import SchemaError

COMPONENTS = ("als", "content", "popularity", "rp3beta")
HISTORY = ("cold", "few", "warm")
_CONTENT, _POPULARITY = COMPONENTS.index("content"), COMPONENTS.index("popularity")


def effective_weights(weights: npt.ArrayLike, *, has_audio: bool) -> npt.NDArray[np.float32]:
    """Blend weights as used: each row scaled to sum to 1, content's share dropped without audio.

    Args:
        weights: (4,) or (m, 4) weights >= 0 in COMPONENTS order.
        has_audio: Whether any track of the catalogue has audio features. Without, content
            scores every track alike and its share would only dilute the others.

    Returns:
        float32 of the same shape; a row left with nothing (content only, without audio) goes
        to popularity, the one component that ranks everyone.
    """
    table = np.array(weights, dtype=np.float64)
    rows = table.reshape(-1, len(COMPONENTS))
    if not has_audio:
        rows[:, _CONTENT] = 0.0
    total = rows.sum(axis=1)
    rows[total == 0, _POPULARITY] = 1.0
    rows /= rows.sum(axis=1, keepdims=True)
    return table.astype(np.float32)


def normalise_rows(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Min-max scale each row to [0, 1]; constant rows become 0. (b, n) float32."""
    low = scores.min(axis=1, keepdims=True)
    span = scores.max(axis=1, keepdims=True) - low
    span[span == 0] = np.inf  # constant row: (x - low) / inf = 0
    out = np.asarray(scores - low, dtype=np.float32)
    out /= span
    return out


def history_weights(
    n_tracks: npt.NDArray[np.integer], weights: npt.NDArray[np.float32], *, min_tracks: int
) -> npt.NDArray[np.float32]:
    """Blend weights per user from the number of distinct tracks heard.

    Args:
        n_tracks: (b,) distinct tracks per user.
        weights: (3, 4) rows cold (0 tracks), few (< min_tracks), warm; columns COMPONENTS.
        min_tracks: Users with at least this many tracks are warm.

    Returns:
        (b, 4) float32, row i the weights of user i.
    """
    level = np.where(n_tracks == 0, 0, np.where(n_tracks < min_tracks, 1, 2))
    return weights[level]


@dataclass(frozen=True, slots=True, kw_only=True)
class HybridModel:
    """Attributes: the four components, weights (3, 4) float32, min_tracks, liked (4,) float32.

    `weights` are those of the catalogue (with or without audio), as used. `liked` (the
    fold-in weights) is a setting kept in models.json, not in the NPZ.
    """

    als: AlsModel
    content: ContentModel
    popularity: PopularityModel
    rp3beta: KnnModel
    weights: npt.NDArray[np.float32]
    min_tracks: int
    liked: npt.NDArray[np.float32]

    @property
    def n_items(self) -> int:
        """Number of tracks."""
        return self.popularity.n_items

    def raw_scores(
        self,
        name: str,
        user_items: sp.csr_matrix,
        *,
        user_idx: npt.NDArray[np.int64] | None = None,
        user_factors: npt.NDArray[np.float32] | None = None,
    ) -> npt.NDArray[np.float32]:
        """One component's scores before normalisation: (b, n_items) float32.

        ALS scores come from the trained users (`user_idx`) or from folded-in factors
        (`user_factors`); with neither, they are 0 (users unknown to ALS).
        """
        b = user_items.shape[0]
        if name == "als":
            if user_factors is None and user_idx is not None:
                user_factors = self.als.user_factors[user_idx]
            if user_factors is None:
                return np.zeros((b, self.n_items), dtype=np.float32)
            return np.asarray(user_factors @ self.als.item_factors.T, dtype=np.float32)
        model: ContentModel | PopularityModel | KnnModel = getattr(self, name)
        return np.asarray(model.score(np.arange(b), user_items), dtype=np.float32)

    def parts(
        self,
        user_items: sp.csr_matrix,
        *,
        user_idx: npt.NDArray[np.int64] | None = None,
        user_factors: npt.NDArray[np.float32] | None = None,
    ) -> dict[str, npt.NDArray[np.float32]]:
        """Each component's normalised scores, (b, n_items) float32, by component name."""
        return {
            name: normalise_rows(
                self.raw_scores(name, user_items, user_idx=user_idx, user_factors=user_factors)
            )
            for name in COMPONENTS
        }

    def user_weights(self, user_items: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """(b, 4) blend weights from each row's number of tracks."""
        n_tracks = np.diff(user_items.indptr)
        return history_weights(n_tracks, self.weights, min_tracks=self.min_tracks)

    def score(
        self, user_idx: npt.NDArray[np.int64], user_items: sp.csr_matrix
    ) -> npt.NDArray[np.float32]:
        """Weighted blend of normalised scores: (len(user_idx), n_items) float32.

        Components are added one at a time (and skipped where every weight is 0), so a block
        holds two (b, n_items) arrays at most, not one per component.
        """
        weights = self.user_weights(user_items)
        total = np.zeros((user_items.shape[0], self.n_items), dtype=np.float32)
        for j, name in enumerate(COMPONENTS):
            if weights[:, j].any():
                part = normalise_rows(self.raw_scores(name, user_items, user_idx=user_idx))
                part *= weights[:, [j]]
                total += part
        return total

    def score_new(self, user_items: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """Blend for new listeners: ALS folded in, weighted by `liked`: (b, n_items) float32."""
        parts = self.parts(user_items, user_factors=self.als.fold_in(user_items))
        weights = np.repeat(self.liked[None, :], user_items.shape[0], axis=0)
        return blend(parts, weights)

    def shares(self, user_idx: int, user_row: sp.csr_matrix, track_idx: int) -> list[Share]:
        """Each component's weight, normalised score and share of the user's blended score."""
        parts = self.parts(user_row, user_idx=np.asarray([user_idx]))
        weights = self.user_weights(user_row)[0]
        values = [float(weights[j] * parts[c][0, track_idx]) for j, c in enumerate(COMPONENTS)]
        total = sum(values)
        return [
            Share(
                model=c,
                weight=float(weights[j]),
                normalised_score=float(parts[c][0, track_idx]),
                contribution=values[j],
                share=values[j] / total if total > 0 else 0.0,
            )
            for j, c in enumerate(COMPONENTS)
        ]

    def explain(self, user: UserHistory, track_idx: int, *, n: int) -> Explanation:
        """The components' shares of the score, and the ALS, content and RP3beta contributions."""
        found = {
            **self.als.explain(user, track_idx, n=n).contributions,
            **self.content.explain(user, track_idx, n=n).contributions,
            **self.rp3beta.explain(user, track_idx, n=n).contributions,
        }
        return Explanation(
            contributions=found, shares=self.shares(user.user_idx, user.counts, track_idx)
        )

    def arrays(self) -> Arrays:
        """Component arrays prefixed '<component>__' (COMPONENTS), plus the weights."""
        out: Arrays = {
            "weights": self.weights,
            "min_tracks": np.asarray(self.min_tracks, dtype=np.int64),
        }
        for name in COMPONENTS:
            model = getattr(self, name)
            out |= {f"{name}__{k}": v for k, v in model.arrays().items()}
        return out


def blend(
    parts: dict[str, npt.NDArray[np.float32]], weights: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """Sum of weights[:, j] x parts[COMPONENTS[j]]: (b, n_items) float32."""
    total = np.zeros_like(parts[COMPONENTS[0]])
    for j, name in enumerate(COMPONENTS):
        total += weights[:, [j]] * parts[name]
    return total


def catalogue_weights(
    weights: dict[str, tuple[float, ...]], *, has_audio: bool
) -> list[tuple[float, ...]]:
    """The cold, few and warm sets for a catalogue with or without audio features.

    Args:
        weights: 'cold', 'few', 'warm', 'few_no_audio', 'warm_no_audio' -> 4 weights in
            COMPONENTS order.
        has_audio: Whether any track has audio features; without, few and warm come from the
            '_no_audio' sets.
    """
    suffix = "" if has_audio else "_no_audio"
    return [weights["cold"], weights["few" + suffix], weights["warm" + suffix]]


def build_hybrid(
    *,
    als: AlsModel,
    content: ContentModel,
    popularity: PopularityModel,
    rp3beta: KnnModel,
    weights: dict[str, tuple[float, ...]],
    min_tracks: int,
    liked: tuple[float, ...],
) -> HybridModel:
    """A hybrid of fitted components.

    Args:
        als: The ALS component.
        content: The content component.
        popularity: The popularity component.
        rp3beta: The RP3beta component (item-item, scored from the history row).
        weights: See `catalogue_weights`.
        min_tracks: Users with at least this many tracks are warm.
        liked: 4 weights for listeners not in the data (fold-in).

    The sets of the catalogue go through `effective_weights` (sums to 1; no content share when
    no track of `content` has audio features).
    """
    has_audio = bool(content.has_features.any())
    table = catalogue_weights(weights, has_audio=has_audio)
    return HybridModel(
        als=als,
        content=content,
        popularity=popularity,
        rp3beta=rp3beta,
        weights=effective_weights(table, has_audio=has_audio),
        min_tracks=min_tracks,
        liked=effective_weights(liked, has_audio=has_audio),
    )


def load_hybrid(arrays: Arrays, *, liked: tuple[float, ...]) -> HybridModel:
    """Inverse of `HybridModel.arrays`; `liked` comes from models.json."""

    def part(name: str) -> Arrays:
        prefix = f"{name}__"
        return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}

    if np.shape(arrays["weights"]) != (len(HISTORY), len(COMPONENTS)):
        msg = (
            f"hybrid: saved weights have shape {np.shape(arrays['weights'])}, expected "
            f"{(len(HISTORY), len(COMPONENTS))} for {list(COMPONENTS)} (a model trained before "
            "RP3beta joined the hybrid); rerun `musicrec train`."
        )
        raise SchemaError(msg)
    content = load_content(part("content"))
    has_audio = bool(content.has_features.any())
    return HybridModel(
        als=load_als(part("als")),
        content=content,
        popularity=load_popularity(part("popularity")),
        rp3beta=load_knn(part("rp3beta"), name="rp3beta"),
        weights=effective_weights(arrays["weights"], has_audio=has_audio),
        min_tracks=int(arrays["min_tracks"]),
        liked=effective_weights(liked, has_audio=has_audio),
    )
