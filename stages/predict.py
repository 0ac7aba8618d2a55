"""Top-N recommendations per user, already-heard tracks removed, one block of users at a time."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from stages.models import Recommender
from stages.schema import MODEL, RANK, SCORE, TRACK_IDX, USER_IDX


def top_n(
    scores: npt.NDArray[np.float32], user_items: sp.csr_matrix, *, n: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Best `n` unheard tracks per row of `scores`.

    Args:
        scores: (b, n_items) float32, modified in place (heard tracks set to -inf).
        user_items: (b, n_items) CSR; its non-zeros are the tracks to leave out.
        n: How many to keep; rows with fewer unheard tracks are padded with index -1.

    Returns:
        (b, n) int64 track indexes and (b, n) float32 scores, best first.
    """
    rows = np.repeat(np.arange(user_items.shape[0]), np.diff(user_items.indptr))
    scores[rows, user_items.indices] = -np.inf
    n_keep = min(n, scores.shape[1])
    part = np.argpartition(-scores, n_keep - 1, axis=1)[:, :n_keep]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    best = np.take_along_axis(part_scores, order, axis=1)
    idx = np.where(np.isneginf(best), -1, idx)
    return idx, best


def recommend_block(
    model: Recommender,
    user_idx: npt.NDArray[np.int64],
    user_items: sp.csr_matrix,
    *,
    n: int,
    model_name: str,
) -> pl.DataFrame:
    """Top-`n` for a block of users as rows (user_idx, rank, track_idx, score, model).

    Args:
        model: A trained recommender.
        user_idx: (b,) users of the block.
        user_items: (n_users, n_items) CSR of all training interactions.
        n: Recommendations per user.
        model_name: Value of the `model` column.

    Returns:
        One row per (user_idx, rank), rank 1 = best; padding (no unheard track left) dropped.
    """
    block_items = user_items[user_idx]
    idx, best = top_n(model.score(user_idx, block_items), block_items, n=n)
    width = idx.shape[1]
    frame = pl.DataFrame(
        {
            USER_IDX: pl.Series(np.repeat(user_idx, width), dtype=pl.UInt32),
            RANK: pl.Series(np.tile(np.arange(1, width + 1), len(user_idx)), dtype=pl.UInt16),
            TRACK_IDX: pl.Series(idx.ravel(), dtype=pl.Int64),
            SCORE: pl.Series(best.ravel(), dtype=pl.Float32),
        }
    )
    return frame.filter(pl.col(TRACK_IDX) >= 0).with_columns(
        pl.col(TRACK_IDX).cast(pl.UInt32), pl.lit(model_name).alias(MODEL)
    )
