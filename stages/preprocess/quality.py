"""What the first pass found, whether it is usable, and quality_report.json.

The report gives each step's rows in and out and why rows were dropped, the unreadable rows
with examples, and how much the name keys collapsed the raw spellings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from stages.preprocess.parse import IS_BOT, N_PLAYS, SHORT_PLAY, UNPARSEABLE, UNPARSEABLE_WHAT
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
    """

    reasons: dict[str, int]
    id_map: pl.DataFrame
    tracks: pl.DataFrame
    activity: pl.DataFrame
    examples: list[dict[str, Any]]

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
    s: Survey, c: Counts, *, fmt: str, max_bad_share: float, items: pl.DataFrame
) -> dict[str, Any]:
    """quality_report.json: each step's rows in/out and why, and the name collapse counts.

    Args:
        s: The survey.
        c: The second pass's counts.
        fmt: The `[preprocess].format` the log was read with.
        max_bad_share: `[preprocess].max_bad_share`, recorded beside the unreadable rows.
        items: `tables.items_table` output.
    """
    parse_dropped = {r: n for r, n in s.reasons.items() if r not in (KEPT, SHORT_PLAY)}
    after_parse = s.rows_in - sum(parse_dropped.values())
    bots = s.activity.filter(pl.col(IS_BOT)).height
    human_plays = s.kept - s.bot_plays
    n_artists_raw = s.id_map[ARTIST_NAME].n_unique()
    raw_tracks = s.id_map.select(ARTIST_NAME, TRACK_NAME).n_unique()
    return {
        "format": fmt,
        "rows_in": s.rows_in,
        "steps": [
            _step("parse", s.rows_in, after_parse, parse_dropped),
            _step("min_ms_played", after_parse, s.kept, {SHORT_PLAY: s.reasons.get(SHORT_PLAY, 0)}),
            _step("bots", s.kept, human_plays, {"users": bots, "plays": s.bot_plays}),
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
            "canonical_artists": s.id_map[ARTIST_ID].n_unique(),
            "raw_tracks": raw_tracks,
            "canonical_tracks": s.tracks.height,
            "track_groups": s.tracks[TRACK_GROUP_ID].n_unique(),
            "artist_reduction": round(1 - s.id_map[ARTIST_ID].n_unique() / n_artists_raw, 4),
            "track_reduction": round(1 - s.tracks.height / raw_tracks, 4),
        },
        "n_buckets": c.n_buckets,
        "output": {
            "plays": c.plays,
            "pairs": c.events,
            "users": c.users,
            "tracks": items.height,
            "tracks_with_audio_features": _with_features(items),
        },
    }


def _with_features(items: pl.DataFrame) -> int:
    col = AUDIO_FEATURES[0]
    return int(items[col].is_not_null().sum()) if col in items.columns else 0


def _step(
    name: str, rows_in: int, rows_out: int, dropped: dict[str, int], **extra: Any
) -> dict[str, Any]:
    return {"step": name, "rows_in": rows_in, "rows_out": rows_out, "dropped": dropped, **extra}
