"""The output tables of preprocess: numbered tracks, items, users and the id maps.

The canonical tracks get a provisional track_idx in track_id order; once the k-core has chosen
the users and tracks that stay, `new_index` maps ("old", "new") renumber them, and these
functions join everything back onto the final indexes.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from stages.preprocess import catalog as catalogue
from stages.preprocess.encode import BUCKET, SPELLING_HASH, spelling_hash
from stages.preprocess.parse import N_PLAYS, PLAYS_PER_DAY
from stages.schema import PLAY_COUNT, TRACK_GROUP_ID, TRACK_ID, TRACK_IDX, USER_ID, USER_IDX

N_LISTENERS = "n_listeners"
_BLOCK = 1 << 22  # matrix entries counted at once


def number_tracks(tracks: pl.LazyFrame) -> pl.LazyFrame:
    """`names.canonical_tracks` output with a provisional track_idx (UInt32) in row order."""
    return tracks.with_row_index(TRACK_IDX).with_columns(pl.col(TRACK_IDX).cast(pl.UInt32))


def number_spellings(id_map: pl.LazyFrame, *, tracks: pl.LazyFrame) -> pl.LazyFrame:
    """Spellings (`names.canonicalise` output) with their track's track_idx and spelling_hash.

    The track_group_id is the track's (the most played spelling's, see
    `names.canonical_tracks`), so that every spelling of one track is in one group. Sorted by
    track_idx, spelling_hash (cheaper than sorting by the four strings).

    The track of each spelling is looked up on the track_id column alone and set beside the
    spellings: a join of the whole frame gathered every string column, and hashing those
    copies was slower too (5.7M spellings: 3.2 against 3.9-4.6 s).
    """
    found = id_map.select(TRACK_ID).join(
        tracks.select(TRACK_ID, TRACK_GROUP_ID, TRACK_IDX),
        on=TRACK_ID,
        how="left",  # every spelling's track is in `tracks`: the rows of id_map, in order
        maintain_order="left",
    )
    parts = [id_map.drop(TRACK_GROUP_ID), found.drop(TRACK_ID), id_map.select(spelling_hash())]
    return pl.concat(parts, how="horizontal").sort(TRACK_IDX, SPELLING_HASH)


def track_stats(matrix: sp.csr_matrix) -> pl.DataFrame:
    """track_idx, play_count (Int64) and n_listeners (UInt32) of every track with a listener.

    Counted a block of entries at a time: over the whole matrix, bincount's int64 and float64
    copies of its input were 16 bytes per pair (4.9 GB at 307M pairs) on top of the matrix.
    Play counts are whole numbers, so the float64 sums are exact in any order.

    Args:
        matrix: (n_users, n_tracks) CSR of play counts.
    """
    n_tracks = matrix.shape[1]
    plays = np.zeros(n_tracks, dtype=np.float64)
    listeners = np.zeros(n_tracks, dtype=np.int64)
    for start in range(0, matrix.nnz, _BLOCK):  # bincount copies its input to int64/float64
        tracks, values = matrix.indices[start : start + _BLOCK], matrix.data[start : start + _BLOCK]
        plays += np.bincount(tracks, weights=values, minlength=n_tracks)
        listeners += np.bincount(tracks, minlength=n_tracks)
    stats = pl.DataFrame(
        {
            TRACK_IDX: np.arange(n_tracks, dtype=np.uint32),
            PLAY_COUNT: np.rint(plays).astype(np.int64),
            N_LISTENERS: listeners.astype(np.uint32),
        }
    )
    return stats.filter(pl.col(N_LISTENERS) > 0)


def items_table(
    tracks: pl.LazyFrame,
    *,
    track_map: pl.LazyFrame,
    stats: pl.LazyFrame,
    catalog: pl.LazyFrame | None,
    id_map: pl.LazyFrame,
) -> pl.LazyFrame:
    """items.parquet: one row per kept track, sorted by track_idx (the first column).

    Args:
        tracks: `number_tracks` output.
        track_map: `new_index` of the kept tracks (old -> new track_idx).
        stats: `track_stats` of the final matrix.
        catalog: Optional track catalog, joined by `catalog.attach_catalog`.
        id_map: `number_spellings` output.
    """
    items = (
        tracks.join(track_map, left_on=TRACK_IDX, right_on="old")
        .drop(TRACK_IDX)
        .rename({"new": TRACK_IDX})
        .join(stats, on=TRACK_IDX)
    )
    if catalog is not None:
        items = catalogue.attach_catalog(items, catalog, id_map=id_map)
    return items.sort(TRACK_IDX).select(TRACK_IDX, pl.exclude(TRACK_IDX))


def users_table(
    users: pl.LazyFrame, *, user_map: pl.LazyFrame, activity: pl.LazyFrame
) -> pl.LazyFrame:
    """users.parquet: user_idx, user_id, n_plays, plays_per_day of every kept user, by user_idx.

    Args:
        users: `assign_buckets` output (provisional user_idx).
        user_map: `new_index` of the kept users (old -> new user_idx).
        activity: `user_activity` output.
    """
    return (
        users.join(user_map, left_on=USER_IDX, right_on="old")
        .drop(USER_IDX, BUCKET)
        .rename({"new": USER_IDX})
        .join(activity, on=USER_ID)
        .select(USER_IDX, USER_ID, N_PLAYS, PLAYS_PER_DAY)
        .sort(USER_IDX)
    )


def final_id_map(id_map: pl.LazyFrame, *, track_map: pl.LazyFrame) -> pl.LazyFrame:
    """id_map_tracks.parquet: every spelling with its final track_idx (null if dropped).

    Args:
        id_map: `number_spellings` output; its row order is kept.
        track_map: `new_index` of the kept tracks (old -> new track_idx).
    """
    final_idx = track_map.rename({"old": TRACK_IDX, "new": "final_idx"})
    return (
        id_map.join(final_idx, on=TRACK_IDX, how="left", maintain_order="left")
        .drop(TRACK_IDX, SPELLING_HASH)
        .rename({"final_idx": TRACK_IDX})
    )
