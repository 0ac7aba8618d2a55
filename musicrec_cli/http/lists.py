"""The top-N lists `musicrec predict` wrote (05_predict), indexed by user for O(1) answers.

Scoring one user live reads every track's factors (805K x 64 floats: 200 MB of memory traffic
per request); the batch stage already ranked every user, so a server answers from its lists
when 05_predict was built from the artifacts being served, and scores live otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import stage_dir
from stages.schema import MODEL, RANK, SCORE, TRACK_IDX, USER_IDX

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RankedList:
    """One model's lists: user u's tracks are track_idx[offsets[u]:offsets[u + 1]], best first."""

    offsets: npt.NDArray[np.int64]
    track_idx: npt.NDArray[np.int32]
    scores: npt.NDArray[np.float32]

    def top(self, user_idx: int, n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The user's first `n` tracks and scores (empty if predict left the user out)."""
        start, end = self.offsets[user_idx], self.offsets[user_idx + 1]
        end = min(end, start + n)
        return self.track_idx[start:end].astype(np.int64), self.scores[start:end]


@dataclass(frozen=True, slots=True, kw_only=True)
class Lists:
    """Every list of 05_predict by list name ("als", "als+rerank", ...), `depth` tracks deep."""

    depth: int
    by_name: dict[str, RankedList]

    def lookup(
        self, name: str, user_idx: int, n: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]] | None:
        """The precomputed answer, or None when there is none to give (live scoring then).

        None if the list is not there, `n` is deeper than predict went, or the user has no
        list (left out by `musicrec predict --users`, or no track left to recommend).
        """
        ranked = self.by_name.get(name)
        if ranked is None or n > self.depth:
            return None
        idx, best = ranked.top(user_idx, n)
        return (idx, best) if len(idx) else None


def _ranked(frame: pl.DataFrame, n_users: int) -> RankedList:
    frame = frame.sort(USER_IDX, RANK)  # written in this order already: a check, nearly free
    users = frame[USER_IDX].to_numpy()
    offsets = np.searchsorted(users, np.arange(n_users + 1), side="left").astype(np.int64)
    return RankedList(
        offsets=offsets,
        track_idx=frame[TRACK_IDX].to_numpy().astype(np.int32),
        scores=frame[SCORE].to_numpy().astype(np.float32),
    )


def load_lists(root: Path, manifest: dict[str, object], n_users: int) -> Lists:
    """05_predict/predictions.parquet as one RankedList per list name, read one list at a time."""
    path = stage_dir(root, "predict") / art.PREDICTIONS
    summary = manifest.get("summary", {})
    names = summary.get("models", []) if isinstance(summary, dict) else []
    config = manifest.get("config", {})
    depth = int(config.get("n", 0)) if isinstance(config, dict) else 0
    by_name = {
        name: _ranked(
            pl.scan_parquet(path)
            .filter(pl.col(MODEL) == name)
            .select(USER_IDX, RANK, TRACK_IDX, SCORE)
            .collect(),
            n_users,
        )
        for name in names
    }
    log.info("serving %d precomputed list(s) of %s, %d deep", len(by_name), path, depth)
    return Lists(depth=depth, by_name=by_name)
