"""Answers of the HTTP API computed from one Snapshot: look-ups and scoring, no training.

Each function raises LookupFailedError for an unknown user, track or untrained model (HTTP 404);
parameters are validated by the schema before they get here (HTTP 422).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from musicrec_cli.http import schemas
from musicrec_cli.http.snapshot import Snapshot
from musicrec_cli.runner.predict_lists import RERANK_SUFFIX
from stages import lookup, rerank, serve
from stages.models import UserHistory
from stages.schema import TRACK_GROUP_ID, TRACK_ID

REASONS = 2


def tracks(snap: Snapshot, track_idx: Sequence[int]) -> list[schemas.Track]:
    """Catalogue names of the given tracks, in order (one gather)."""
    rows = snap.names[list(track_idx)].rows()
    return [schemas.Track(track_id=t, artist=a, title=n) for t, a, n in rows]


def _scored(
    snap: Snapshot,
    idx: npt.NDArray[np.int64],
    best: npt.NDArray[np.float32],
    heard: npt.NDArray[np.integer[Any]],
) -> list[schemas.Scored]:
    """Ranked rows with up to REASONS heard tracks most like each (none without item vectors)."""
    why_idx = np.zeros((len(idx), 0), dtype=np.int64)
    why_sim = np.zeros((len(idx), 0), dtype=np.float32)
    if snap.vectors is not None:
        groups = snap.groups if snap.rerank_params.one_per_group else None
        why_idx, why_sim = serve.because(snap.vectors, idx, heard, k=REASONS, groups=groups)
    named = tracks(snap, [*idx.tolist(), *why_idx.ravel().tolist()])
    reasons = named[len(idx) :]
    width = why_idx.shape[1]
    return [
        schemas.Scored(
            **named[r].model_dump(),
            rank=r + 1,
            score=float(best[r]),
            because=[
                schemas.Reason(**reasons[r * width + j].model_dump(), similarity=float(sim))
                for j, sim in enumerate(why_sim[r])
                if why_idx[r, j] >= 0  # padding: fewer heard songs than REASONS
            ],
        )
        for r in range(len(idx))
    ]


def _rank(
    snap: Snapshot,
    name: str,
    scores: npt.NDArray[np.float32],
    row: sp.csr_matrix,
    *,
    n: int,
    use_rerank: bool,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Top n unheard tracks, or n re-ranked from n x candidates (as `musicrec predict` does).

    One version per song and none of a heard song unless [predict].allow_heard_songs; the
    re-ranked candidates leave heard songs out, and re-ranking keeps one version per song.
    """
    heard = row.indices.astype(np.int64)
    drop = not snap.allow_heard_songs
    if not use_rerank:
        return serve.rank_tracks(
            scores,
            exclude=heard,
            n=n,
            groups=snap.groups,
            drop_excluded_songs=drop,
            one_per_group=snap.rerank_params.one_per_group,
        )
    attrs = snap.rerank_attrs[name]
    idx, best = serve.rank_tracks(
        scores,
        exclude=heard,
        n=n * snap.candidates,
        groups=snap.groups,
        drop_excluded_songs=drop,
        one_per_group=False,
    )
    params = dataclasses.replace(snap.rerank_params, n=n)
    r_idx, r_best = rerank.rerank(idx[None, :], best[None, :], attrs, params)
    keep = r_idx[0] >= 0
    return r_idx[0][keep], r_best[0][keep]


def recommend_user(
    snap: Snapshot, user_id: str, *, n: int, model: str | None, use_rerank: bool
) -> schemas.Recommendations:
    """Top n unheard tracks for a user in the training data.

    From 05_predict's list when there is one for this model, user and depth (the lists `musicrec
    predict` wrote from these artifacts), else scored live.
    """
    name, chosen = snap.model(model)
    u = snap.user_idx(user_id)
    row = snap.user_items[[u]]
    list_name = name + RERANK_SUFFIX if use_rerank else name
    found = None if snap.lists is None else snap.lists.lookup(list_name, u, n)
    source: Literal["05_predict", "live"] = "05_predict"
    if found is None:
        scores = chosen.score(np.asarray([u]), row)[0]
        found, source = _rank(snap, name, scores, row, n=n, use_rerank=use_rerank), "live"
    idx, best = found
    return schemas.Recommendations(
        user=user_id,
        liked=[],
        model=name,
        rerank=use_rerank,
        source=source,
        tracks=_scored(snap, idx, best, row.indices),
    )


def recommend_liked(
    snap: Snapshot, liked: list[str], *, n: int, model: str | None
) -> schemas.Recommendations:
    """Top n tracks for a listener not in the data, folded in from liked tracks."""
    name, chosen = snap.model(model)
    liked_idx = snap.track_idx(liked)
    row = serve.liked_row(liked_idx, n_items=snap.items.height)
    scores = serve.liked_scores(chosen, row, name=name)
    idx, best = _rank(snap, name, scores, row, n=n, use_rerank=False)
    return schemas.Recommendations(
        user=None,
        liked=liked,
        model=name,
        rerank=False,
        source="live",
        tracks=_scored(snap, idx, best, row.indices),
    )


def history(snap: Snapshot, user_id: str, *, n: int) -> schemas.History:
    """The user's most played training tracks."""
    row = snap.user_items[[snap.user_idx(user_id)]]
    order = np.lexsort((row.indices, -row.data))[:n]
    named = tracks(snap, row.indices[order].tolist())
    return schemas.History(
        user=user_id,
        n_tracks=int(row.nnz),
        tracks=[
            schemas.Heard(**t.model_dump(), plays=float(p))
            for t, p in zip(named, row.data[order], strict=True)
        ],
    )


def track_info(snap: Snapshot, track: str) -> schemas.TrackInfo:
    """One track with its group and number of training listeners."""
    t = snap.track_idx([track])[0]
    return schemas.TrackInfo(
        **tracks(snap, [t])[0].model_dump(),
        track_group_id=str(snap.items[TRACK_GROUP_ID][t]),
        listeners=int(snap.popularity[t]),
    )


def similar(snap: Snapshot, track: str, *, n: int, model: str) -> schemas.Similar:
    """Tracks like `track` under a model with the "similar" capability (als, knn, content)."""
    _, chosen = snap.model(model)
    seed = snap.track_idx([track])[0]
    scores = serve.similar_scores(chosen, seed, name=model)
    seed_arr = np.asarray([seed], dtype=np.int64)
    idx, best = serve.rank_tracks(
        scores,
        exclude=seed_arr,
        n=n,
        groups=snap.groups,
        one_per_group=snap.rerank_params.one_per_group,
    )
    return schemas.Similar(
        track=str(snap.items[TRACK_ID][seed]),
        model=model,
        tracks=_scored(snap, idx, best, np.zeros(0, dtype=np.int64)),
    )


def explain(snap: Snapshot, user_id: str, track: str, *, n: int) -> schemas.Explanation:
    """The heard tracks behind `track` for `user_id`, model by model, and the hybrid's shares."""
    u = snap.user_idx(user_id)
    t = snap.track_idx([track])[0]
    row = snap.user_items[[u]]
    history = UserHistory(user_idx=u, counts=row, weights=snap.weights[[u]])
    explainers = {name: snap.models[name] for name in serve.explainers(list(snap.models))}
    groups = snap.groups if snap.rerank_params.one_per_group else None
    found = serve.explain(explainers, history, t, n=n, groups=groups)
    return schemas.Explanation(
        user=user_id,
        track=str(snap.items[TRACK_ID][t]),
        heard=bool(t in row.indices),
        hybrid_shares=[schemas.Share(**dataclasses.asdict(s)) for s in found.shares],
        contributions={
            name: [
                schemas.Contribution(**named.model_dump(), value=round(value, 6))
                for named, (_, value) in zip(
                    tracks(snap, [i for i, _ in pairs]), pairs, strict=True
                )
            ]
            for name, pairs in found.contributions.items()
        },
    )


def search(snap: Snapshot, query: str, *, n: int) -> schemas.Found:
    """Tracks whose names contain every word of `query`, most listened first."""
    idx = lookup.search_tracks(snap.search_text, snap.popularity, query, n=n)
    return schemas.Found(query=query, tracks=tracks(snap, idx.tolist()))
