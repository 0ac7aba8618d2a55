"""Pure functions behind `recommend`, `similar` and `explain`: lookup, fold-in, ranking, why.

Names are matched through preprocess's keys (`stages.preprocess.names`), so "Daft Punk - One More
Time" finds the track whose id is "daft punk - one more time" whatever the spelling in the log.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from stages.models.als import AlsModel
from stages.models.content import ContentModel
from stages.models.hybrid import COMPONENTS, HybridModel, blend
from stages.models.knn import KnnModel
from stages.models.popularity import PopularityModel
from stages.preprocess.names import query_track_key
from stages.schema import TRACK_GROUP_ID, TRACK_ID, TRACK_IDX, USER_ID, USER_IDX

FoldInModel = AlsModel | ContentModel | HybridModel | KnnModel | PopularityModel


_SHORTLIST = 5_000


class LookupFailedError(LookupError):
    """A user, track or model named by the user is not in the trained data."""


def _shortlist(query: str, known: pl.Series) -> pl.Series:
    """At most _SHORTLIST values of `known` most like `query`, cheaply.

    Those sharing the most words with the query, else those sharing its longest prefix (so
    "user_00012x" still finds "user_000120").
    """
    words = [w for w in query.split() if len(w) >= 3]
    if words:
        col = pl.col(known.name)
        shared = pl.sum_horizontal(col.str.contains(w, literal=True).cast(pl.UInt8) for w in words)
        ranked = known.to_frame().with_columns(shared.alias("shared"))
        ranked = ranked.filter(pl.col("shared") > 0)
        if ranked.height:
            ranked = ranked.sort("shared", descending=True, maintain_order=True)
            return ranked[known.name].head(_SHORTLIST)
    for k in range(len(query), 2, -1):
        hits = known.filter(known.str.starts_with(query[:k]))
        if hits.len():
            return hits.head(_SHORTLIST)
    return known.clear()


def _closest(query: str, known: pl.Series) -> str:
    """' Closest: ...' naming up to three of `known` most like `query` (difflib), or ''.

    difflib compares in Python, about 0.1 ms per string, so a large vocabulary is first cut
    down by `_shortlist`.
    """
    if known.len() > _SHORTLIST:
        known = _shortlist(query, known)
    close = difflib.get_close_matches(query, known.to_list(), n=3, cutoff=0.6)
    return f" Closest: {', '.join(map(repr, close))}." if close else ""


def find_user(user_id: str, users: pl.DataFrame) -> int:
    """user_idx of `user_id` in a users frame (user_idx, user_id); LookupFailedError if absent."""
    hit = users.filter(pl.col(USER_ID) == user_id)
    if hit.is_empty():
        hint = _closest(user_id, users[USER_ID])
        msg = f"unknown user {user_id!r}: not in the training data.{hint}"
        raise LookupFailedError(msg)
    return int(hit[USER_IDX][0])


def find_tracks(queries: Sequence[str], items: pl.DataFrame) -> list[int]:
    """track_idx of each query: a track_id, or "Artist - Title" in any spelling preprocess merges.

    Args:
        queries: Track ids or "Artist - Title" strings.
        items: Frame with track_idx and track_id (01_preprocess/items.parquet).

    Raises:
        LookupFailedError: naming the first query not found and the closest track ids.
    """
    keys = pl.Series(list(queries), dtype=pl.String).to_frame("query")
    keys = keys.with_columns(query_track_key(pl.col("query")).alias("key")).with_row_index("i")
    exact = keys.join(items.select(TRACK_ID, TRACK_IDX), left_on="query", right_on=TRACK_ID)
    normal = keys.join(items.select(TRACK_ID, TRACK_IDX), left_on="key", right_on=TRACK_ID)
    found = pl.concat([exact.select("i", TRACK_IDX), normal.select("i", TRACK_IDX)])
    found = found.unique("i", keep="first").sort("i")
    missing = keys.filter(~pl.col("i").is_in(found["i"].implode()))
    if not missing.is_empty():
        query, key = missing["query"][0], missing["key"][0]
        msg = f"unknown track {query!r}: no track id {key!r}.{_closest(key, items[TRACK_ID])}"
        raise LookupFailedError(msg)
    return [int(v) for v in found[TRACK_IDX]]


def liked_row(track_idx: Sequence[int], *, n_items: int) -> sp.csr_matrix:
    """(1, n_items) float32 CSR with weight 1 for each liked track (duplicates merged)."""
    cols = np.unique(np.asarray(track_idx, dtype=np.int64))
    data = np.ones(len(cols), dtype=np.float32)
    return sp.csr_matrix((data, cols, [0, len(cols)]), shape=(1, n_items))


def score_liked(
    model: FoldInModel, row: sp.csr_matrix, *, liked_weights: tuple[float, ...]
) -> npt.NDArray[np.float32]:
    """Scores of every track for someone not in the data, from a (1, n_items) liked row.

    ALS folds the user in (implicit's recalculate_user on the saved item factors); the hybrid
    blends that fold-in with content and popularity using `liked_weights` (als, content,
    popularity) instead of the history-based weights. Returns (n_items,) float32.
    """
    if isinstance(model, AlsModel):
        return (model.fold_in(row) @ model.item_factors.T)[0]
    if isinstance(model, HybridModel):
        parts = model.parts(row, user_factors=model.als.fold_in(row))
        weights = np.asarray([liked_weights], dtype=np.float32)
        return blend(parts, weights)[0]
    return model.score(np.zeros(1, dtype=np.int64), row)[0]


def rank_tracks(
    scores: npt.NDArray[np.float32],
    *,
    exclude: npt.NDArray[np.int64],
    n: int,
    groups: npt.NDArray[np.int64] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The best `n` tracks by score, leaving out `exclude`, -inf scores and repeated versions.

    Args:
        scores: (n_items,) float32.
        exclude: Track indexes never returned (heard tracks, the seed track).
        n: How many to return (fewer if fewer are left).
        groups: (n_items,) track group per track; only the best-scored track of a group is
            kept, and groups of excluded tracks are left out (so a seed's versions never
            come back as "similar"). None: every track is its own group.

    Returns:
        (m,) track indexes and (m,) scores, best first, m <= n.
    """
    masked = np.asarray(scores, dtype=np.float32).copy()
    masked[exclude] = -np.inf
    if groups is not None:
        masked[np.isin(groups, groups[exclude])] = -np.inf
    order = np.argsort(-masked, kind="stable")
    order = order[np.isfinite(masked[order])]
    if groups is not None:
        _, first = np.unique(groups[order], return_index=True)
        order = order[np.sort(first)]
    top = order[:n]
    return top.astype(np.int64), masked[top]


def group_codes(items: pl.DataFrame) -> npt.NDArray[np.int64] | None:
    """(n_items,) int64 group code per track_idx from track_group_id, or None if absent."""
    if TRACK_GROUP_ID not in items.columns:
        return None
    codes = items.sort(TRACK_IDX).select(pl.col(TRACK_GROUP_ID).rank("dense"))
    return codes.to_series().to_numpy().astype(np.int64)


@dataclass(frozen=True, slots=True, kw_only=True)
class Share:
    """One component's part in a hybrid score: weight x normalised score = contribution."""

    model: str
    weight: float
    normalised_score: float
    contribution: float
    share: float


def hybrid_shares(
    model: HybridModel, user_idx: int, user_row: sp.csr_matrix, track_idx: int
) -> list[Share]:
    """Each component's weight, normalised score and share of the user's hybrid score."""
    parts = model.parts(user_row, user_idx=np.asarray([user_idx]))
    weights = model.user_weights(user_row)[0]
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


def top_contributions(
    values: npt.NDArray[np.float32], user_row: sp.csr_matrix, *, n: int
) -> list[tuple[int, float]]:
    """The `n` heard tracks with the largest positive (n_items,) contributions, largest first."""
    heard = user_row.indices[values[user_row.indices] > 0]
    order = heard[np.argsort(-values[heard], kind="stable")][:n]
    return [(int(i), float(values[i])) for i in order]
