"""Audio features as z-scores over the catalogue: one definition for content, MMR and evaluate."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

from stages.schema import AUDIO_FEATURES


def audio_columns(columns: list[str]) -> list[str]:
    """The schema.AUDIO_FEATURES among `columns`, in the schema's order."""
    return [c for c in AUDIO_FEATURES if c in columns]


def standardise(values: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """Z-scores per column: (x - mean) / std over the tracks that have the feature.

    The std is the population one (scikit-learn's StandardScaler, which skips NaN when
    fitting): the catalogue is the whole population of tracks, not a sample of it. A constant
    column gives 0; NaN (unknown) stays NaN.

    Args:
        values: (n_tracks, d) audio features, NaN where unknown.

    Returns:
        (n_tracks, d) float64.
    """
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415 (0.9 s to import)

    array = np.asarray(values, dtype=np.float64)
    if array.shape[0] == 0 or array.shape[1] == 0:
        return array.copy()
    return np.asarray(StandardScaler().fit_transform(array), dtype=np.float64)


def audio_z_scores(items: pl.DataFrame) -> npt.NDArray[np.float64] | None:
    """`standardise` of the audio-feature columns of `items` (nulls are unknown), or None if none.

    Args:
        items: One row per track, in track_idx order, with any of schema.AUDIO_FEATURES.
    """
    cols = audio_columns(items.columns)
    if not cols:
        return None
    values = items.select(pl.col(c).cast(pl.Float64).fill_null(np.nan) for c in cols).to_numpy()
    return standardise(values)
