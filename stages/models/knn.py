"""Item-to-item nearest neighbours (cosine or BM25) through `implicit`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from implicit.nearest_neighbours import ItemItemRecommender, bm25_weight, normalize

KnnSimilarity = Literal["cosine", "bm25"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KnnModel:
    """Attributes: similarity, (n_items, n_items) float32 CSR; row i holds i's K neighbours."""

    similarity: sp.csr_matrix

    @property
    def n_items(self) -> int:
        """Number of tracks."""
        return int(self.similarity.shape[0])

    def score(
        self, user_idx: npt.NDArray[np.int64], user_items: sp.csr_matrix
    ) -> npt.NDArray[np.float32]:
        """Sum over heard tracks of weight x similarity: (len(user_idx), n_items) float32."""
        return np.asarray((user_items @ self.similarity).toarray(), dtype=np.float32)

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """The CSR parts: {'data', 'indices', 'indptr', 'shape'}."""
        m = self.similarity
        return {
            "data": m.data,
            "indices": m.indices,
            "indptr": m.indptr,
            "shape": np.asarray(m.shape, dtype=np.int64),
        }

    def contributions(self, user_row: sp.csr_matrix, track_idx: int) -> npt.NDArray[np.float32]:
        """Weight x similarity to `track_idx` of each heard track: (n_items,) float32."""
        column = self.similarity[:, [track_idx]].toarray().ravel()
        return np.asarray(user_row.toarray().ravel() * column, dtype=np.float32)


def fit_knn(
    user_items: sp.csr_matrix,
    *,
    similarity: KnnSimilarity,
    neighbours: int,
    bm25_k1: float = 1.2,
    bm25_b: float = 0.75,
) -> KnnModel:
    """Item-item similarities from a (n_users, n_items) CSR of weights, K = `neighbours`.

    The weighting is that of implicit's CosineRecommender / BM25Recommender, converted to CSR
    here (implicit would convert its COO itself, with a warning).
    """
    items_users = sp.csr_matrix(user_items, dtype=np.float32).T
    weighted = (
        normalize(items_users).T
        if similarity == "cosine"
        else bm25_weight(items_users, K1=bm25_k1, B=bm25_b).T
    )
    model = ItemItemRecommender(K=neighbours, num_threads=1)
    model.fit(sp.csr_matrix(weighted, dtype=np.float64), show_progress=False)  # needs double
    sim = sp.csr_matrix(model.similarity, dtype=np.float32)
    sim.sort_indices()
    return KnnModel(similarity=sim)


def load_knn(arrays: dict[str, npt.NDArray[np.generic]]) -> KnnModel:
    """Inverse of `KnnModel.arrays`."""
    shape = tuple(int(v) for v in arrays["shape"])
    return KnnModel(
        similarity=sp.csr_matrix(
            (arrays["data"].astype(np.float32), arrays["indices"], arrays["indptr"]), shape=shape
        )
    )
