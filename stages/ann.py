"""Approximate top-k for factor models: a faiss HNSW graph over item vectors, inner product.

Exact scoring of 1.37M users x 805K tracks is GEMM-bound (about 25 minutes on 2 cores); HNSW
answers the same queries in a couple of minutes at some loss of recall (`benchmarks/
bench_predict.py` reports it against exact scoring). faiss cannot filter per query in one batch,
so each query fetches extra neighbours to make room for the user's heard tracks, which are then
dropped: a user who heard more than `overfetch` of their best tracks can get a shorter list.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from stages.interactions import entry_rows


def build_hnsw(
    vectors: npt.NDArray[np.float32], *, m: int, ef_construction: int
) -> Any:  # faiss has no type stubs
    """A faiss IndexHNSWFlat (inner product) holding `vectors`, row i = track_idx i.

    Args:
        vectors: (n_items, f) float32 item factors (or unit rows, for cosine).
        m: Graph degree (faiss `M`); more is slower to build and more accurate.
        ef_construction: Candidate list size while building.

    Raises:
        ImportError: faiss-cpu is not installed (`pip install faiss-cpu`).
    """
    import faiss  # noqa: PLC0415  (optional dependency, only for search = "hnsw")

    index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def search_unheard(
    index: Any,
    queries: npt.NDArray[np.float32],
    user_items: sp.csr_matrix,
    *,
    k: int,
    overfetch: int,
    ef_search: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Approximate `k` best unheard tracks per query, padded like stages.predict.candidates.

    Args:
        index: From `build_hnsw`.
        queries: (b, f) float32 user factors.
        user_items: (b, n_items) CSR; its non-zeros are left out.
        k: Tracks per user.
        overfetch: Extra neighbours fetched for heard tracks: min(overfetch, most heard in the
            block).
        ef_search: Candidate list size while searching (raised to the number fetched).

    Returns:
        (b, min(k, n_items)) int64 indexes and float32 scores, best first; -1 / -inf padding.
    """
    n_items, b = int(index.ntotal), user_items.shape[0]
    k = min(k, n_items)
    heard_per_user = np.diff(user_items.indptr)
    fetch = min(n_items, k + min(overfetch, int(heard_per_user.max(initial=0))))
    import faiss  # noqa: PLC0415

    # faiss's __init__.pyi leaves out this SWIG class (it is there at run time)
    params = faiss.SearchParametersHNSW(efSearch=max(ef_search, fetch))  # type: ignore[attr-defined]
    scores, ids = index.search(
        np.ascontiguousarray(queries, dtype=np.float32), fetch, params=params
    )
    heard_keys = np.sort(entry_rows(user_items) * n_items + user_items.indices)
    keys = np.arange(b, dtype=np.int64)[:, None] * n_items + ids
    drop = (ids < 0) | np.isin(keys, heard_keys, assume_unique=False)
    order = np.argsort(drop, axis=1, kind="stable")[:, :k]  # kept first, in score order
    missing = np.take_along_axis(drop, order, axis=1)
    idx = np.where(missing, -1, np.take_along_axis(ids, order, axis=1)).astype(np.int64)
    best = np.where(missing, -np.inf, np.take_along_axis(scores, order, axis=1))
    return idx, best.astype(np.float32)


def similar_tracks(
    index: Any,
    unit_items: npt.NDArray[np.float32],
    track_idx: npt.NDArray[np.int64],
    *,
    k: int,
    ef_search: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Approximate `k` nearest tracks by cosine for a block of tracks, each track left out.

    Args:
        index: From `build_hnsw` over `unit_items`.
        unit_items: (n_items, f) float32 rows of length 1.
        track_idx: (b,) tracks of the block.
        k: Neighbours per track.
        ef_search: Candidate list size while searching.

    Returns:
        (b, k) int64 neighbours and float32 cosines, most similar first; -1 / -inf padding.
    """
    self_rows = sp.csr_matrix(
        (np.ones(len(track_idx), dtype=np.float32), track_idx, np.arange(len(track_idx) + 1)),
        shape=(len(track_idx), len(unit_items)),
    )
    return search_unheard(
        index, unit_items[track_idx], self_rows, k=k, overfetch=1, ef_search=ef_search
    )
