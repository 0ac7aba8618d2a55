"""Bayesian Personalised Ranking (Rendle et al. 2009) through `implicit`, for comparison."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from stages.models import Arrays
from stages.models.factors import FactorModel


@dataclass(frozen=True, slots=True, kw_only=True)
class BprModel(FactorModel):
    """Attributes: user_factors (n_users, f+1) and item_factors (n_items, f+1), float32.

    implicit keeps the item bias as the last item column (the user column is 1).
    """


def fit_bpr(
    user_items: sp.csr_matrix,
    *,
    factors: int,
    iterations: int,
    learning_rate: float,
    regularization: float,
    seed: int,
    callback: Callable[[int, float, float], None] | None = None,
) -> BprModel:
    """Fit BPR on a (n_users, n_items) CSR; only which entries are non-zero matters.

    implicit samples with one thread per core, so two fits with one seed agree only when
    run with the same number of threads; we fix one thread for reproducible files.
    `callback(epoch, seconds, correct)` is implicit's, called after each iteration.
    """
    # imported here: ~0.2 s of CPU that every musicrec command would pay (stages/models/als.py)
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    with threadpool_limits(1, "blas"):
        model = BayesianPersonalizedRanking(
            factors=factors,
            iterations=iterations,
            learning_rate=learning_rate,
            regularization=regularization,
            num_threads=1,
            random_state=seed,
        )
        model.fit(
            sp.csr_matrix(user_items, dtype=np.float32), show_progress=False, callback=callback
        )
    return BprModel(
        user_factors=np.ascontiguousarray(model.user_factors, dtype=np.float32),
        item_factors=np.ascontiguousarray(model.item_factors, dtype=np.float32),
    )


def load_bpr(arrays: Arrays) -> BprModel:
    """Inverse of `BprModel.arrays`."""
    return BprModel(
        user_factors=arrays["user_factors"].astype(np.float32),
        item_factors=arrays["item_factors"].astype(np.float32),
    )
