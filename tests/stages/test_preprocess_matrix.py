"""build_matrix: the batch-by-batch CSR path for sorted pairs equals the COO path."""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from stages import interactions
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


def _random_pairs(seed: int, n_users: int = 30, n_tracks: int = 12) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    dense = rng.integers(1, 9, size=(n_users, n_tracks)) * (rng.random((n_users, n_tracks)) < 0.3)
    users, tracks = np.nonzero(dense)  # row-major: sorted by (user, track), no repeats
    return pl.DataFrame(
        {"user_idx": users, "track_idx": tracks, "play_count": dense[users, tracks]},
        schema={"user_idx": pl.UInt32, "track_idx": pl.UInt32, "play_count": pl.UInt32},
    )


def test_sorted_pairs_filled_batch_by_batch_equal_the_coo_matrix(monkeypatch, tmp_path) -> None:
    pairs = _random_pairs(0)
    pairs.write_parquet(tmp_path / "events.parquet", row_group_size=5)
    monkeypatch.setattr(interactions, "_BATCH_ROWS", 4)  # batches end inside a user's row
    expected = sp.coo_matrix(
        (pairs["play_count"].to_numpy(), (pairs["user_idx"], pairs["track_idx"])), shape=(31, 12)
    ).toarray()
    for source in (pairs, pl.scan_parquet(tmp_path / "events.parquet")):
        matrix = build_matrix(source, value="play_count", n_users=31, n_tracks=12)
        assert np.array_equal(matrix.toarray(), expected)
        assert matrix.indices.dtype == np.int32
        assert matrix.indptr.tolist() == np.r_[0, np.cumsum((expected > 0).sum(axis=1))].tolist()


def test_pairs_out_of_order_across_batches_go_through_coo(monkeypatch) -> None:
    monkeypatch.setattr(interactions, "_BATCH_ROWS", 2)  # each batch is sorted on its own
    pairs = pl.DataFrame(
        {"user_idx": [0, 2, 1, 3, 3, 3], "track_idx": [1, 0, 0, 1, 0, 1], "w": [1, 2, 3, 4, 5, 6]}
    )
    matrix = build_matrix(pairs, value="w", n_users=4, n_tracks=2)
    # (2,0) then (1,0) across the first boundary; (3,1) repeated across the second
    assert matrix.toarray().tolist() == [[0, 1], [3, 0], [2, 0], [5, 10]]
