"""The blend of EASE, RP3beta and ALS: standardised per user, summed with its weights."""

import numpy as np
import pytest
import scipy.sparse as sp

from stages.models.blend import build_blend, standardised
from stages.models.ease import fit_ease
from stages.models.knn import KnnModel


def test_standardised_rows_have_zero_mean_and_unit_deviation():
    got = standardised(np.array([[1, 2, 3], [5, 5, 5]], dtype=np.float32))
    s = np.sqrt(2 / 3)  # deviation of 1, 2, 3
    np.testing.assert_allclose(got, [[-1 / s, 0, 1 / s], [0, 0, 0]], rtol=1e-6)


class _Fixed:
    """A model whose scores are a fixed (n_users, n_items) array."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float32)
        self.n_items = self.scores.shape[1]

    def score(self, user_idx, _user_items):
        return self.scores[user_idx]

    def score_new(self, user_items):
        return self.scores[: user_items.shape[0]]

    def arrays(self):
        return {"scores": self.scores}


def test_blend_is_the_weighted_sum_of_standardised_scores():
    a = _Fixed([[0, 1, 2, 3], [3, 0, 0, 0]])
    b = _Fixed([[30, 20, 10, 0], [0, 0, 0, 9]])  # another scale, the opposite order
    c = _Fixed([[1, 1, 1, 1], [1, 1, 1, 1]])  # no information: standardised to zeros
    blend = build_blend({"ease": a, "rp3beta": b, "als": c}, (1.0, 1.0, 5.0))
    users = np.array([0, 1])
    # user 0: a and b standardise to opposite rows, so the sum is 0 everywhere
    # user 1: a -> (3, -1, -1, -1) / sqrt(3), b -> (-1, -1, -1, 3) / sqrt(3)
    third = 1 / np.sqrt(3)
    want = [[0, 0, 0, 0], [2 * third, -2 * third, -2 * third, 2 * third]]
    np.testing.assert_allclose(blend.score(users, None), want, atol=1e-6)
    np.testing.assert_allclose(blend.score_new(sp.csr_matrix((2, 4))), want, atol=1e-6)
    only_b = build_blend({"ease": a, "rp3beta": b, "als": c}, (0.0, 2.0, 0.0))
    np.testing.assert_allclose(only_b.score(users, None), 2 * standardised(b.scores), rtol=1e-6)
    assert set(blend.arrays()) == {"weights", "ease__scores", "rp3beta__scores", "als__scores"}


def test_blend_of_real_components_ranks_like_its_only_weighted_one():
    rng = np.random.default_rng(3)
    x = sp.csr_matrix((rng.random((40, 12)) < 0.3).astype(np.float32))
    ease = fit_ease(x, regularization=5.0)
    knn = KnnModel(similarity=sp.csr_matrix(rng.random((12, 12)).astype(np.float32)))
    blend = build_blend({"ease": ease, "rp3beta": knn, "als": knn}, (1.0, 0.0, 0.0))
    users = np.arange(40)
    got = blend.score(users, x)
    want = ease.score(users, x)
    np.testing.assert_array_equal(np.argsort(-got, axis=1), np.argsort(-want, axis=1))


def test_blend_needs_one_weight_per_component():
    with pytest.raises(ValueError, match="3 components need as many weights, got 2"):
        build_blend({"ease": _Fixed([[1]]), "rp3beta": _Fixed([[1]]), "als": _Fixed([[1]])}, (1, 1))
