"""TrainingData: what every model is fitted on (03_features), built once per `train` run.

The registry hands it to each model's fit function; the fit adapters (stages.models.fitting)
take from it the matrix their model wants (confidence weights, play counts, ages).

Memory (issue 20): at 800M events features_train has 254M pairs, so every byte per pair is
254 MB. The weights CSR is filled batch by batch from the scan (`build_matrix`: 8 bytes per
pair, the CSR itself), and `weights_spare` lets the last model that reads the weights
overwrite them (ALS scales them by alpha in place, see stages.models.als.fit_als).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from stages.interactions import build_matrix
from stages.schema import LAST_TS, PLAY_COUNT, TRACK_IDX, WEIGHT

IterationCallback = Callable[[], None]
_DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingData:
    """What the models are fitted on (03_features).

    Attributes:
        frame: features_train: user_idx, track_idx, weight, play_count, last_ts; one row per
            training (user, track) pair. Lazy: each model collects only the columns it reads
            (a Parquet scan keeps the 6 GB table of 254M pairs out of memory).
        weights: (n_users, n_items) float32 CSR of `weight` (confidence).
        audio: (n_items, d) float64 audio features, NaN where unknown (d may be 0).
        on_iteration: Called after each iteration of iterative fits (a progress bar).
        weights_spare: No model fitted after this one reads `weights`, so its fit may
            overwrite their values (the train runner sets it per model; False elsewhere).
    """

    frame: pl.LazyFrame
    weights: sp.csr_matrix
    audio: npt.NDArray[np.float64]
    on_iteration: IterationCallback = lambda: None
    weights_spare: bool = False

    @classmethod
    def build(
        cls,
        frame: pl.LazyFrame | pl.DataFrame,
        audio: npt.NDArray[np.float64],
        *,
        n_users: int,
        n_tracks: int,
    ) -> TrainingData:
        """From features_train and the audio array, with the weights CSR built once."""
        lazy = frame.lazy()
        weights = build_matrix(lazy, value=WEIGHT, n_users=n_users, n_tracks=n_tracks)
        return cls(frame=lazy, weights=weights, audio=audio)

    def counts(self) -> sp.csr_matrix:
        """(n_users, n_items) float32 CSR of play counts, same non-zeros as `weights`."""
        n_users, n_tracks = self.weights.shape
        return build_matrix(self.frame, value=PLAY_COUNT, n_users=n_users, n_tracks=n_tracks)

    def ages(self) -> pl.DataFrame:
        """track_idx, play_count, age_days (last play's age before the newest play in train).

        Without timestamps (a play-count table) every age is 0: trending is then popularity.
        """
        frame = self.frame.select(TRACK_IDX, PLAY_COUNT, LAST_TS).collect()
        newest = frame[LAST_TS].max()
        age = (pl.lit(newest) - pl.col(LAST_TS)).dt.total_microseconds() / _DAY_US
        age = age.fill_null(0.0) if newest is not None else pl.lit(0.0)
        return frame.select(TRACK_IDX, PLAY_COUNT, age.alias("age_days"))
