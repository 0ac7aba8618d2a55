"""Re-rank each user's candidate list for diversity and novelty, a block of users at a time.

From a user's C candidates (best first) pick N greedily. At every step the objective is Maximal
Marginal Relevance (Carbonell and Goldstein 1998):

    mmr(i) = lambda * rel(i) - (1 - lambda) * max_{j already picked} cos(v_i, v_j)

where rel(i) = (s_i - min s) / (max s - min s) over the user's candidates (1 if all equal), plus
`novelty_weight * novelty(i)`, novelty(i) = log2(n_users / listeners_i) / log2(n_users) in [0, 1]
(the self-information of the track, Zhou et al. 2010, scaled to [0, 1]). The first pick maximises
rel alone. Only the most relevant candidate of each track group is eligible (one version of a
recording), and a candidate whose artist already has `max_per_artist` picks is skipped. If caps
leave fewer than N candidates the list is shorter.

The greedy loop runs N steps, each vectorised over all the users of the block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from stages.audio import audio_z_scores


@dataclass(frozen=True, slots=True, kw_only=True)
class RerankParams:
    """How to re-rank.

    Attributes:
        n: Length of the re-ranked lists.
        mmr_lambda: Weight of relevance in MMR, in [0, 1]; 1 disables the diversity term.
        novelty_weight: Added to rel(i) times novelty(i); 0 disables the boost.
        max_per_artist: Cap per artist in a list; 0 means no cap.
        one_per_group: At most one track per track group (versions of the same recording).
    """

    n: int
    mmr_lambda: float = 0.7
    novelty_weight: float = 0.5
    max_per_artist: int = 0
    one_per_group: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemAttributes:
    """What re-ranking knows of each track, indexed by track_idx.

    Attributes:
        group: (n_items,) int64 track-group code (equal codes = same recording).
        artist: (n_items,) int64 artist code, or None if unknown (no artist cap then).
        novelty: (n_items,) float32 in [0, 1], see `novelty_scores`.
        vectors: (n_items, d) float32 rows of length 1 for MMR cosines, or None (no MMR).
    """

    group: npt.NDArray[np.int64]
    artist: npt.NDArray[np.int64] | None
    novelty: npt.NDArray[np.float32]
    vectors: npt.NDArray[np.float32] | None


def novelty_scores(listeners: npt.NDArray[np.int64], *, n_users: int) -> npt.NDArray[np.float32]:
    """log2(n_users / max(listeners, 1)) / log2(n_users) per track, in [0, 1].

    Args:
        listeners: (n_items,) training users per track.
        n_users: Training users in total (> 1 for a non-zero result).

    Returns:
        (n_items,) float32; 0 for a track everybody played, 1 for one played by at most one user.
    """
    if n_users <= 1:
        return np.zeros(len(listeners), dtype=np.float32)
    share = np.log2(n_users / np.maximum(listeners, 1)) / np.log2(n_users)
    novelty: npt.NDArray[np.float32] = np.clip(share, 0.0, 1.0).astype(np.float32)
    return novelty


def audio_matrix(items: pl.DataFrame) -> npt.NDArray[np.float32] | None:
    """Audio z-scores of every track (`stages.audio`), for MMR with mmr_features = "audio".

    Args:
        items: One row per track, in track_idx order, with any of schema.AUDIO_FEATURES.

    Returns:
        (n_items, d) float32 (missing values give 0, the mean), or None if `items` has no audio
        feature column.
    """
    z = audio_z_scores(items)
    return None if z is None else np.nan_to_num(z, nan=0.0).astype(np.float32)


def _relevance(
    idx: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    novelty: npt.NDArray[np.float32],
    weight: float,
) -> npt.NDArray[np.float64]:
    """Per-user min-max scaled scores plus the novelty boost: (b, C) float64."""
    valid = idx >= 0
    lo = np.where(valid, scores, np.inf).min(axis=1, keepdims=True)
    hi = np.where(valid, scores, -np.inf).max(axis=1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    rel = np.where(hi > lo, (scores - lo) / span, 1.0)
    return np.where(valid, rel + weight * novelty[np.where(valid, idx, 0)], -np.inf)


def _first_of_group(
    group: npt.NDArray[np.int64], rel: npt.NDArray[np.float32]
) -> npt.NDArray[np.bool_]:
    """(b, C) True for the most relevant candidate of each (user, group); ties: earlier wins."""
    b, c = group.shape
    order = np.argsort(-rel, axis=1, kind="stable")
    by_rel = np.take_along_axis(group, order, axis=1)
    flat = np.lexsort((np.tile(np.arange(c), b), by_rel.ravel(), np.repeat(np.arange(b), c)))
    keys = np.stack([np.repeat(np.arange(b), c)[flat], by_rel.ravel()[flat]])
    first_flat = np.ones(b * c, dtype=bool)
    first_flat[1:] = (keys[:, 1:] != keys[:, :-1]).any(axis=0)
    first_sorted = np.empty(b * c, dtype=bool)
    first_sorted[flat] = first_flat
    first = np.empty((b, c), dtype=bool)
    np.put_along_axis(first, order, first_sorted.reshape(b, c), axis=1)
    return first


def _rerank_chunk(
    idx: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    items: ItemAttributes,
    params: RerankParams,
) -> npt.NDArray[np.int64]:
    """Positions (b, n) into each row of `idx` in pick order, -1 where nothing was eligible.

    `objective` holds each candidate's current MMR value, -inf once it is picked or capped; as
    max-similarity only grows, it is updated with one minimum per step rather than recomputed.
    """
    rows = np.arange(idx.shape[0])
    safe = np.where(idx >= 0, idx, 0)
    rel = _relevance(idx, scores, items.novelty, params.novelty_weight).astype(np.float32)
    if params.one_per_group:
        rel[~_first_of_group(items.group[safe], rel)] = -np.inf
    artist = items.artist[safe] if items.artist is not None and params.max_per_artist else None
    artist_count = np.zeros(idx.shape, dtype=np.int32)
    penalty = None  # (b, C, C): (1 - lambda) * cosine between candidates
    if items.vectors is not None and params.mmr_lambda < 1.0:
        vectors = items.vectors[safe] * np.float32(np.sqrt(1.0 - params.mmr_lambda))
        penalty = np.matmul(vectors, vectors.transpose(0, 2, 1))
    # step 0 ranks by relevance alone; later steps by lambda * rel - penalty of the nearest pick
    objective = rel.copy()
    lam_rel = np.where(rel > -np.inf, np.float32(params.mmr_lambda) * rel, -np.inf)
    picked = np.full((idx.shape[0], params.n), -1, dtype=np.int64)
    for step in range(params.n):
        pos = objective.argmax(axis=1)
        ok = objective[rows, pos] > -np.inf
        if not ok.any():
            break
        picked[:, step] = np.where(ok, pos, -1)
        if penalty is not None:
            mmr = lam_rel - penalty[rows, pos]
            objective = mmr if step == 0 else np.minimum(objective, mmr, out=objective)
        objective[rows, pos] = -np.inf
        if artist is not None:
            same = artist == artist[rows, pos][:, None]
            artist_count += same
            np.putmask(objective, same & (artist_count >= params.max_per_artist), -np.inf)
    return picked


def rerank(
    idx: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    items: ItemAttributes,
    params: RerankParams,
    *,
    chunk: int = 128,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Pick `params.n` of each user's candidates by capped, novelty-boosted MMR.

    Args:
        idx: (b, C) int64 candidate track indexes, best first; -1 marks padding.
        scores: (b, C) float32 model scores of the candidates.
        items: Track attributes indexed by track_idx.
        params: Re-ranking settings.
        chunk: Users re-ranked at once; bounds the (chunk, C, C) cosine array and keeps the
            per-step arrays in cache. Does not change the result.

    Returns:
        (b, n) int64 picked track indexes in pick order and their (b, n) float32 model scores;
        -1 and -inf where fewer than n candidates were eligible.
    """
    picked = (
        np.concatenate(
            [
                _rerank_chunk(idx[i : i + chunk], scores[i : i + chunk], items, params)
                for i in range(0, idx.shape[0], chunk)
            ]
        )
        if idx.shape[0]
        else np.full((0, params.n), -1, dtype=np.int64)
    )
    got = picked >= 0
    safe_pick = np.where(got, picked, 0)
    out_idx = np.where(got, np.take_along_axis(idx, safe_pick, axis=1), -1)
    out_scores = np.where(got, np.take_along_axis(scores, safe_pick, axis=1), -np.inf)
    return out_idx, out_scores.astype(np.float32)
