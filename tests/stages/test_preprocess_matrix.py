"""build_matrix: the direct CSR path for sorted pairs equals the COO path."""

from __future__ import annotations

import numpy as np
import polars as pl

from stages.interactions import build_matrix


def test_sorted_and_unsorted_pairs_give_the_same_matrix() -> None:
    pairs = pl.DataFrame(
        {"user_idx": [0, 0, 2, 2, 3], "track_idx": [1, 3, 0, 2, 3], "play_count": [5, 1, 2, 7, 3]},
        schema_overrides={"user_idx": pl.UInt32, "track_idx": pl.UInt32},
    )
    direct = build_matrix(pairs, value="play_count", n_users=5, n_tracks=4)
    shuffled = build_matrix(pairs.reverse(), value="play_count", n_users=5, n_tracks=4)
    expected = np.zeros((5, 4), dtype=np.float32)
    expected[[0, 0, 2, 2, 3], [1, 3, 0, 2, 3]] = [5, 1, 2, 7, 3]
    assert direct.dtype == np.float32
    assert np.array_equal(direct.toarray(), expected)
    assert np.array_equal(shuffled.toarray(), expected)
    assert direct.has_sorted_indices
    assert direct.indptr.tolist() == [0, 2, 2, 4, 5, 5]


def test_repeated_pairs_are_summed() -> None:
    pairs = pl.DataFrame({"user_idx": [0, 0], "track_idx": [1, 1], "w": [1.5, 2.0]})
    assert build_matrix(pairs, value="w", n_users=1, n_tracks=2).toarray().tolist() == [[0.0, 3.5]]
