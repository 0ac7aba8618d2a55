import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from musicrec_cli.runner.split_train import TrainSink
from stages.interactions import build_matrix
from stages.schema import INTERACTIONS, PLAY_COUNT, TRACK_IDX, USER_IDX


def _pairs(seed: int, n_users: int, n_tracks: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, n_users * n_tracks, 500))
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return pl.DataFrame(
        {
            USER_IDX: keys // n_tracks,
            TRACK_IDX: keys % n_tracks,
            PLAY_COUNT: rng.integers(1, 1000, len(keys)),
            "total_ms_played": rng.integers(0, 10**9, len(keys)),
            "first_ts": [t0] * len(keys),
            "last_ts": [t0 + dt.timedelta(days=3)] * len(keys),
            "skip_count": rng.integers(0, 3, len(keys)),
        },
        schema=INTERACTIONS,
    )


def test_train_sink_writes_the_rows_and_the_matrix_of_build_matrix(tmp_path: Path):
    n_users, n_tracks = 40, 70
    pairs = _pairs(1, n_users, n_tracks)
    sink = TrainSink(tmp_path / "train.parquet", n_users=n_users, n_tracks=n_tracks, capacity=3)
    for first, last in ((0, 9), (10, 10), (11, 30), (31, 39)):  # capacity 3: the arrays grow
        sink.write(pairs.filter(pl.col(USER_IDX).is_between(first, last)))
    sink.close()
    assert sink.rows == pairs.height
    assert pl.read_parquet(tmp_path / "train.parquet").equals(pairs)
    got = sink.matrix()
    want = build_matrix(pairs.lazy(), value=PLAY_COUNT, n_users=n_users, n_tracks=n_tracks)
    assert got.shape == want.shape
    for name in ("data", "indices", "indptr"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b)
    known = np.zeros(n_tracks, dtype=bool)
    known[pairs[TRACK_IDX].to_numpy()] = True
    np.testing.assert_array_equal(sink.known_tracks, known)


def test_train_sink_without_pairs_writes_an_empty_file_with_the_schema(tmp_path: Path):
    sink = TrainSink(tmp_path / "train.parquet", n_users=3, n_tracks=4, capacity=0)
    sink.close()
    assert pl.read_parquet(tmp_path / "train.parquet").schema == pl.Schema(INTERACTIONS)
    assert sink.matrix().nnz == 0
    assert sink.matrix().shape == (3, 4)
