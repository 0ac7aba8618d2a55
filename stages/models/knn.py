"""Item-to-item nearest neighbours (cosine or BM25) through `implicit`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from stages.models import Arrays, Explanation, UserHistory, top_contributions

KnnSimilarity = Literal["cosine", "bm25"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KnnModel:
    """Attributes: similarity, (n_items, n_items) float32 CSR; row i holds i's K neighbours.

    `name` labels explanations: item kNN and RP3beta (stages.models.rp3beta) share this class.
    """

    similarity: sp.csr_matrix
    name: str = "knn"

    @property
    def n_items(self) -> int:
        """Number of tracks."""
        return int(self.similarity.shape[0])

    def score(
        self, user_idx: npt.NDArray[np.int64], user_items: sp.csr_matrix
    ) -> npt.NDArray[np.float32]:
        """Sum over heard tracks of plays x similarity: (len(user_idx), n_items) float32.

        `user_items` is what predict passes: training play counts (fitting used weights).
        """
        return np.asarray((user_items @ self.similarity).toarray(), dtype=np.float32)

    def arrays(self) -> Arrays:
        """The CSR parts: {'data', 'indices', 'indptr', 'shape'}."""
        m = self.similarity
        return {
            "data": m.data,
            "indices": m.indices,
            "indptr": m.indptr,
            "shape": np.asarray(m.shape, dtype=np.int64),
        }

    def score_new(self, user_items: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """New listeners are scored like training users, from their rows: (b, n_items)."""
        return self.score(np.arange(user_items.shape[0]), user_items)

    def similar_items(self, track_idx: int) -> npt.NDArray[np.float32]:
        """The track's row of similarities: (n_items,) float32, -inf for non-neighbours."""
        scores = self.similarity[[track_idx]].toarray()[0]
        scores[scores <= 0] = -np.inf  # only actual neighbours
        return np.asarray(scores, dtype=np.float32)

    def explain(self, user: UserHistory, track_idx: int, *, n: int) -> Explanation:
        """Heard tracks by plays x similarity to `track_idx`, under `name`, largest first."""
        column = self.similarity[:, [track_idx]].toarray().ravel()
        values = np.asarray(user.counts.toarray().ravel() * column, dtype=np.float32)
        return Explanation(
            contributions={self.name: top_contributions(values, user.counts, n=n)}, shares=[]
        )


def fit_knn(
    user_items: sp.csr_matrix,
    *,
    similarity: KnnSimilarity,
    neighbours: int,
    bm25_k1: float = 1.2,
    bm25_b: float = 0.75,
) -> KnnModel:
    """Item-item similarities from a (n_users, n_items) CSR of weights, K = `neighbours`.

    The train stage passes the confidence weights, while users are scored on their play
    counts (`KnnModel.score`): the best of the four choices on the default data (docs/models.md).

    The weighting is that of implicit's CosineRecommender / BM25Recommender, converted to CSR
    here (implicit would convert its COO itself, with a warning).
    """
    # imported here: ~0.2 s of CPU that every musicrec command would pay (stages/models/als.py)
    from implicit.nearest_neighbours import ItemItemRecommender, bm25_weight, normalize

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


def load_knn(arrays: Arrays, *, name: str = "knn") -> KnnModel:
    """Inverse of `KnnModel.arrays`; `name` labels its explanations."""
    n_rows, n_cols = (int(v) for v in arrays["shape"])
    indices, indptr = (
        cast("npt.NDArray[np.integer[Any]]", arrays[k]) for k in ("indices", "indptr")
    )
    return KnnModel(
        name=name,
        similarity=sp.csr_matrix(
            (arrays["data"].astype(np.float32), indices, indptr), shape=(n_rows, n_cols)
        ),
    )
