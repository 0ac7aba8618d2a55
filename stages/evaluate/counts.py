"""Counts over the training pairs that evaluate needs, in one NumPy pass over sorted pairs.

    listeners per track       distinct training users who played it (popularity, novelty)
    training tracks per user  distinct tracks (the activity segments)
    training users            distinct users (the denominator of popularity)

`stages.interactions.listener_share` and `views.activity_segments` define them with Polars
group-bys of n_unique, which took over a minute at 800M events (254M training pairs). split
writes train.parquet in strictly increasing (user_idx, track_idx) order: then every pair is
distinct, a user's tracks are one run and each count is a run length or a bincount. Other
input (unsorted or with repeated pairs) gets None, and the caller uses the group-bys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from stages.schema import LISTENERS, TRACK_IDX, USER_IDX

N_TRAIN_TRACKS = "n_train_tracks"


@dataclass(frozen=True, slots=True)
class TrainCounts:
    """The three counts.

    listeners: track_idx, listeners (UInt32), one row per track with a listener; per_user:
    user_idx, n_train_tracks (UInt32), one row per training user; n_users: training users.
    """

    listeners: pl.DataFrame
    per_user: pl.DataFrame
    n_users: int


def _strictly_increasing(
    users: npt.NDArray[np.uint32], tracks: npt.NDArray[np.uint32], *, chunk: int
) -> bool:
    """True if (users[i], tracks[i]) increases strictly with i; `chunk` rows compared at once."""
    for start in range(0, max(len(users) - 1, 0), chunk):
        stop = min(start + chunk, len(users) - 1)
        u0, u1 = users[start:stop], users[start + 1 : stop + 1]
        t0, t1 = tracks[start:stop], tracks[start + 1 : stop + 1]
        if not np.all((u1 > u0) | ((u1 == u0) & (t1 > t0))):
            return False
    return True


def count_sorted_pairs(
    users: npt.NDArray[np.uint32], tracks: npt.NDArray[np.uint32], *, chunk: int = 1 << 24
) -> TrainCounts | None:
    """The counts of training pairs in strictly increasing (user, track) order, else None.

    Args:
        users: user_idx of each pair (UInt32).
        tracks: track_idx of each pair (UInt32), same length.
        chunk: Pairs compared at once by the order check (its temporary memory).
    """
    if not _strictly_increasing(users, tracks, chunk=chunk):
        return None
    new_user = np.ones(len(users), dtype=bool)
    new_user[1:] = users[1:] != users[:-1]
    starts = np.flatnonzero(new_user)
    runs = np.diff(np.append(starts, len(users)))
    played = np.bincount(tracks) if len(tracks) else np.zeros(0, dtype=np.int64)
    heard = np.flatnonzero(played)
    listeners = pl.DataFrame(
        {TRACK_IDX: heard, LISTENERS: played[heard]},
        schema={TRACK_IDX: pl.UInt32, LISTENERS: pl.UInt32},
    )
    per_user = pl.DataFrame(
        {USER_IDX: users[starts], N_TRAIN_TRACKS: runs},
        schema={USER_IDX: pl.UInt32, N_TRAIN_TRACKS: pl.UInt32},
    )
    return TrainCounts(listeners=listeners, per_user=per_user, n_users=len(starts))
