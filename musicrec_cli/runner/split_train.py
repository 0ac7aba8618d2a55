"""train.parquet and train_matrix.npz, written by the split runner one user range at a time.

A range's train pairs are final as soon as the range is split (sorted, one row per pair), so
they are appended to train.parquet as row groups and copied into the CSR arrays there, instead
of going to part files that are decoded and encoded again at the end and then read back twice
(keys, then values) for the matrix: at 800M events 254M pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow.parquet as pq
import scipy.sparse as sp

from musicrec_cli import artifacts as art
from stages.schema import INTERACTIONS, PLAY_COUNT, TRACK_IDX, USER_IDX


class TrainSink:
    """Appends sorted train pairs to a Parquet file and to the arrays of their CSR matrix.

    Args:
        path: The Parquet file to write (zstd, level art.ZSTD_LEVEL).
        n_users: Rows of the matrix.
        n_tracks: Columns of the matrix.
        capacity: Expected pairs (preprocess's n_pairs bounds train's); the arrays grow past it.
    """

    def __init__(self, path: Path, *, n_users: int, n_tracks: int, capacity: int) -> None:
        self.path, self.rows, self.shape = path, 0, (n_users, n_tracks)
        self.known_tracks = np.zeros(n_tracks, dtype=bool)
        self._writer: pq.ParquetWriter | None = None
        self._counts = np.zeros(n_users, dtype=np.int64)
        # np.empty: pages are committed as they are filled, not at allocation
        index = np.int32 if capacity < 2**31 else np.int64
        self._indices: npt.NDArray[np.integer[Any]] = np.empty(capacity, dtype=index)
        self._data = np.empty(capacity, dtype=np.float32)

    def write(self, frame: pl.DataFrame) -> None:
        """Append `frame` (schema INTERACTIONS, sorted by user_idx, track_idx)."""
        table = frame.to_arrow()
        if self._writer is None:
            # no dictionary pages: Polars writes none for these columns either, and building
            # them doubled the encoding time (0.35 vs 0.8 CPU s for 3M pairs)
            self._writer = pq.ParquetWriter(
                self.path,
                table.schema,
                compression="zstd",
                compression_level=art.ZSTD_LEVEL,
                use_dictionary=False,
            )
        self._writer.write_table(table)
        users, tracks = frame[USER_IDX].to_numpy(), frame[TRACK_IDX].to_numpy()
        end = self.rows + frame.height
        if end > len(self._data):
            self._grow(end)
        self._counts += np.bincount(users, minlength=self.shape[0])
        self._indices[self.rows : end] = tracks
        self._data[self.rows : end] = frame[PLAY_COUNT].to_numpy()
        self.known_tracks[tracks] = True
        self.rows = end

    def _grow(self, needed: int) -> None:
        size = max(needed, 2 * len(self._data))
        index = self._indices.dtype if size < 2**31 else np.dtype(np.int64)
        self._indices = np.concatenate(
            [self._indices[: self.rows], np.empty(size - self.rows, index)]
        )
        self._data = np.concatenate(
            [self._data[: self.rows], np.empty(size - self.rows, np.float32)]
        )

    def close(self) -> None:
        """Finish the Parquet file (an empty one with the schema if nothing was written)."""
        if self._writer is None:
            self.write(pl.DataFrame(schema=INTERACTIONS))
        if self._writer is not None:
            self._writer.close()

    def matrix(self) -> sp.csr_matrix:
        """(n_users, n_tracks) float32 CSR of play_count: as stages.interactions.build_matrix."""
        index = np.int32 if self.rows < 2**31 else np.int64
        indptr: npt.NDArray[np.integer[Any]] = np.zeros(self.shape[0] + 1, dtype=index)
        np.cumsum(self._counts, out=indptr[1:])
        indices: npt.NDArray[np.integer[Any]] = self._indices[: self.rows].astype(index, copy=False)
        return sp.csr_matrix((self._data[: self.rows], indices, indptr), shape=self.shape)
