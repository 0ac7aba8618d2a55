"""Pure functions behind `recommend`, `similar` and `explain`: fold-in, ranking, why.

Finding the user or tracks a command names (and the closest names when there is none) is
stages/lookup.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from stages import songs
from stages.lookup import LookupFailedError
from stages.models import (
    Explains,
    Explanation,
    FoldIn,
    NotScorableError,
    Recommender,
    SimilarTracks,
    UserHistory,
    registry,
)
from stages.schema import TRACK_GROUP_ID, TRACK_IDX


def liked_row(track_idx: Sequence[int], *, n_items: int) -> sp.csr_matrix:
    """(1, n_items) float32 CSR with weight 1 for each liked track (duplicates merged)."""
    cols = np.unique(np.asarray(track_idx, dtype=np.int64))
    data = np.ones(len(cols), dtype=np.float32)
    return sp.csr_matrix((data, cols, [0, len(cols)]), shape=(1, n_items))


def _others(capability: registry.Capability, name: str) -> str:
    return ", ".join(m for m in registry.with_capability(capability) if m != name)


def liked_scores(model: Recommender, row: sp.csr_matrix, *, name: str) -> npt.NDArray[np.float32]:
    """Scores of every track for someone not in the data, from a (1, n_items) liked row.

    Returns:
        (n_items,) float32 (see `stages.models.FoldIn`: ALS folds the listener in, the hybrid
        blends that with content using its `liked` weights, the others score the row).

    Raises:
        LookupFailedError: Model `name` cannot score new listeners.
    """
    if not isinstance(model, FoldIn):
        msg = f"model {name!r} cannot score new listeners; use {_others('fold_in', name)}."
        raise LookupFailedError(msg)
    scores: npt.NDArray[np.float32] = model.score_new(row)[0]
    return scores


def similar_scores(model: Recommender, seed: int, *, name: str) -> npt.NDArray[np.float32]:
    """(n_items,) float32 similarity of every track to `seed` (-inf: not a candidate).

    Raises:
        LookupFailedError: Model `name` has no track similarity, or none for `seed`.
    """
    if not isinstance(model, SimilarTracks):
        msg = f"model {name!r} has no track similarity; use {_others('similar', name)}."
        raise LookupFailedError(msg)
    try:
        return model.similar_items(seed)
    except NotScorableError as exc:
        msg = f"{exc}; try --model {_others('similar', name).replace(', ', ' or ')}."
        raise LookupFailedError(msg) from exc


def explainers(trained: Sequence[str]) -> tuple[str, ...]:
    """The trained models to ask for an explanation, in registry order.

    Those with the "explain" capability, except components of another one (the hybrid
    explains its ALS and content), so each name is explained once and loaded once.
    """
    able = [m for m in registry.with_capability("explain") if m in trained]
    inside = {need for m in able for need in registry.spec(m).needs}
    return tuple(m for m in able if m not in inside)


def explain(
    models: Mapping[str, Recommender],
    user: UserHistory,
    track_idx: int,
    *,
    n: int,
    groups: npt.NDArray[np.int64] | None = None,
) -> Explanation:
    """The explanations of `models` (see `explainers`), merged, contributions in registry order.

    Args:
        models: The explainers, by name.
        user: The listener's training history.
        track_idx: The track to explain.
        n: Heard tracks listed per model.
        groups: (n_items,) group codes: a model's list keeps the largest contribution of each
            song (as every list musicrec prints); None: every track is its own song.
    """
    contributions: dict[str, list[tuple[int, float]]] = {}
    shares = []
    deep = n if groups is None else max(n, int(user.counts.nnz))
    for model in models.values():
        if isinstance(model, Explains):
            found = model.explain(user, track_idx, n=deep)
            contributions |= {
                name: _one_per_song(pairs, groups, n=n)
                for name, pairs in found.contributions.items()
            }
            shares += found.shares
    order = {m: i for i, m in enumerate(registry.names())}
    ranked = dict(sorted(contributions.items(), key=lambda kv: order.get(kv[0], len(order))))
    return Explanation(contributions=ranked, shares=shares)


def _one_per_song(
    pairs: list[tuple[int, float]], groups: npt.NDArray[np.int64] | None, *, n: int
) -> list[tuple[int, float]]:
    """The first (largest) pair of each song, in order, the first `n` of them."""
    if groups is None or not pairs:
        return pairs[:n]
    tracks = np.fromiter((t for t, _ in pairs), dtype=np.int64, count=len(pairs))
    _, first = np.unique(groups[tracks], return_index=True)
    return [pairs[j] for j in np.sort(first)[:n]]


def rank_tracks(
    scores: npt.NDArray[np.float32],
    *,
    exclude: npt.NDArray[np.integer[Any]],
    n: int,
    groups: npt.NDArray[np.int64] | None = None,
    drop_excluded_songs: bool = True,
    one_per_group: bool = True,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The best `n` tracks by score, leaving out `exclude`, -inf scores and repeated versions.

    The rules `predict` applies to its lists (`stages.songs`), for one row of scores. Ties go
    to the lower track index. Only the best few tracks are sorted (argpartition, then a wider
    cut if repeated versions thin them out), so one call is O(n_items), not a full sort.

    Args:
        scores: (n_items,) float32.
        exclude: Track indexes never returned (heard tracks, the seed track).
        n: How many to return (fewer if fewer are left).
        groups: (n_items,) track group per track; None: every track is its own group.
        drop_excluded_songs: Leave out every version of an excluded track's song too (a
            seed's versions are never "similar"; a heard song's versions are left out unless
            [predict].allow_heard_songs).
        one_per_group: Keep only the best-scored track of each group ([predict].one_per_group).

    Returns:
        (m,) track indexes and (m,) scores, best first, m <= n.
    """
    masked = np.asarray(scores, dtype=np.float32).copy()
    masked[exclude] = -np.inf
    if groups is not None and drop_excluded_songs and len(exclude):
        banned = np.zeros(int(groups.max()) + 1, dtype=bool)
        banned[groups[exclude]] = True
        masked[banned[groups]] = -np.inf
    n_finite = int(np.isfinite(masked).sum())
    width = min(n_finite, 4 * n + 16)
    while True:
        order = _best_first(masked, width)
        if groups is not None and one_per_group:
            _, first = np.unique(groups[order], return_index=True)
            order = order[np.sort(first)]
        if len(order) >= n or width >= n_finite:
            top = order[:n]
            return top.astype(np.int64), masked[top]
        width = min(n_finite, 4 * width)


def _best_first(masked: npt.NDArray[np.float32], width: int) -> npt.NDArray[np.int64]:
    """Indexes of the `width` best finite scores, with any ties at the cut, best first.

    Sorted by (score descending, index), the order a stable full sort gives.
    """
    if width <= 0:
        return np.zeros(0, dtype=np.int64)
    cut = np.partition(masked, len(masked) - width)[len(masked) - width]
    chosen = np.flatnonzero(masked >= cut)
    chosen = chosen[np.isfinite(masked[chosen])]
    return chosen[np.lexsort((chosen, -masked[chosen]))]


def group_codes(items: pl.DataFrame) -> npt.NDArray[np.int64] | None:
    """(n_items,) int64 group code per track_idx from track_group_id, or None if absent."""
    if TRACK_GROUP_ID not in items.columns:
        return None
    codes = items.sort(TRACK_IDX).select(pl.col(TRACK_GROUP_ID).rank("dense"))
    return codes.to_series().to_numpy().astype(np.int64)


def because(
    vectors: npt.NDArray[np.float32],
    tracks: npt.NDArray[np.int64],
    heard: npt.NDArray[np.integer[Any]],
    *,
    k: int,
    groups: npt.NDArray[np.int64] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """For each of `tracks`, the `k` heard tracks most like it: the reasons shown beside it.

    Args:
        vectors: (n_items, d) float32 rows of length 1 (item factors or audio features).
        tracks: (m,) recommended track indexes.
        heard: (h,) tracks the listener played or picked.
        k: Reasons per track (fewer if fewer were heard).
        groups: (n_items,) group codes: one heard version of a song per row (the most
            similar); None: every track is its own song.

    Returns:
        (m, min(k, h)) heard track indexes and their cosine similarity, most similar first;
        with `groups`, -1 and -inf pad rows that heard fewer than k songs.
    """
    unique = np.unique(np.asarray(heard, dtype=np.int64))
    if len(unique) == 0 or len(tracks) == 0:
        return np.zeros((len(tracks), 0), dtype=np.int64), np.zeros((len(tracks), 0), np.float32)
    sims = vectors[tracks] @ vectors[unique].T
    order = np.argsort(-sims, axis=1, kind="stable")
    if groups is None:
        top = order[:, :k]
        return unique[top], np.take_along_axis(sims, top, axis=1).astype(np.float32)
    ranked = np.take_along_axis(sims, order, axis=1).astype(np.float32)
    return songs.first_per_song(unique[order], ranked, groups, n=min(k, len(unique)))
