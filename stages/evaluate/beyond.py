"""Beyond-accuracy metrics, the per-model summary and the lift over a baseline model.

Ranking metrics (precision, recall, NDCG, MAP, MRR, hit rate) live in `ranking`. Here, L is
one user's top-K list (|L| < K when fewer were recommended); only evaluated users (those with
test tracks) count, so every metric of a model describes the same population:
    coverage@K         = |tracks in at least one top-K list| / |catalogue|            (per model)
    artist_diversity@K = |distinct artists in L| / |L|
    audio_distance@K   = sqrt(mean over ordered pairs i != j in L of ||z_i - z_j||^2), where z
                         holds the track's audio features as z-scores over the catalogue; tracks
                         without features are left out, null when fewer than two remain. It is
                         computed in one pass as sqrt(2 * sum over features of the sample
                         variance within L), which equals the pair mean exactly.
    novelty@K          = mean over L of -log2(popularity)  (self-information, in bits)
    popularity@K       = mean over L of popularity
popularity = share of train users who played the track (`stages.interactions.listener_share`),
z-scores those of `stages.audio.standardise`; a track nobody played in train counts
as played by one user for novelty (so its self-information is log2(n_train_users), not inf).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import polars as pl

from stages.audio import standardise
from stages.evaluate.ranking import group_reduce, metric_name
from stages.interactions import listener_share
from stages.schema import LISTENERS, MODEL, POPULARITY, RANK, TRACK_IDX, USER_IDX

ARTIST = "artist"
SELF_INFORMATION = "self_information"
N_RECOMMENDED = "n_recommended"
_LIST = "_list"  # (model, user_idx) packed into one UInt64: model code << 32 | user_idx
BEYOND_METRICS = ("artist_diversity", "audio_distance", "novelty", "popularity")
BEYOND_ROWS = 8_000_000  # list rows scored at a time with their track columns (~1 GB at 800M)


def track_table(
    items: pl.LazyFrame,
    train: pl.LazyFrame,
    *,
    artist: str | None,
    audio: tuple[str, ...],
    n_train_users: int,
    listeners: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """One row per catalogue track: artist code, popularity, self-information, audio z-scores.

    Args:
        items: The catalogue; column track_idx plus `artist` and `audio` when given.
        train: Columns user_idx, track_idx; one row per training (user, track) pair.
        artist: Artist column of `items`, or None if unknown.
        audio: Numeric audio-feature columns of `items` (may be empty; nulls allowed).
        n_train_users: Distinct users in `train` (> 0).
        listeners: Distinct users of each track in `train` (track_idx, listeners), counted
            already (`counts.count_sorted_pairs`); None = `listener_share` counts them.

    Returns:
        track_idx, artist (UInt32 code; only if `artist` is given), popularity,
        self_information and z_<feature> per `audio` column (Float32; 0 where the feature is
        constant over the catalogue). Sorted by track_idx.
    """
    codes = [pl.col(artist).rank("dense").cast(pl.UInt32).alias(ARTIST)] if artist else []
    table = items.select(TRACK_IDX, *codes)
    if audio:
        values = items.select(pl.col(a).cast(pl.Float64).fill_null(np.nan) for a in audio)
        z = standardise(values.collect().to_numpy())
        table = table.with_columns(
            pl.Series(f"z_{a}", z[:, j]).fill_nan(None).cast(pl.Float32)
            for j, a in enumerate(audio)
        )
    shares = (
        listener_share(train, n_users=n_train_users)
        if listeners is None
        else listeners.with_columns((pl.col(LISTENERS) / n_train_users).alias(POPULARITY))
    )
    listened = pl.col(LISTENERS).fill_null(0).cast(pl.Float64)
    return (
        table.join(shares, on=TRACK_IDX, how="left")
        .with_columns(
            pl.col(POPULARITY).fill_null(0.0),
            (-(pl.max_horizontal(listened, 1.0) / n_train_users).log(2)).alias(SELF_INFORMATION),
        )
        .drop(LISTENERS)
        .sort(TRACK_IDX)
    )


def _list_rows(recommendations: pl.LazyFrame, users: pl.LazyFrame, *, k_max: int) -> pl.LazyFrame:
    """Evaluated users' recommendations up to `k_max`, in list order, with the _LIST key."""
    return (
        recommendations.filter(pl.col(RANK) <= k_max)
        .select(MODEL, USER_IDX, RANK, TRACK_IDX)
        .join(users.select(USER_IDX).unique(), on=USER_IDX, how="semi")
        .with_columns(
            (
                pl.col(MODEL).rank("dense").cast(pl.UInt64) * (1 << 32)
                + pl.col(USER_IDX).cast(pl.UInt64)
            ).alias(_LIST)
        )
        # one packed UInt64 key sorts 2-3x faster than (model, user_idx, rank)
        .sort(pl.col(_LIST) * (1 << 16) + pl.col(RANK).cast(pl.UInt64))
    )


def _track_rows(tracks: pl.DataFrame, track_idx: npt.NDArray[np.uint32]) -> pl.Series:
    """Row number in `tracks` of each track_idx, null where the track is not in `tracks`.

    A gather through a lookup array: unlike a join that keeps the row order, one cheap pass.
    """
    ids = tracks[TRACK_IDX].to_numpy().astype(np.int64)
    size = int(max(ids.max(initial=-1), track_idx.max(initial=0))) + 1
    lookup = np.full(size, -1, dtype=np.int64)
    lookup[ids] = np.arange(len(ids))
    rows = lookup[track_idx]
    return pl.Series(rows).set(pl.Series(rows < 0), None)


def _segment_mean(
    values: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_], starts: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Mean of `values` over the `valid` rows of each segment; NaN where none is valid."""
    total = np.add.reduceat(np.where(valid, values, 0.0), starts)
    count = np.add.reduceat(valid.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def _first_artists(artist: pl.Series, starts: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """True where a known artist occurs for the first time in its list (rows in list order).

    Lists of up to 64 rows (top-K lists) compare each row with the 63 before it in its list:
    at 800M events (55M rows of top-20 lists) about 5x cheaper than hashing (list, artist).
    """
    lengths = np.diff(np.append(starts, len(artist)))
    known = artist.is_not_null().to_numpy()
    longest = int(lengths.max(initial=0))
    if longest > 64:
        lists = pl.Series(np.repeat(np.arange(len(starts), dtype=np.uint64), lengths))
        first = (lists * (1 << 32) + artist.cast(pl.UInt64)).is_first_distinct().to_numpy()
        return np.asarray(known & first, dtype=bool)
    codes = artist.fill_null(0).to_numpy()
    position = np.arange(len(artist)) - np.repeat(starts, lengths)
    repeated = np.zeros(len(artist), dtype=bool)
    for lag in range(1, longest):
        repeated[lag:] |= (codes[lag:] == codes[:-lag]) & known[:-lag] & (position[lag:] >= lag)
    return known & ~repeated


def _audio_distance(
    rows: pl.DataFrame,
    z_cols: list[str],
    valid: npt.NDArray[np.bool_],
    starts: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """sqrt(2 * sum of per-feature sample variances) per segment, over the `valid` rows.

    One feature column at a time, so memory stays at a few arrays of len(rows).
    """
    n = np.add.reduceat(valid.astype(np.int64), starts).astype(np.float64)
    sum_sq = np.zeros(len(starts))
    sq_sum = np.zeros(len(starts))
    for name in z_cols:
        z = np.where(valid, rows[name].to_numpy(), 0.0).astype(np.float64)
        sum_sq += np.add.reduceat(z * z, starts)
        sq_sum += np.add.reduceat(z, starts) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        total_var = (sum_sq - sq_sum / n) / (n - 1)
    return np.where(n >= 2, np.sqrt(2.0 * np.maximum(total_var, 0.0)), np.nan)


def per_user_beyond(
    recommendations: pl.LazyFrame, tracks: pl.DataFrame, users: pl.LazyFrame, *, ks: tuple[int, ...]
) -> pl.DataFrame:
    """Diversity, novelty and popularity of each evaluated user's top-K list, for every K.

    Materialises the lists (one row per recommendation up to max(ks)), gathers the track
    columns by index and sums each quantity over every list prefix with `np.add.reduceat`: one
    vectorised pass per quantity and K.

    Args:
        recommendations: Columns model, user_idx, rank, track_idx (see stages.evaluate.ranking).
        tracks: Output of `track_table`, collected (one row per track_idx).
        users: Column user_idx: the evaluated users.
        ks: Cut-offs.

    Returns:
        One row per (model, user_idx) with at least one recommendation: n_recommended (UInt32,
        within max(ks)) and "<metric>@<k>" Float64 columns for BEYOND_METRICS (artist_diversity
        only when `tracks` has an artist column, audio_distance only when it has z_ columns;
        null for a list with no known artist / fewer than two tracks with features). Sorted by
        model, user_idx.
    """
    z_cols = [c for c in tracks.columns if c.startswith("z_")]
    rows = _list_rows(recommendations, users, k_max=max(ks)).collect(engine="streaming")
    at = _track_rows(tracks, rows[TRACK_IDX].to_numpy())
    track_cols = [c for c in (ARTIST, SELF_INFORMATION, POPULARITY, *z_cols) if c in tracks.columns]

    def score(start: int, end: int) -> pl.DataFrame:
        part = rows.slice(start, end - start)
        gathered = tracks.select(track_cols)[at.slice(start, end - start)]  # null: unknown track
        return _list_metrics(part.with_columns(gathered), z_cols, ks=ks)

    # parts cut at list boundaries, two scored at a time (NumPy releases the GIL): every
    # quantity is a sum within one list, so the same values as in one pass, and only the parts
    # in hand carry their track columns (all of them at once were the stage's peak at 800M)
    cuts = _list_cuts(rows[_LIST].to_numpy(), parts=max(2, -(-rows.height // BEYOND_ROWS)))
    if len(cuts) <= 2:
        return score(0, rows.height)
    with ThreadPoolExecutor(2, thread_name_prefix="musicrec-beyond") as pool:
        return pl.concat(pool.map(score, cuts[:-1], cuts[1:]), rechunk=True)


def _list_cuts(list_key: npt.NDArray[np.uint64], *, parts: int) -> list[int]:
    """0, the first list start at or after each of `parts` - 1 even cuts, and len(list_key)."""
    starts = np.flatnonzero(list_key[1:] != list_key[:-1]) + 1
    even = np.arange(1, parts) * len(list_key) // parts
    found = np.searchsorted(starts, even)
    inner = np.unique(starts[found[found < len(starts)]])
    return [0, *(int(c) for c in inner), len(list_key)]


def _list_metrics(rows: pl.DataFrame, z_cols: list[str], *, ks: tuple[int, ...]) -> pl.DataFrame:
    """`per_user_beyond` of `rows`: the lists in list order with their track columns."""
    list_key = rows[_LIST].to_numpy()
    new_list = np.diff(list_key, prepend=list_key[:1] + 1) != 0
    starts = np.flatnonzero(new_list)
    rank = rows[RANK].to_numpy()
    has_audio = (
        rows.select(pl.all_horizontal(pl.col(z_cols).is_not_null())).to_series().to_numpy()
        if z_cols
        else None
    )
    if ARTIST in rows.columns:
        # distinct artists in a prefix of a list = first occurrences of an artist in that prefix
        first_artist = _first_artists(rows[ARTIST], starts)
    out = rows.select(MODEL, USER_IDX)[starts].with_columns(
        pl.Series(N_RECOMMENDED, np.diff(np.append(starts, rows.height)), dtype=pl.UInt32)
    )
    if rows.height == 0:  # np.add.reduceat needs at least one segment
        return out.with_columns(
            pl.lit(None, pl.Float64).alias(metric_name(m, k)) for k in ks for m in BEYOND_METRICS
        )
    means = {c: rows[c].to_numpy() for c in (SELF_INFORMATION, POPULARITY)}
    columns = {}
    for k in ks:
        top = rank <= k
        for name, column in (("novelty", SELF_INFORMATION), ("popularity", POPULARITY)):
            values = means[column]
            columns[metric_name(name, k)] = _segment_mean(values, top & ~np.isnan(values), starts)
        if ARTIST in rows.columns:
            first = first_artist.astype(np.float64)
            known = top & rows[ARTIST].is_not_null().to_numpy()
            columns[metric_name("artist_diversity", k)] = _segment_mean(first, known, starts)
        if has_audio is not None:
            columns[metric_name("audio_distance", k)] = _audio_distance(
                rows, z_cols, top & has_audio, starts
            )
    return out.with_columns(
        pl.Series(name, values, dtype=pl.Float64, nan_to_null=True)
        for name, values in columns.items()
    )


def coverage(
    recommendations: pl.LazyFrame, users: pl.LazyFrame, *, ks: tuple[int, ...], n_items: int
) -> pl.LazyFrame:
    """Catalogue coverage@K per model: share of all `n_items` tracks in some user's top K.

    Only the lists of `users` (column user_idx, the evaluated users) count. One row per model.
    """
    # ranks past max(ks) never count: dropped before the join (a fifth of the rows at top-100)
    return (
        recommendations.filter(pl.col(RANK) <= max(ks))
        .join(users.select(USER_IDX).unique(), on=USER_IDX, how="semi")
        .group_by(MODEL)
        .agg(
            (pl.col(TRACK_IDX).filter(pl.col(RANK) <= k).n_unique() / n_items).alias(
                metric_name("coverage", k)
            )
            for k in ks
        )
        .sort(MODEL)
    )


def summarise(per_user: pl.LazyFrame, coverage_by_model: pl.LazyFrame) -> pl.LazyFrame:
    """One row per model: users evaluated, users left without recommendations, metric means.

    Args:
        per_user: One row per (model, user_idx) with n_recommended and "<metric>@<k>" columns
            (the ranking frame left-joined with `per_user_beyond`).
        coverage_by_model: Output of `coverage`.

    Returns:
        model, n_users, n_users_without_recommendations and the mean of every "@" column over
        the model's users (nulls, e.g. no audio features, left out), then coverage@K. Sorted
        by model.
    """
    means = group_reduce(
        per_user,
        (MODEL,),
        means={c: pl.col(c) for c in per_user.collect_schema() if "@" in c},
        extra=(
            pl.len().alias("n_users"),
            (pl.col(N_RECOMMENDED).fill_null(0) == 0)
            .sum()
            .alias("n_users_without_recommendations"),
        ),
    )
    return means.join(coverage_by_model, on=MODEL, how="left").sort(MODEL)


def lift_over(summary: pl.DataFrame, *, baseline: str) -> pl.DataFrame | None:
    """Relative lift of every model over `baseline`: value / baseline value - 1, per metric.

    Args:
        summary: Output of `summarise`, collected.
        baseline: Model name, e.g. "popularity".

    Returns:
        model and one Float64 column per "@" column of `summary` (null where the baseline's
        value is 0 or null), in `summary`'s row order; None if `baseline` is not a model.
    """
    base = summary.filter(pl.col(MODEL) == baseline)
    if base.height == 0:
        return None
    columns = [c for c in summary.columns if "@" in c]
    lifts = [
        (pl.col(c) / base[c][0] - 1.0 if base[c][0] else pl.lit(None, pl.Float64)).alias(c)
        for c in columns
    ]
    return summary.select(MODEL, *lifts)
