"""What the first pass found, whether it is usable, and quality_report.json.

The report gives each step's rows in and out and why rows were dropped, the unreadable rows
with examples, and how much the name keys collapsed the raw spellings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from stages.preprocess.catalog import CATALOG_KEY, matched_by
from stages.preprocess.columns import SOURCE_FILE
from stages.preprocess.parse import (
    DROP_REASON,
    IS_BOT,
    N_PLAYS,
    SHORT_PLAY,
    UNPARSEABLE,
    UNPARSEABLE_WHAT,
)
from stages.schema import ARTIST_ID, ARTIST_NAME, AUDIO_FEATURES, TRACK_GROUP_ID, TRACK_NAME

KEPT = "kept"


@dataclass(frozen=True, slots=True, kw_only=True)
class Survey:
    """What the first pass over the raw log found (all small frames).

    Attributes:
        reasons: Rows per drop reason, "kept" for the rows kept.
        id_map: `tables.number_spellings` output: one row per distinct spelling.
        tracks: `tables.number_tracks` output: one row per canonical track.
        activity: `parse.user_activity` output, sorted by user_id.
        examples: Up to a few rows whose values could not be read (`parse.bad_examples`).
        file_counts: `parse.file_reason_counts` output: rows per (source_file, drop_reason).
    """

    reasons: dict[str, int]
    id_map: pl.DataFrame
    tracks: pl.DataFrame
    activity: pl.DataFrame
    examples: list[dict[str, Any]]
    file_counts: pl.DataFrame = field(default_factory=pl.DataFrame)

    @property
    def rows_in(self) -> int:
        """Rows of the raw log (a pre-aggregated row counts once per play)."""
        return sum(self.reasons.values())

    @property
    def kept(self) -> int:
        """Rows with no drop reason."""
        return self.reasons.get(KEPT, 0)

    @property
    def bot_plays(self) -> int:
        """Kept plays of the users found to be bots."""
        return int(self.activity.filter(pl.col(IS_BOT))[N_PLAYS].sum())


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """Row counts of the second pass, for the report.

    Attributes:
        deduped: Human plays left after de-duplication.
        pairs: User-track pairs before the k-core.
        events: Pairs after the k-core (rows of events.parquet).
        plays: Plays after the k-core (rows of plays.parquet).
        rounds: k-core rounds run.
        n_buckets: User buckets the plays were aggregated in.
        users: Users kept.
    """

    deduped: int
    pairs: int
    events: int
    plays: int
    rounds: int
    n_buckets: int
    users: int


def survey_problem(s: Survey, *, fmt: str, max_bad_share: float) -> str | None:
    """Why the log cannot be preprocessed (the message's text after the file name), or None.

    Args:
        s: The survey.
        fmt: The `[preprocess].format` it was read with, named in the advice.
        max_bad_share: Largest share of rows with unreadable values that is accepted.
    """
    if s.rows_in == 0:
        return f"the raw listening log has no rows; expected plays in format {fmt!r}."
    bad = sum(s.reasons.get(r, 0) for r in UNPARSEABLE)
    if bad > max_bad_share * s.rows_in:
        first = s.examples[0] if s.examples else {}
        where = ", ".join(
            f"{UNPARSEABLE_WHAT[r]}: {s.reasons[r]:,}" for r in UNPARSEABLE if s.reasons.get(r)
        )
        return (
            f"{bad:,} of {s.rows_in:,} rows ({bad / s.rows_in:.1%}) have unreadable "
            f"values ({where}), more than [preprocess].max_bad_share = {max_bad_share}; "
            f"first: {first}. "
            f"Check [preprocess].format ({fmt!r}) or raise max_bad_share."
        )
    if s.kept == 0:
        reasons = ", ".join(f"{r} {n:,}" for r, n in s.reasons.items())
        return f"no valid plays among {s.rows_in:,} rows ({reasons}); check the format."
    return None


def quality_report(
    s: Survey,
    c: Counts,
    *,
    fmt: str,
    max_bad_share: float,
    items: pl.DataFrame,
    counted: bool = False,
) -> dict[str, Any]:
    """quality_report.json: each step's rows in/out and why, and the name collapse counts.

    Args:
        s: The survey.
        c: The second pass's counts.
        fmt: The `[preprocess].format` the log was read with.
        max_bad_share: `[preprocess].max_bad_share`, recorded beside the unreadable rows.
        items: `tables.items_table` output.
        counted: The input was a count table (rows are pairs; no bots, no duplicates).
    """
    parse_dropped = {r: n for r, n in s.reasons.items() if r not in (KEPT, SHORT_PLAY)}
    after_parse = s.rows_in - sum(parse_dropped.values())
    bots = s.activity.filter(pl.col(IS_BOT)).height
    human_plays = s.kept - s.bot_plays
    distinct = s.id_map.select(  # one select: the three counts run in parallel
        pl.col(ARTIST_NAME).n_unique().alias("artists"),
        pl.struct(ARTIST_NAME, TRACK_NAME).n_unique().alias("tracks"),
        pl.col(ARTIST_ID).n_unique().alias("artist_ids"),
    ).row(0, named=True)
    n_artists_raw, raw_tracks = distinct["artists"], distinct["tracks"]
    return {
        "format": fmt,
        "aggregated": counted,
        "rows_in": s.rows_in,
        "steps": [
            _step("parse", s.rows_in, after_parse, parse_dropped),
            _step("min_ms_played", after_parse, s.kept, {SHORT_PLAY: s.reasons.get(SHORT_PLAY, 0)}),
            _step(
                "bots",
                s.kept,
                human_plays,
                {"users": bots, "plays": s.bot_plays},
                **(
                    {"note": "skipped: the input is aggregated, plays per day unknown"}
                    if counted
                    else {}
                ),
            ),
            _step("dedupe", human_plays, c.deduped, {"duplicate_plays": human_plays - c.deduped}),
            _step(
                "min_counts",
                c.pairs,
                c.events,
                {"pairs": c.pairs - c.events},
                unit="pairs",
                rounds=c.rounds,
            ),
        ],
        "unparseable": {
            "rows": sum(s.reasons.get(r, 0) for r in UNPARSEABLE),
            "max_share": max_bad_share,
            "examples": s.examples,
        },
        "canonical": {
            "raw_artist_names": n_artists_raw,
            "canonical_artists": distinct["artist_ids"],
            "raw_tracks": raw_tracks,
            "canonical_tracks": s.tracks.height,
            "track_groups": s.tracks[TRACK_GROUP_ID].n_unique(),
            "artist_reduction": round(1 - distinct["artist_ids"] / n_artists_raw, 4),
            "track_reduction": round(1 - s.tracks.height / raw_tracks, 4),
        },
        "n_buckets": c.n_buckets,
        "catalog": _catalog(items),
        "output": {
            "plays": c.plays,
            "pairs": c.events,
            "users": c.users,
            "tracks": items.height,
            "tracks_with_audio_features": _with_features(items),
        },
    }


def _catalog(items: pl.DataFrame) -> dict[str, Any] | None:
    """Tracks the catalogue joined, by key (`catalog.matched_by`); None without a catalogue."""
    if CATALOG_KEY not in items.columns:
        return None
    return {"tracks": items.height, "matched_by": matched_by(items)}


def _with_features(items: pl.DataFrame) -> int:
    col = AUDIO_FEATURES[0]
    return int(items[col].is_not_null().sum()) if col in items.columns else 0


def _step(
    name: str, rows_in: int, rows_out: int, dropped: dict[str, int], **extra: Any
) -> dict[str, Any]:
    return {"step": name, "rows_in": rows_in, "rows_out": rows_out, "dropped": dropped, **extra}


def input_files(
    file_counts: pl.DataFrame, *, read: list[str], shown: list[str]
) -> list[dict[str, Any]]:
    """Per input file: its path as the user knows it, rows read and kept, its user ids.

    Args:
        file_counts: `Survey.file_counts`.
        read: The paths the readers saw (source_file values), in the order of `shown`.
        shown: The same files as the user knows them (archive members as archive/member).

    Returns:
        One dict per file; `rows_dropped` counts its dropped rows by drop reason (rule);
        `user_ids` is the file's one user, or the smallest and largest of
        several (a multi-user log), with `several_users` true.
    """
    rows = file_counts.group_by(SOURCE_FILE).agg(
        pl.col("n").sum().alias("read"),
        pl.col("n").filter(pl.col(DROP_REASON).is_null()).sum().alias("kept"),
        pl.col("user_min").min(),
        pl.col("user_max").max(),
        pl.struct(DROP_REASON, "n").filter(pl.col(DROP_REASON).is_not_null()).alias("dropped"),
    )
    found = {row[SOURCE_FILE]: row for row in rows.iter_rows(named=True)}
    out = []
    for path, name in zip(read, shown, strict=True):
        row = found.get(path, {"read": 0, "kept": 0, "user_min": None, "user_max": None})
        ids = [u for u in dict.fromkeys((row["user_min"], row["user_max"])) if u is not None]
        dropped = {d[DROP_REASON]: d["n"] for d in sorted(row.get("dropped") or [], key=str)}
        entry = {
            "path": name,
            "rows_read": row["read"],
            "rows_kept": row["kept"],
            "rows_dropped": dropped,
            "user_ids": ids,
        }
        out.append(entry | ({"several_users": True} if len(ids) > 1 else {}))
    return out


def user_files(files: list[dict[str, Any]]) -> dict[str, int]:
    """User id -> number of its input files, for files of one user (per-person exports)."""
    counts: dict[str, int] = {}
    for f in files:
        if len(f["user_ids"]) == 1:
            counts[f["user_ids"][0]] = counts.get(f["user_ids"][0], 0) + 1
    return dict(sorted(counts.items()))
