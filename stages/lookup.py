"""Finding what a command names: a user id, tracks by id or by "Artist - Title", search words.

Names are matched through preprocess's keys (`stages.preprocess.names`), so "Daft Punk - One More
Time" finds the track whose id is "daft punk - one more time" whatever the spelling in the log.
A miss raises LookupFailedError naming the closest known ids.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import polars as pl

from stages.preprocess.names import query_track_key
from stages.schema import TRACK_ID, TRACK_IDX, USER_ID, USER_IDX

_SHORTLIST = 5_000


class LookupFailedError(LookupError):
    """A user, track or model named by the user is not in the trained data."""


def _shortlist(query: str, known: pl.Series) -> pl.Series:
    """At most _SHORTLIST values of `known` most like `query`, cheaply.

    Those sharing the most words with the query, else those sharing its longest prefix (so
    "user_00012x" still finds "user_000120").
    """
    words = [w for w in query.split() if len(w) >= 3]
    if words:
        col = pl.col(known.name)
        shared = pl.sum_horizontal(col.str.contains(w, literal=True).cast(pl.UInt8) for w in words)
        ranked = known.to_frame().with_columns(shared.alias("shared"))
        ranked = ranked.filter(pl.col("shared") > 0)
        if ranked.height:
            ranked = ranked.sort("shared", descending=True, maintain_order=True)
            return ranked[known.name].head(_SHORTLIST)
    for k in range(len(query), 2, -1):
        hits = known.filter(known.str.starts_with(query[:k]))
        if hits.len():
            return hits.head(_SHORTLIST)
    return known.clear()


def _closest(query: str, known: pl.Series) -> str:
    """' Closest: ...' naming up to three of `known` most like `query` (difflib), or ''.

    difflib compares in Python, about 0.1 ms per string, so a large vocabulary is first cut
    down by `_shortlist`.
    """
    if known.len() > _SHORTLIST:
        known = _shortlist(query, known)
    close = difflib.get_close_matches(query, known.to_list(), n=3, cutoff=0.6)
    return f" Closest: {', '.join(map(repr, close))}." if close else ""


def find_user(user_id: str, users: pl.DataFrame) -> int:
    """user_idx of `user_id` in a users frame (user_idx, user_id); LookupFailedError if absent."""
    hit = users.filter(pl.col(USER_ID) == user_id)
    if hit.is_empty():
        hint = _closest(user_id, users[USER_ID])
        msg = f"unknown user {user_id!r}: not in the training data.{hint}"
        raise LookupFailedError(msg)
    return int(hit[USER_IDX][0])


def find_tracks(queries: Sequence[str], items: pl.DataFrame) -> list[int]:
    """track_idx of each query: a track_id, or "Artist - Title" in any spelling preprocess merges.

    Args:
        queries: Track ids or "Artist - Title" strings.
        items: Frame with track_idx and track_id (01_preprocess/items.parquet).

    Raises:
        LookupFailedError: naming the first query not found and the closest track ids.
    """
    keys = pl.Series(list(queries), dtype=pl.String).to_frame("query")
    keys = keys.with_columns(query_track_key(pl.col("query")).alias("key")).with_row_index("i")
    exact = keys.join(items.select(TRACK_ID, TRACK_IDX), left_on="query", right_on=TRACK_ID)
    normal = keys.join(items.select(TRACK_ID, TRACK_IDX), left_on="key", right_on=TRACK_ID)
    found = pl.concat([exact.select("i", TRACK_IDX), normal.select("i", TRACK_IDX)])
    found = found.unique("i", keep="first").sort("i")
    missing = keys.filter(~pl.col("i").is_in(found["i"].implode()))
    if not missing.is_empty():
        query, key = missing["query"][0], missing["key"][0]
        msg = f"unknown track {query!r}: no track id {key!r}.{_closest(key, items[TRACK_ID])}"
        raise LookupFailedError(msg)
    return [int(v) for v in found[TRACK_IDX]]


def search_tracks(
    names: pl.Series, popularity: npt.NDArray[np.float32], query: str, *, n: int
) -> npt.NDArray[np.int64]:
    """Track indexes whose `names` contain every word of `query`, most popular first.

    Args:
        names: (n_items,) lower-case searchable text per track_idx ("artist - title" and id).
        popularity: (n_items,) higher first; ties go to the lower track index.
        query: Words to find, in any case and order.
        n: At most this many results.
    """
    words = query.lower().split()
    if not words:
        return np.zeros(0, dtype=np.int64)
    frame = pl.DataFrame({"name": names, "pop": popularity}).with_row_index("idx")
    hits = frame.filter(
        pl.all_horizontal(pl.col("name").str.contains(w, literal=True) for w in words)
    )
    hits = hits.sort(["pop", "idx"], descending=[True, False]).head(n)
    return hits["idx"].to_numpy().astype(np.int64)
