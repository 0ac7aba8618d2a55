"""Parse the raw log: typed columns, drop reasons, and the small counts of the first pass.

`parse_raw` types every row and names the first reason to drop it (`drop_reason`). The kept
rows' distinct spellings (`spellings`) go to `names.canonicalise`; the users' activity
(`user_reason_counts`, `user_activity`) decides the bots. Both are counted one batch of input
files at a time and the batches' partial counts merged per `hash_partition`
(`merge_user_counts`, `merge_spellings`): a streaming group-by holds rows of rarely repeated
keys until its end, so its memory grows with the rows read, not the groups. How each column's
values are read (timestamps, booleans, ids, counts) is stages/preprocess/values.py.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from stages.preprocess import shows, values
from stages.preprocess.columns import (
    ARTIST_MBID,
    INVALID_LINE,
    NON_MUSIC,
    RAW_PLAY_COUNT,
    SOURCE_FILE,
    TRACK_MBID,
)
from stages.preprocess.values import WEIGHT
from stages.schema import (
    ARTIST_NAME,
    MS_PLAYED,
    PLAYED_AT,
    SKIPPED,
    TRACK_NAME,
    TRACK_URI,
    USER_ID,
)

DROP_REASON = "drop_reason"
RAW_VALUE = "raw_value"
PART = "part"
N_PLAYS = "n_plays"
PLAYS_PER_DAY = "plays_per_day"
IS_BOT = "is_bot"
# reasons that mean a value could not be read (they count towards [preprocess].max_bad_share)
UNPARSEABLE = ("invalid_line", "bad_timestamp", "bad_ms_played", "bad_skipped", "bad_play_count")
# what each of those reasons could not read, for messages
UNPARSEABLE_WHAT = {
    "invalid_line": "lines that are not valid records",
    "bad_timestamp": f"column {PLAYED_AT!r}",
    "bad_ms_played": f"column {MS_PLAYED!r}",
    "bad_skipped": f"column {SKIPPED!r} (expected true/false, 1/0, yes/no or empty)",
    "bad_play_count": f"column {RAW_PLAY_COUNT!r} (expected a whole number of plays)",
}
SHORT_PLAY = "short_play"
# a recording MBID is part of a spelling: names never join two recordings (recordings.tracks_by_id)
SPELLING = (ARTIST_NAME, TRACK_NAME, ARTIST_MBID, TRACK_URI, TRACK_MBID)
_PLACEHOLDER_ARTISTS = (
    "Unknown Artist", "unknown artist", "Unknown", "unknown", "<unknown>", "[unknown]",
)  # fmt: skip


def parse_raw(
    raw: pl.LazyFrame, *, ts_min: dt.datetime, ts_max: dt.datetime, min_ms_played: int
) -> pl.LazyFrame:
    """Type the raw columns and name the first reason to drop each row.

    Args:
        raw: `columns.REQUIRED` columns as a format preset produced them (played_at of any dtype),
            plus any of stages.preprocess.columns.OPTIONAL, `non_music` and `invalid_line`.
        ts_min: Earliest valid play time (UTC).
        ts_max: Latest valid play time (UTC).
        min_ms_played: Plays shorter than this are dropped where ms_played is known.

    Returns:
        One row per raw row: user_id, played_at (UTC; null for a count table), raw_value (the
        unreadable value as written, else the timestamp), display-cleaned names, artist_mbid,
        track_mbid, track_uri, album_name, ms_played (Int64), skipped (filled from
        ms_played < min), weight (Int64: the count of a count-table row, else 1) and
        drop_reason (null = keep), the first of: invalid_line, non_music, show_listed,
        show_long_plays (`stages.preprocess.shows`), missing_user,
        missing_artist, missing_track, bad_play_count, no_plays, bad_timestamp,
        missing_timestamp, ts_out_of_range, bad_ms_played, bad_skipped, short_play.
    """
    ms, ts = pl.col(MS_PLAYED), pl.col(PLAYED_AT)
    typed = values.typed_columns(raw)
    columns = typed.collect_schema()

    def blank(name: str) -> pl.Expr:  # cheap per row: names are cleaned per distinct name
        return pl.col(name).is_null() | (pl.col(name).str.strip_chars() == "")

    # typed_columns has stripped user_id already: a second strip of every row cost ~0.2 CPU s
    # per 10M rows

    def written(column: str) -> pl.Expr:
        name = f"_raw_{column}"
        return pl.col(name) if name in columns else pl.lit(None, pl.String)

    counted = pl.col("_counted")  # a count table: no time needed, nothing to dedupe
    reason = (
        pl.when(pl.col(INVALID_LINE)).then(pl.lit("invalid_line"))
        .when(pl.col(NON_MUSIC)).then(pl.lit("non_music"))
        .when(pl.col(shows.SHOW) == shows.LISTED).then(pl.lit(shows.REASONS[shows.LISTED]))
        .when(pl.col(shows.SHOW) == shows.LONG_PLAYS).then(
            pl.lit(shows.REASONS[shows.LONG_PLAYS]))
        .when(pl.col(USER_ID).is_null() | (pl.col(USER_ID) == "")).then(pl.lit("missing_user"))
        .when(blank(ARTIST_NAME) | pl.col(ARTIST_NAME).is_in(_PLACEHOLDER_ARTISTS)).then(
            pl.lit("missing_artist"))
        .when(blank(TRACK_NAME)).then(pl.lit("missing_track"))
        .when(counted & pl.col(WEIGHT).is_null()).then(pl.lit("bad_play_count"))
        .when(counted & (pl.col(WEIGHT) < 1)).then(pl.lit("no_plays"))
        .when(ts.is_null() & pl.col("_has_ts")).then(pl.lit("bad_timestamp"))
        .when(ts.is_null() & ~counted).then(pl.lit("missing_timestamp"))
        .when(~ts.is_between(ts_min, ts_max)).then(pl.lit("ts_out_of_range"))
        .when(ms.is_null() & pl.col("_has_ms")).then(pl.lit("bad_ms_played"))
        .when(pl.col(SKIPPED).is_null() & pl.col("_has_skipped")).then(pl.lit("bad_skipped"))
        .when(ms < min_ms_played).then(pl.lit(SHORT_PLAY))
    )  # fmt: skip
    by_reason = {
        "bad_skipped": SKIPPED, "bad_ms_played": MS_PLAYED, "bad_play_count": RAW_PLAY_COUNT,
    }  # fmt: skip
    raw_value = pl.coalesce(
        *[pl.when(pl.col(DROP_REASON) == r).then(written(c)) for r, c in by_reason.items()],
        written(PLAYED_AT),
    )
    return (
        typed.with_columns(reason.alias(DROP_REASON))
        .with_columns(
            raw_value.alias(RAW_VALUE),
            pl.col(SKIPPED).fill_null(ms < min_ms_played).fill_null(value=False),
        )
        .drop(
            "_has_ms",
            "_has_ts",
            "_has_skipped",
            "_counted",
            shows.SHOW,
            *[c for c in columns if c.startswith("_raw_")],
        )
    )


def user_reason_counts(parsed: pl.LazyFrame) -> pl.LazyFrame:
    """Rows and plays per (user_id, drop_reason), first and last played_at: small, one pass.

    Plays differ from rows only in a count table, whose rows are pairs with a play count.

    Both the step counts and the per-user activity are derived from it, so that the raw log
    is scanned once for them.
    """
    return parsed.group_by(USER_ID, DROP_REASON).agg(
        pl.len().cast(pl.Int64).alias("n"),
        pl.col(WEIGHT).sum().alias("plays"),
        pl.col(PLAYED_AT).min().alias("first"),
        pl.col(PLAYED_AT).max().alias("last"),
    )


def file_reason_counts(parsed: pl.LazyFrame) -> pl.LazyFrame:
    """Rows per (source_file, drop_reason), with the smallest and largest user_id.

    What each input file gave, for the report; min and max are cheap where a set of the ids
    per file would not be.
    """
    return parsed.group_by(SOURCE_FILE, DROP_REASON).agg(
        pl.len().cast(pl.Int64).alias("n"),
        pl.col(USER_ID).min().alias("user_min"),
        pl.col(USER_ID).max().alias("user_max"),
    )


def merge_file_counts(parts: pl.LazyFrame) -> pl.LazyFrame:
    """`file_reason_counts` of several batches of rows -> the counts of all of them."""
    return parts.group_by(SOURCE_FILE, DROP_REASON).agg(
        pl.col("n").sum(), pl.col("user_min").min(), pl.col("user_max").max()
    )


def merge_user_counts(parts: pl.LazyFrame) -> pl.LazyFrame:
    """`user_reason_counts` of several batches of rows -> the counts of all of them."""
    return parts.group_by(USER_ID, DROP_REASON).agg(
        pl.col("n").sum(), pl.col("plays").sum(), pl.col("first").min(), pl.col("last").max()
    )


def count_reasons(user_counts: pl.LazyFrame) -> pl.LazyFrame:
    """Rows per drop_reason (null = kept), sorted by reason: columns drop_reason, n."""
    return user_counts.group_by(DROP_REASON).agg(pl.col("n").sum()).sort(DROP_REASON)


def kept_plays(parsed: pl.LazyFrame) -> pl.LazyFrame:
    """The rows of `parse_raw` with no drop reason."""
    return parsed.filter(pl.col(DROP_REASON).is_null())


def spellings(plays: pl.LazyFrame) -> pl.LazyFrame:
    """Distinct (artist_name, track_name, artist_mbid, track_uri, track_mbid) with n_plays."""
    return plays.group_by(SPELLING).agg(pl.col(WEIGHT).sum().alias(N_PLAYS))


def merge_spellings(parts: pl.LazyFrame) -> pl.LazyFrame:
    """`spellings` of several batches of rows -> the spellings of all of them."""
    return parts.group_by(SPELLING).agg(pl.col(N_PLAYS).sum())


def hash_partition(columns: list[str], n: int) -> pl.Expr:
    """Partition number in [0, n) from a hash of `columns` (the same values, the same part)."""
    return (pl.struct(columns).hash(seed=0) % n).cast(pl.UInt32).alias(PART)


def user_activity(user_counts: pl.LazyFrame, *, max_plays_per_day: float) -> pl.LazyFrame:
    """One row per user_id with kept plays: n_plays, plays_per_day over the span, is_bot.

    Args:
        user_counts: Output of `user_reason_counts`.
        max_plays_per_day: Users above this many plays per day are bots; 0 disables the check.
            The span is last - first kept play, at least one day. Without times (a count
            table) plays_per_day is null and nobody is a bot: the rate cannot be known.
    """
    days = (pl.col("last") - pl.col("first")).dt.total_seconds() / 86_400
    rate = pl.col(N_PLAYS) / pl.max_horizontal(days, pl.lit(1.0))
    rate = pl.when(pl.col("first").is_not_null()).then(rate)
    limit = max_plays_per_day if max_plays_per_day > 0 else float("inf")
    return (
        user_counts.filter(pl.col(DROP_REASON).is_null())
        .select(USER_ID, pl.col("plays").alias(N_PLAYS), "first", "last")
        .with_columns(rate.alias(PLAYS_PER_DAY))
        .with_columns((pl.col(PLAYS_PER_DAY) > limit).fill_null(value=False).alias(IS_BOT))
        .drop("first", "last")
    )


def bad_examples(parsed: pl.LazyFrame, *, n: int) -> pl.LazyFrame:
    """Up to `n` rows whose values could not be read: file, reason, user, raw timestamp, names."""
    return (
        parsed.filter(pl.col(DROP_REASON).is_in(UNPARSEABLE))
        .select(
            SOURCE_FILE,
            DROP_REASON,
            USER_ID,
            pl.col(RAW_VALUE).cast(pl.String),
            ARTIST_NAME,
            TRACK_NAME,
        )
        .head(n)
    )
