"""build_matrix: the direct CSR path for sorted pairs equals the COO path."""

from __future__ import annotations

import numpy as np
import polars as pl

from stages.interactions import build_matrix, pairs_are_sorted


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


def test_sortedness_is_checked_across_block_boundaries() -> None:
    users = np.array([0, 0, 1, 1, 2, 2], dtype=np.uint32)
    tracks = np.array([0, 1, 0, 1, 0, 1], dtype=np.uint32)
    assert pairs_are_sorted(users, tracks, block=2)
    for swap in range(len(users) - 1):  # one step out of order, in any block or between blocks
        t = tracks.copy()
        u = users.copy()
        u[[swap, swap + 1]] = u[[swap + 1, swap]]
        t[[swap, swap + 1]] = t[[swap + 1, swap]]
        assert not pairs_are_sorted(u, t, block=2), swap
    assert not pairs_are_sorted(users, np.array([0, 1, 0, 1, 1, 1], dtype=np.uint32), block=2)


def test_direct_path_uses_32_bit_indexes() -> None:
    pairs = pl.DataFrame({"user_idx": [0, 1], "track_idx": [1, 0], "w": [1.0, 2.0]})
    matrix = build_matrix(pairs, value="w", n_users=2, n_tracks=2)
    assert matrix.indices.dtype == np.int32
    assert matrix.indptr.dtype == np.int32


def test_parquet_scan_gives_the_same_matrix_as_the_frame(tmp_path) -> None:
    pairs = pl.DataFrame(
        {"user_idx": [0, 0, 2], "track_idx": [1, 3, 0], "play_count": [5, 1, 2]},
        schema=dict.fromkeys(("user_idx", "track_idx", "play_count"), pl.UInt32),
    )
    pairs.write_parquet(tmp_path / "events.parquet")
    scanned = build_matrix(
        pl.scan_parquet(tmp_path / "events.parquet"), value="play_count", n_users=3, n_tracks=4
    )
    direct = build_matrix(pairs, value="play_count", n_users=3, n_tracks=4)
    assert (scanned != direct).nnz == 0
    assert scanned.toarray()[0].tolist() == [0.0, 5.0, 0.0, 1.0]
