"""RP3beta: item-item similarity of a three-step random walk, penalised by popularity.

Paudel, Christoffel, Newell and Bernstein (2017), "Updatable, accurate, diverse and scalable
recommendations for interactive applications"; the variant re-evaluated by Dacrema, Cremonesi and
Jannach (2019), whose reference code this follows: from track i, step to a listener u of i
(uniformly, 1 / pop(i)), then to a track j in proportion to u's weight on j (L1 per user), raise
both steps to `alpha`, divide by pop(j) ** beta, and keep the `neighbours` largest per track.

The product is computed in blocks of source tracks and pruned to top-k per block, so memory is
bounded by the block, not by n_items ** 2: it runs on catalogues where a dense item-item matrix
would not fit.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from stages.models.knn import KnnModel

# entries of one block's sparse product kept in memory at once (~ 16 bytes each in COO form)
_BLOCK_ENTRIES = 1 << 24


def rp3beta_walk(
    user_items: sp.csr_matrix, *, alpha: float, beta: float
) -> tuple[sp.csr_matrix, sp.csr_matrix, npt.NDArray[np.float32]]:
    """The two transition matrices and the popularity penalty of RP3beta.

    Built with at most one float64 array of values beside the two float32 CSRs (about 28
    bytes a pair at the peak besides the input, 16 after): scipy's diagonal products and
    powers would hold about seven copies of the matrix at once (66 bytes a pair measured at
    100M events, benchmarks/rp3beta_scale.py). The values are the same, bit for bit.

    Args:
        user_items: (n_users, n_items) CSR of non-negative weights.
        alpha: Exponent of both transition probabilities (1 = plain random walk).
        beta: Exponent of the popularity penalty (0 = none; P3alpha).

    Returns:
        (p_iu, p_ui, penalty): (n_items, n_users) float32 CSR, track -> listener, 1 / pop(i);
        (n_users, n_items) float32 CSR, listener -> track, weights L1-normalised per user;
        (n_items,) float32, pop(j) ** -beta (0 for tracks nobody played).
    """
    weights = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
    weights.eliminate_zeros()
    weights.sort_indices()
    pop = np.bincount(weights.indices, minlength=weights.shape[1]).astype(np.float64)
    per_user = np.asarray(weights.sum(axis=1), dtype=np.float64).ravel()
    # listener -> track: weight / the listener's total, in float64 as a diagonal product would
    values = np.repeat(_safe_inverse(per_user), np.diff(weights.indptr))
    values *= weights.data
    np.power(values, alpha, out=values)
    p_ui = sp.csr_matrix(
        (values.astype(np.float32), weights.indices, weights.indptr), shape=weights.shape
    )
    del values, weights
    # track -> listener: 1 / pop(i) for each listener of i (the transpose's structure)
    p_iu = sp.csr_matrix(p_ui.T)
    step = np.power(_safe_inverse(pop), alpha).astype(np.float32)
    p_iu.data = np.repeat(step, np.diff(p_iu.indptr))
    penalty = np.where(pop > 0, np.power(np.maximum(pop, 1.0), -beta), 0.0)
    return p_iu, p_ui, penalty.astype(np.float32)


def _safe_inverse(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out = np.zeros_like(x)
    np.divide(1.0, x, out=out, where=x > 0)
    return out


def top_k_per_row(block: sp.csr_matrix, *, k: int, row_offset: int) -> sp.csr_matrix:
    """The k largest positive entries of each row, diagonal (row + row_offset == col) dropped.

    Dense blocks (an eighth of the cells or more) go through one argpartition over the block;
    sparse ones sort only the rows holding more than k entries. Ties go to the lower column in
    the sparse path; in the dense path a tie exactly at the k-th value is broken by argpartition.
    """
    n_rows, n_cols = block.shape
    rows = np.arange(n_rows)
    diagonal = rows + row_offset
    if block.nnz * 8 >= n_rows * n_cols and n_cols > k:
        dense = block.toarray()
        inside = diagonal < n_cols
        dense[rows[inside], diagonal[inside]] = 0
        top = np.argpartition(-dense, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(dense, top, axis=1)
        out = sp.coo_matrix(
            (vals.ravel(), (np.repeat(rows, k), top.ravel())), shape=block.shape
        ).tocsr()
        out.eliminate_zeros()
        return out
    coo = block.tocoo()
    r, c, v = coo.row, coo.col, coo.data
    keep = (v > 0) & (r + row_offset != c)
    r, c, v = r[keep], c[keep], v[keep]
    long_rows = np.bincount(r, minlength=n_rows) > k
    short = ~long_rows[r]
    lr, lc, lv = r[~short], c[~short], v[~short]
    order = np.lexsort((lc, -lv, lr))
    lr, lc, lv = lr[order], lc[order], lv[order]
    rank = np.arange(lr.size) - np.searchsorted(lr, lr, side="left")
    top = rank < k
    return sp.csr_matrix(
        (
            np.concatenate([v[short], lv[top]]),
            (np.concatenate([r[short], lr[top]]), np.concatenate([c[short], lc[top]])),
        ),
        shape=block.shape,
    )


def block_bounds(
    p_iu: sp.csr_matrix, p_ui: sp.csr_matrix, *, block_entries: int
) -> list[tuple[int, int]]:
    """Ranges of source tracks whose product rows hold about `block_entries` entries at most.

    Row i of p_iu @ p_ui has at most min(n_items, sum over i's listeners of their track counts)
    entries; blocks are cut on the running sum of that bound (a single heavier row is its own
    block).
    """
    n_items = p_ui.shape[1]
    # bound[i] = sum of per_user over row i's listeners: a running sum over the entries,
    # differenced at the row ends (no int64 copy of the matrix, as a product would make)
    running = np.diff(p_ui.indptr).astype(np.int64)[p_iu.indices]
    np.cumsum(running, out=running)
    at = p_iu.indptr
    total = (
        np.where(at > 0, running[np.maximum(at - 1, 0)], 0)
        if running.size
        else np.zeros(len(at), dtype=np.int64)
    )
    bound = np.minimum(np.diff(total), n_items)
    ends = np.cumsum(bound)
    cuts, start = [], 0
    while start < p_iu.shape[0]:
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + block_entries, side="right")))
        cuts.append((start, min(stop, p_iu.shape[0])))
        start = stop
    return cuts


def fit_rp3beta(
    user_items: sp.csr_matrix,
    *,
    alpha: float,
    beta: float,
    neighbours: int,
    block_entries: int = _BLOCK_ENTRIES,
) -> KnnModel:
    """RP3beta similarities from a (n_users, n_items) CSR of weights, `neighbours` kept per track.

    Row i of the result holds W[i, j] = sum_u p_iu[i, u] * p_ui[u, j] * pop(j) ** -beta for the
    `neighbours` largest j != i; a user's score of j is sum_i weight(u, i) * W[i, j], as for item
    kNN, so the model is a `KnnModel` (same scoring, explanation and NPZ layout).

    Args:
        user_items: (n_users, n_items) CSR of non-negative weights (the training matrix).
        alpha: Exponent of the transition probabilities.
        beta: Popularity penalty exponent.
        neighbours: Similarities kept per track (> 0).
        block_entries: Entries of one block's product held at once (bounds memory).
    """
    if neighbours <= 0:
        msg = f"rp3beta: neighbours must be > 0, got {neighbours}."
        raise ValueError(msg)
    p_iu, p_ui, penalty = rp3beta_walk(user_items, alpha=alpha, beta=beta)
    parts = []
    for start, stop in block_bounds(p_iu, p_ui, block_entries=block_entries):
        block = sp.csr_matrix(p_iu[start:stop] @ p_ui)
        block.data *= penalty[block.indices]  # column j times pop(j) ** -beta
        parts.append(top_k_per_row(block, k=neighbours, row_offset=start))
    similarity = (
        sp.csr_matrix(sp.vstack(parts, format="csr"), dtype=np.float32)
        if parts
        else sp.csr_matrix(np.zeros((0, 0), dtype=np.float32))
    )
    similarity.sort_indices()
    return KnnModel(similarity=similarity, name="rp3beta")
