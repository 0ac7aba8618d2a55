"""Temporal train/test split of clean plays, without leakage.

Plays before the cut-off are training data; the test set is what users discovered after it: the
(user, track) pairs first played after the cut-off that were never played before it, restricted to
users and tracks known in training. Pairs are aggregated after the cut, so no training row carries
a play from the test period.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from stages.interactions import aggregate_pairs
from stages.schema import PLAYED_AT, TRACK_IDX, USER_IDX

PAIR = (USER_IDX, TRACK_IDX)


@dataclass(frozen=True, slots=True, kw_only=True)
class Split:
    """Train and test interactions (schema INTERACTIONS) and the cut-off between them."""

    train: pl.LazyFrame
    test: pl.LazyFrame
    cutoff: dt.datetime


def temporal_cutoff(
    time_range: tuple[dt.datetime, dt.datetime], *, test_fraction: float
) -> dt.datetime:
    """The instant that leaves the last `test_fraction` of the time range for testing."""
    start, end = time_range
    return start + (end - start) * (1.0 - test_fraction)


def split_by_time(plays: pl.LazyFrame, *, cutoff: dt.datetime) -> Split:
    """Split plays (schema PLAYS) at `cutoff` into aggregated train and test interactions.

    Returns:
        Split whose train holds every pair played before `cutoff` (aggregated over those plays
        only) and whose test holds pairs first played at or after it, for users and tracks that
        appear in train. One row per (user_idx, track_idx), sorted.
    """
    parts = split_users_by_time(plays, cutoff=cutoff)
    test = keep_known_tracks(parts.test, train=parts.train)
    return Split(train=parts.train, test=test, cutoff=cutoff)


def split_users_by_time(plays: pl.LazyFrame, *, cutoff: dt.datetime) -> Split:
    """The per-user part of `split_by_time`, exact on any subset of users.

    Plays can be split one group of users at a time (bounded memory); the test candidates it
    returns still need `keep_known_tracks` against the train pairs of all users.
    """
    train = aggregate_pairs(plays.filter(pl.col(PLAYED_AT) < cutoff), keys=PAIR).sort(PAIR)
    later = aggregate_pairs(plays.filter(pl.col(PLAYED_AT) >= cutoff), keys=PAIR)
    candidates = (
        later.join(train.select(PAIR), on=PAIR, how="anti")
        .join(train.select(USER_IDX).unique(), on=USER_IDX, how="semi")
        .sort(PAIR)
    )
    return Split(train=train, test=candidates, cutoff=cutoff)


def keep_known_tracks(candidates: pl.LazyFrame, *, train: pl.LazyFrame) -> pl.LazyFrame:
    """Test candidates restricted to tracks that some user played in train; order kept."""
    return candidates.join(
        train.select(TRACK_IDX).unique(), on=TRACK_IDX, how="semi", maintain_order="left"
    )
