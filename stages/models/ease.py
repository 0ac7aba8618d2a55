"""EASE: closed-form item-item ridge regression with a zero diagonal (Steck 2019).

B = argmin ||X - X B||^2 + lambda ||B||^2 subject to diag(B) = 0, which is
B = I - P diag(1 / diag(P)) with P = (X^T X + lambda I)^-1 (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW 2019, eq. 8). The inverse is dense, n_items x n_items: this
model is for catalogues where that fits in memory, and `fit_ease` refuses the others up front.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from stages.models import Arrays, Explanation, MemoryPlanError, UserHistory, top_contributions

# dense float32 n_items x n_items matrices alive at the peak of the fit: the Gram matrix, inverted
# and scaled in place (LAPACK's workspace and the column blocks are small beside it); measured
# peaks in tests/stages/test_ease_rp3beta.py::test_ease_peak_memory_matches_estimate
DENSE_COPIES = 1
_BYTES = 4


def ease_bytes(n_items: int) -> int:
    """Peak bytes of `fit_ease` on `n_items` tracks (the dense matrices; the CSR is extra)."""
    return DENSE_COPIES * _BYTES * n_items * n_items


@dataclass(frozen=True, slots=True, kw_only=True)
class EaseModel:
    """Attributes: weights, (n_items, n_items) float32; row i: how much i predicts each track."""

    weights: npt.NDArray[np.float32]

    @property
    def n_items(self) -> int:
        """Number of tracks."""
        return int(self.weights.shape[0])

    def score(
        self, user_idx: npt.NDArray[np.int64], user_items: sp.csr_matrix
    ) -> npt.NDArray[np.float32]:
        """X_u B: (len(user_idx), n_items) float32 (user_idx unused: EASE keeps no user state)."""
        return np.asarray(sp.csr_matrix(user_items, dtype=np.float32) @ self.weights)

    def arrays(self) -> Arrays:
        """{'weights'}."""
        return {"weights": self.weights}

    def score_new(self, user_items: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """New listeners are scored like training users, from their rows: (b, n_items)."""
        return self.score(np.arange(user_items.shape[0]), user_items)

    def similar_items(self, track_idx: int) -> npt.NDArray[np.float32]:
        """B[track, j]: how much hearing `track_idx` predicts each j; -inf for itself."""
        scores = np.array(self.weights[track_idx], dtype=np.float32)
        scores[track_idx] = -np.inf
        return scores

    def explain(self, user: UserHistory, track_idx: int, *, n: int) -> Explanation:
        """Heard tracks by weight x B[i, track_idx], under "ease", largest first."""
        values = user.weights.toarray().ravel() * self.weights[:, track_idx]
        return Explanation(
            contributions={"ease": top_contributions(values.astype(np.float32), user.weights, n=n)},
            shares=[],
        )


def fit_ease(
    user_items: sp.csr_matrix, *, regularization: float, max_bytes: int | None = None
) -> EaseModel:
    """Fit EASE on a (n_users, n_items) CSR of weights.

    Args:
        user_items: (n_users, n_items) CSR; binary or weighted.
        regularization: lambda (> 0), added to the Gram matrix's diagonal.
        max_bytes: Memory the fit may use; above it, MemoryPlanError before any allocation.

    Raises:
        MemoryPlanError: The dense n_items x n_items matrices would need more than `max_bytes`.
    """
    n_items = int(user_items.shape[1])
    need = ease_bytes(n_items)
    if max_bytes is not None and need > max_bytes:
        msg = (
            f"EASE on {n_items:,} tracks needs {need / 2**30:,.1f} GiB ({need / 1e12:.1f} TB) "
            f"for its dense "
            f"{n_items:,} x {n_items:,} matrices, above the memory plan of "
            f"{max_bytes / 2**30:,.1f} GiB; use rp3beta or knn for this catalogue."
        )
        raise MemoryPlanError(msg)
    if regularization <= 0:
        msg = f"ease: regularization must be > 0, got {regularization}."
        raise ValueError(msg)
    gram = gram_matrix(user_items)
    gram[np.diag_indices(n_items)] += np.float32(regularization)
    import scipy.linalg  # here: ~0.15 s of CPU that every musicrec command would pay

    # the Gram matrix is symmetric, so its transpose (Fortran-ordered) is inverted in place
    p = scipy.linalg.inv(gram.T, overwrite_a=True, check_finite=False).T
    p /= -np.diag(p)[None, :]
    p[np.diag_indices(n_items)] = 0.0
    return EaseModel(weights=np.ascontiguousarray(p, dtype=np.float32))


def gram_matrix(user_items: sp.csr_matrix, *, block: int = 2048) -> npt.NDArray[np.float32]:
    """X^T X as a dense (n_items, n_items) float32 array, built a block of columns at a time.

    A sparse X^T X of a dense co-occurrence pattern would take three times the dense bytes.
    """
    x = sp.csc_matrix(user_items, dtype=np.float32)
    xt = x.T.tocsr()
    n_items = x.shape[1]
    gram = np.empty((n_items, n_items), dtype=np.float32)
    for start in range(0, n_items, block):
        gram[:, start : start + block] = (xt @ x[:, start : start + block]).toarray()
    return gram


def load_ease(arrays: Arrays) -> EaseModel:
    """Inverse of `EaseModel.arrays`."""
    return EaseModel(weights=np.asarray(arrays["weights"], dtype=np.float32))
