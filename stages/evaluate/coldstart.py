"""Cold start, measured: held-out users scored from only 0, 1, 3, 5 or 10 of their known tracks.

With the held-out-users split, each held-out user's known tracks are in train and the rest is
test. Here every model that can score a listener from a history row alone (ALS by fold-in,
content, kNN and popularity from the row, the hybrid with ALS folded in and its own weights for
that history size) is given a seeded sample of n known tracks per user, on the same users for
every n (those with at least max(counts) known tracks), and its top K is scored against the
user's test tracks. No known track of the user is ever recommended (they are not test tracks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from stages.evaluate.ranking import group_reduce, per_user_metrics
from stages.models import FoldIn, Recommender
from stages.models.hybrid import HybridModel, blend
from stages.schema import MODEL, RANK, TRACK_IDX, USER_IDX

KNOWN_COUNTS = (0, 1, 3, 5, 10)
KNOWN = "known_tracks"
Scorer = Callable[[sp.csr_matrix], npt.NDArray[np.float32]]


def keep_per_row(rows: sp.csr_matrix, *, n: int, seed: int) -> sp.csr_matrix:
    """The same matrix with a seeded random `n` entries kept in each row (all if fewer).

    Args:
        rows: (b, n_items) CSR.
        n: Entries kept per row.
        seed: Seed of the draw.
    """
    rows = sp.csr_matrix(rows)
    rng = np.random.default_rng(seed)
    row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    order = np.lexsort((rng.random(rows.nnz), row_of))
    position = np.empty(rows.nnz, dtype=np.int64)
    position[order] = np.arange(rows.nnz) - rows.indptr[row_of[order]]
    keep = position < n
    return sp.csr_matrix(
        (rows.data[keep], (row_of[keep], rows.indices[keep])), shape=rows.shape, dtype=np.float32
    )


def top_k(
    scores: npt.NDArray[np.float32], exclude: sp.csr_matrix, *, k: int
) -> npt.NDArray[np.int64]:
    """(b, k) best tracks per row, best first, never a track of `exclude` (same shape CSR)."""
    scores = np.array(scores, dtype=np.float32)
    rows, cols = exclude.nonzero()
    scores[rows, cols] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def known_track_runs(
    history: sp.csr_matrix,
    users: npt.NDArray[np.int64],
    test: pl.LazyFrame,
    scorers: Mapping[str, Scorer],
    *,
    ks: tuple[int, ...],
    counts: tuple[int, ...] = KNOWN_COUNTS,
    seed: int = 42,
) -> pl.DataFrame:
    """Mean ranking metrics per (known-track count, model) for the held-out `users`.

    Args:
        history: (n_users, n_items) CSR of every user's known (training) tracks and weights.
        users: Held-out users to score (those with test tracks).
        test: Columns user_idx, track_idx: the held-out test pairs.
        scorers: Model name -> scores (b, n_items) from (b, n_items) history rows (see
            `history_scorers`); "als" is skipped at n = 0 (nothing to fold in).
        ks: Cut-offs.
        counts: Known-track counts to try.
        seed: Seed of the samples (the same sample for every model).

    Returns:
        known_tracks, model, n_users and "<metric>@<k>" means, sorted by known_tracks, model.
    """
    rows = history[users]
    eligible = np.diff(rows.indptr) >= max(counts)
    users, rows = users[eligible], rows[eligible]
    test_users = test.join(
        pl.LazyFrame({USER_IDX: users.astype(np.uint32)}), on=USER_IDX, how="semi"
    )
    out = []
    for n in counts:
        given = keep_per_row(rows, n=n, seed=seed + n)
        lists = []
        for name, scorer in scorers.items():
            if n == 0 and name == "als":
                continue  # nothing to fold in
            best = top_k(scorer(given), rows, k=max(ks))
            lists.append(_frame(name, users, best))
        if not lists:
            continue
        per_user = per_user_metrics(pl.concat(lists).lazy(), test_users, ks=ks)
        means = {c: pl.col(c) for c in per_user.collect_schema() if "@" in c}
        out.append(
            group_reduce(per_user, (MODEL,), means=means, extra=(pl.len().alias("n_users"),))
            .with_columns(pl.lit(n).alias(KNOWN))
            .collect()
        )
    return pl.concat(out).select(KNOWN, MODEL, pl.all().exclude(KNOWN, MODEL)).sort(KNOWN, MODEL)


def _frame(name: str, users: npt.NDArray[np.int64], best: npt.NDArray[np.int64]) -> pl.DataFrame:
    """Recommendations frame (model, user_idx, rank, track_idx) of one model's lists."""
    b, k = best.shape
    return pl.DataFrame(
        {
            MODEL: [name] * (b * k),
            USER_IDX: np.repeat(users, k).astype(np.uint32),
            RANK: np.tile(np.arange(1, k + 1), b).astype(np.uint16),
            TRACK_IDX: best.ravel().astype(np.uint32),
        }
    )


def history_scorers(models: Mapping[str, Recommender]) -> dict[str, Scorer]:
    """A scorer from history rows for every model that can score new listeners.

    The hybrid blends its components with ALS folded in and the weights it uses for a training
    user with that many tracks (cold, few, warm): the weights this experiment measures. Every
    other model uses its fold-in capability (`score_new`).
    """
    scorers: dict[str, Scorer] = {}
    for name, model in models.items():
        if isinstance(model, HybridModel):
            scorers[name] = _hybrid_by_history(model)
        elif isinstance(model, FoldIn):
            scorers[name] = model.score_new
    return scorers


def _hybrid_by_history(model: HybridModel) -> Scorer:
    def score(rows: sp.csr_matrix) -> npt.NDArray[np.float32]:
        parts = model.parts(rows, user_factors=model.als.fold_in(rows))
        return blend(parts, model.user_weights(rows))

    return score
