"""Run the preprocess stage: raw log -> 01_preprocess, in bounded memory.

The raw events are scanned twice and never held in memory: once for the step counts, the
distinct spellings and the per-user activity (all small), once to write the encoded plays into
user buckets. Each bucket is de-duplicated and aggregated on its own; the k-core runs on the
aggregated pairs with streaming group-bys whose outputs are one row per user or track.
"""

from __future__ import annotations

import logging
import math
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from musicrec_cli import artifacts as art
from musicrec_cli.config import Config, PreprocessConfig, table_dict
from musicrec_cli.console import progress
from musicrec_cli.runner import Measure
from musicrec_cli.sources import InputError, find_damaged, find_files, scan_groups, scan_table
from stages import formats, names
from stages import preprocess as pp
from stages.interactions import build_matrix
from stages.schema import (
    INTERACTIONS,
    PLAY_COUNT,
    PLAYS,
    TRACK_IDX,
    TRACK_NAME,
    TRACK_URI,
    USER_ID,
    USER_IDX,
    SchemaError,
)

STREAM = "streaming"
IN_MEMORY = "in-memory"  # in Polars 2.1 a plain collect() picks the streaming engine
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Survey:
    """What the first pass over the raw log found (all small frames)."""

    reasons: dict[str, int]
    id_map: pl.DataFrame
    tracks: pl.DataFrame
    activity: pl.DataFrame
    examples: list[dict[str, Any]]

    @property
    def rows_in(self) -> int:
        return sum(self.reasons.values())

    @property
    def kept(self) -> int:
        return self.reasons.get("kept", 0)


def _scan_raw(files: list[Path], p: PreprocessConfig, spec: str) -> pl.LazyFrame:
    preset = formats.PRESETS[p.format]
    mapping = formats.parse_mapping(p.columns)
    frames = []
    for label, native in scan_groups(files, preset=preset):
        try:
            frames.append(formats.to_raw(native, fmt=p.format, mapping=mapping, source=label))
        except pl.exceptions.PolarsError as exc:
            msg = f"{label}: cannot read as format {p.format!r}: {str(exc).splitlines()[0]}"
            raise InputError(msg) from exc
    raw = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    if formats.PLAYED_AT not in raw.collect_schema():
        msg = f"{spec}: no {formats.PLAYED_AT!r} column after mapping format {p.format!r}."
        raise SchemaError(msg)
    return raw


def _parse(files: list[Path], p: PreprocessConfig, spec: str) -> pl.LazyFrame:
    raw = _scan_raw(files, p, spec)
    return pp.parse_raw(raw, ts_min=p.ts_min, ts_max=p.ts_max, min_ms_played=p.min_ms_played)


def file_batches(files: list[Path], batch_bytes: int) -> list[list[Path]]:
    """`files` in order, cut into runs of at most `batch_bytes` (a larger file alone)."""
    batches: list[list[Path]] = [[]]
    size = 0
    for path in files:
        if batches[-1] and size + path.stat().st_size > batch_bytes:
            batches.append([])
            size = 0
        batches[-1].append(path)
        size += path.stat().st_size
    return batches


def _counts(
    files: list[Path], p: PreprocessConfig, spec: str, scratch: Path
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(user_reason_counts, spellings) of the whole log, one batch of files at a time.

    Each batch's partial counts are written in hash partitions of its keys; partition k of
    every batch is then merged on its own, so no group-by sees more than about one batch.
    """
    batches = file_batches(files, p.batch_bytes)
    if len(batches) == 1:  # two scans on purpose: collect_all would hold every parsed row
        parsed = _parse(files, p, spec)
        return (
            pp.user_reason_counts(parsed).collect(engine=STREAM),
            pp.spellings(pp.kept_plays(parsed)).collect(engine=STREAM),
        )
    parts = len(batches)
    queries = {
        "users": (pp.user_reason_counts, [USER_ID], pp.merge_user_counts),
        "spellings": (lambda f: pp.spellings(pp.kept_plays(f)), list(pp.SPELLING),
                      pp.merge_spellings),
    }  # fmt: skip
    with progress("preprocess: survey", len(batches)) as bar:
        for i, batch in enumerate(batches):
            parsed = _parse(batch, p, spec)
            for name, (count, keys, _) in queries.items():
                count(parsed).with_columns(pp.hash_partition(keys, parts)).sink_parquet(
                    pl.PartitionBy(scratch / name / f"{i:05d}", key=pp.PART, include_key=False),
                    mkdir=True,
                    engine=STREAM,
                )
            bar.advance(0)
    merged = []
    for name, (count, _, merge) in queries.items():
        found = [sorted(scratch.glob(f"{name}/*/{pp.PART}={k}/*.parquet")) for k in range(parts)]
        frames = [merge(pl.scan_parquet(f)).collect(engine=STREAM) for f in found if f]
        empty = count(_parse(files[:1], p, spec).head(0)).collect()
        merged.append(pl.concat([empty, *frames], how="vertical_relaxed"))
        shutil.rmtree(scratch / name)
    return merged[0], merged[1]


def _survey(files: list[Path], p: PreprocessConfig, spec: str, scratch: Path) -> _Survey:
    user_counts, spell = _counts(files, p, spec, scratch)
    reasons = pp.count_reasons(user_counts.lazy()).collect()
    activity = pp.user_activity(user_counts.lazy(), max_plays_per_day=p.max_plays_per_day)
    bad = reasons.filter(pl.col(pp.DROP_REASON).is_in(pp.UNPARSEABLE))["n"].sum()
    examples = (
        pp.bad_examples(_parse(files, p, spec), n=5).collect(engine=STREAM)
        if bad
        else pl.DataFrame()
    )
    # small frames already in memory: the in-memory engine took 60% of streaming's time here
    id_map = names.canonicalise(spell.lazy()).collect(engine=IN_MEMORY)
    tracks = names.canonical_tracks(id_map.lazy()).collect(engine=IN_MEMORY)
    tracks = tracks.with_row_index(TRACK_IDX).with_columns(pl.col(TRACK_IDX).cast(pl.UInt32))
    id_map = id_map.drop(names.TRACK_GROUP_ID).join(
        tracks.select(names.TRACK_ID, names.TRACK_GROUP_ID, TRACK_IDX), on=names.TRACK_ID
    )
    id_map = id_map.with_columns(pp.spelling_hash())
    counts = {(r or "kept"): n for r, n in reasons.iter_rows()}
    return _Survey(
        reasons=counts,
        id_map=id_map.sort(TRACK_IDX, pp.SPELLING_HASH),  # sorting by the 4 strings took 6 s
        tracks=tracks,
        activity=activity.sort(USER_ID).collect(engine=IN_MEMORY),
        examples=examples.to_dicts(),
    )


def _check_survey(s: _Survey, p: PreprocessConfig, spec: str) -> None:
    if s.rows_in == 0:
        msg = f"{spec}: the raw listening log has no rows; expected plays in format {p.format!r}."
        raise InputError(msg)
    bad = sum(s.reasons.get(r, 0) for r in pp.UNPARSEABLE)
    if bad > p.max_bad_share * s.rows_in:
        first = s.examples[0] if s.examples else {}
        where = ", ".join(
            f"{pp.UNPARSEABLE_WHAT[r]}: {s.reasons[r]:,}"
            for r in pp.UNPARSEABLE
            if s.reasons.get(r)
        )
        msg = (
            f"{spec}: {bad:,} of {s.rows_in:,} rows ({bad / s.rows_in:.1%}) have unreadable "
            f"values ({where}), more than [preprocess].max_bad_share = {p.max_bad_share}; "
            f"first: {first}. "
            f"Check [preprocess].format ({p.format!r}) or raise max_bad_share."
        )
        raise InputError(msg)
    if s.kept == 0:
        reasons = ", ".join(f"{r} {n:,}" for r, n in s.reasons.items())
        msg = f"{spec}: no valid plays among {s.rows_in:,} rows ({reasons}); check the format."
        raise InputError(msg)


class _Laps:
    """Wall seconds of each phase and the peak RSS so far at its end, for the quality report.

    The peak only grows: the phase where it jumps is the one that set it.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_rss_mib: dict[str, int] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._last, 2)
        self.peak_rss_mib[phase] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        self._last = now
        log.info(
            "preprocess: %s took %.1f s, peak RSS so far %d MiB",
            phase,
            self.seconds[phase],
            self.peak_rss_mib[phase],
        )


def _n_buckets(p: PreprocessConfig, rows: int) -> int:
    return p.buckets or max(1, math.ceil(rows / p.bucket_rows))


def _write_buckets(
    encoded: pl.LazyFrame, scratch: Path, n_buckets: int
) -> tuple[list[Path], list[Path]]:
    """De-duplicated plays and aggregated pairs of each bucket, written under `scratch`.

    A bucket (about bucket_rows plays) is sorted in memory: the in-memory engine's sort took a
    quarter of the streaming engine's time for the same 15M plays.
    """
    if n_buckets == 1:
        inputs = [encoded.drop(pp.BUCKET)]
    else:
        encoded.sink_parquet(
            pl.PartitionBy(scratch / "buckets", key=pp.BUCKET, include_key=False),
            compression="lz4",
            mkdir=True,
            engine=STREAM,
        )
        folders = [scratch / "buckets" / f"{pp.BUCKET}={b}" for b in range(n_buckets)]
        inputs = [pl.scan_parquet(f / "*.parquet") for f in folders if f.is_dir()]
    (scratch / "plays").mkdir(parents=True, exist_ok=True)
    (scratch / "pairs").mkdir(parents=True, exist_ok=True)
    plays, pairs = [], []
    with progress("preprocess: buckets", len(inputs)) as bar:
        for b, bucket in enumerate(inputs):
            plays.append(scratch / "plays" / f"{b:05d}.parquet")
            pairs.append(scratch / "pairs" / f"{b:05d}.parquet")
            deduped = pp.dedupe_plays(bucket.collect(engine=STREAM).lazy()).collect(
                engine=IN_MEMORY
            )
            deduped.write_parquet(plays[-1], compression="lz4")
            pp.aggregate_sorted_plays(deduped.lazy()).collect(engine=IN_MEMORY).write_parquet(
                pairs[-1], compression="lz4"
            )
            del deduped
            bar.advance(0)
    shutil.rmtree(scratch / "buckets", ignore_errors=True)  # 8 GB at 800M events
    return plays, pairs


def _kcore(pairs: pl.LazyFrame, p: PreprocessConfig) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Users and tracks left after up to kcore_rounds rounds of the min-count filters."""
    users, tracks = pl.collect_all(
        [pairs.select(USER_IDX).unique(), pairs.select(TRACK_IDX).unique()], engine=STREAM
    )
    rounds = 0
    for rounds in range(1, p.kcore_rounds + 1):  # noqa: B007
        current = pairs.join(users.lazy(), on=USER_IDX, how="semi").join(
            tracks.lazy(), on=TRACK_IDX, how="semi"
        )
        u, t = pp.kcore_round(
            current, min_user_tracks=p.min_user_tracks, min_track_users=p.min_track_users
        )
        new_users, new_tracks = pl.collect_all([u, t], engine=STREAM)
        stable = new_users.height == users.height and new_tracks.height == tracks.height
        users, tracks = new_users, new_tracks
        if stable:
            break
    return users, tracks, rounds


def _scan_catalog(spec: str) -> pl.LazyFrame | None:
    if not spec:
        return None
    files, _ = find_files(spec, what="track catalog")
    catalog = scan_table(files)
    schema = catalog.collect_schema()
    if not ({formats.ARTIST_NAME, TRACK_NAME} <= set(schema) or {TRACK_URI, "id"} & set(schema)):
        msg = (
            f"{spec}: the track catalog needs artist_name and track_name, or track_uri or id; "
            f"found {', '.join(map(repr, schema))}."
        )
        raise SchemaError(msg)
    return catalog


def run_preprocess(cfg: Config) -> str:
    """Clean the raw log, build canonical tracks, aggregate, encode, write 01_preprocess."""
    measure, p, root = Measure(), cfg.preprocess, Path(cfg.paths.artifacts)
    spec = cfg.paths.raw
    files, ignored = find_files(spec, what="raw listening log", preset=formats.PRESETS[p.format])
    catalog = _scan_catalog(cfg.paths.catalog)
    try:
        with art.open_stage(root, "preprocess") as out:
            report, summary = _build(cfg, files, out, catalog)
            report |= {"files": [str(f) for f in files], "ignored_files": [str(f) for f in ignored]}
            out.write_json(report, art.QUALITY_REPORT)
            inputs = files + [Path(f) for f in [cfg.paths.catalog] if f and Path(f).is_file()]
            folder = art.commit_stage(
                out,
                {
                    "config": table_dict(p),
                    "paths": table_dict(cfg.paths),
                    "inputs": art.fingerprint_inputs(inputs),
                    "summary": summary,
                    **measure.record(),
                },
            )
    except (OSError, pl.exceptions.ComputeError) as exc:
        damaged = find_damaged(files)
        where = f"{damaged}: truncated or corrupt gzip file" if damaged else spec
        msg = f"{where}: cannot read the raw listening log: {str(exc).splitlines()[0]}"
        raise InputError(msg) from exc
    return (
        f"{report['rows_in']:,} rows -> {summary['n_plays']:,} plays, {summary['n_pairs']:,} "
        f"pairs, {summary['n_users']:,} users x {summary['n_tracks']:,} tracks "
        f"({summary['n_buckets']} bucket(s)) -> {folder}"
    )


def _build(
    cfg: Config, files: list[Path], out: art.StageWriter, catalog: pl.LazyFrame | None
) -> tuple[dict[str, Any], dict[str, int]]:
    """Both passes and every output but the report; returns (report, manifest summary)."""
    p, spec = cfg.preprocess, cfg.paths.raw
    scratch, laps = out.path("_scratch"), _Laps()
    survey = _survey(files, p, spec, scratch)
    laps.lap("survey")
    _check_survey(survey, p, spec)
    humans = survey.activity.filter(~pl.col(pp.IS_BOT))
    n_buckets = _n_buckets(p, survey.kept)
    users0 = pp.assign_buckets(humans.lazy(), n_buckets=n_buckets).collect(engine=IN_MEMORY)
    by_hash = survey.id_map[pp.SPELLING_HASH].n_unique() == survey.id_map.height
    encoded = pp.encode_plays(
        pp.kept_plays(_parse(files, p, spec)),
        id_map=survey.id_map.lazy(),
        users=users0.lazy(),
        by_hash=by_hash,
    )
    play_parts, pair_parts = _write_buckets(encoded, scratch, n_buckets)
    laps.lap("buckets")
    pairs0 = pl.scan_parquet(pair_parts)
    users_k, tracks_k, rounds = _kcore(pairs0, p)
    laps.lap("kcore")
    if users_k.height == 0 or tracks_k.height == 0:
        msg = (
            f"{spec}: no user-track pairs left after the min-count filters; lower "
            f"[preprocess].min_user_tracks ({p.min_user_tracks}) or min_track_users "
            f"({p.min_track_users})."
        )
        raise SchemaError(msg)
    umap = pp.new_index(users_k.lazy(), column=USER_IDX).collect(engine=IN_MEMORY)
    tmap = pp.new_index(tracks_k.lazy(), column=TRACK_IDX).collect(engine=IN_MEMORY)
    n_pairs0 = pairs0.select(pl.len()).collect().item()
    n_deduped = pl.scan_parquet(play_parts).select(pl.len()).collect().item()
    lookups = {
        "users": pp.index_lookup(umap, size=users0.height),
        "tracks": pp.index_lookup(tmap, size=survey.tracks.height),
    }
    n_events = out.sink_parquet(
        pp.reindex(pairs0, **lookups).select(list(INTERACTIONS)), art.EVENTS
    )
    n_plays = out.sink_parquet(
        pp.reindex(pl.scan_parquet(play_parts), **lookups).select(list(PLAYS)), art.PLAYS
    )
    shutil.rmtree(scratch)
    laps.lap("events_and_plays")
    events = pl.scan_parquet(out.path(art.EVENTS))
    matrix = build_matrix(events, value=PLAY_COUNT, n_users=umap.height, n_tracks=tmap.height)
    out.write_matrix(matrix, art.INTERACTION_MATRIX)
    items = _write_tables(out, survey, users0, umap, tmap, _track_stats(matrix), catalog)
    laps.lap("matrix_and_tables")
    counts = {
        "bot_plays": int(survey.activity.filter(pl.col(pp.IS_BOT))[pp.N_PLAYS].sum()),
        "deduped": n_deduped,
        "pairs0": n_pairs0,
        "events": n_events,
        "plays": n_plays,
        "rounds": rounds,
    }
    report = _report(cfg, survey, n_buckets, counts, umap, items) | {
        "seconds": laps.seconds,
        "peak_rss_mib": laps.peak_rss_mib,
    }
    summary = {
        "n_users": umap.height,
        "n_tracks": tmap.height,
        "n_pairs": n_events,
        "n_plays": n_plays,
        "n_buckets": n_buckets,
    }
    return report, summary


def _track_stats(matrix: sp.csr_matrix) -> pl.DataFrame:
    """track_idx, play_count (Int64) and n_listeners (UInt32) of every track with a listener."""
    n_tracks = matrix.shape[1]
    plays = np.bincount(matrix.indices, weights=matrix.data, minlength=n_tracks)
    listeners = np.bincount(matrix.indices, minlength=n_tracks)
    stats = pl.DataFrame(
        {
            TRACK_IDX: np.arange(n_tracks, dtype=np.uint32),
            PLAY_COUNT: np.rint(plays).astype(np.int64),
            "n_listeners": listeners.astype(np.uint32),
        }
    )
    return stats.filter(pl.col("n_listeners") > 0)


def _write_tables(
    out: art.StageWriter,
    survey: _Survey,
    users0: pl.DataFrame,
    umap: pl.DataFrame,
    tmap: pl.DataFrame,
    stats: pl.DataFrame,
    catalog: pl.LazyFrame | None,
) -> pl.DataFrame:
    """items, users and the id maps; returns items."""
    items = (
        survey.tracks.lazy()
        .join(tmap.lazy(), left_on=TRACK_IDX, right_on="old")
        .drop(TRACK_IDX)
        .rename({"new": TRACK_IDX})
        .join(stats.lazy(), on=TRACK_IDX)
    )
    if catalog is not None:
        items = names.attach_catalog(items, catalog, id_map=survey.id_map.lazy())
    items_df = items.sort(TRACK_IDX).collect(engine=IN_MEMORY)
    items_df = items_df.select(TRACK_IDX, *[c for c in items_df.columns if c != TRACK_IDX])
    users = (
        users0.join(umap, left_on=USER_IDX, right_on="old")
        .drop(USER_IDX, pp.BUCKET)
        .rename({"new": USER_IDX})
        .join(survey.activity, on=USER_ID)
        .select(USER_IDX, USER_ID, pp.N_PLAYS, pp.PLAYS_PER_DAY)
        .sort(USER_IDX)
    )
    final_idx = tmap.rename({"old": TRACK_IDX, "new": "final_idx"})
    id_map = (
        survey.id_map.join(final_idx, on=TRACK_IDX, how="left")
        .drop(TRACK_IDX, pp.SPELLING_HASH)
        .rename({"final_idx": TRACK_IDX})
    )
    out.write_parquet(items_df, art.ITEMS)
    out.write_parquet(users, art.USERS)
    out.write_parquet(id_map, art.ID_MAP_TRACKS)
    artists = names.canonical_artists(id_map.lazy()).collect(engine=IN_MEMORY)
    out.write_parquet(artists, art.ID_MAP_ARTISTS)
    return items_df


def _report(
    cfg: Config,
    s: _Survey,
    n_buckets: int,
    c: dict[str, int],
    umap: pl.DataFrame,
    items: pl.DataFrame,
) -> dict[str, Any]:
    """quality_report.json: each step's rows in/out and why, and the name collapse counts."""
    p = cfg.preprocess
    parse_dropped = {r: n for r, n in s.reasons.items() if r not in ("kept", pp.SHORT_PLAY)}
    after_parse = s.rows_in - sum(parse_dropped.values())
    bots = s.activity.filter(pl.col(pp.IS_BOT)).height
    human_plays = s.kept - c["bot_plays"]
    n_artists_raw = s.id_map["artist_name"].n_unique()
    raw_tracks = s.id_map.select("artist_name", "track_name").n_unique()
    return {
        "format": p.format,
        "rows_in": s.rows_in,
        "steps": [
            _step("parse", s.rows_in, after_parse, parse_dropped),
            _step(
                "min_ms_played",
                after_parse,
                s.kept,
                {pp.SHORT_PLAY: s.reasons.get(pp.SHORT_PLAY, 0)},
            ),
            _step("bots", s.kept, human_plays, {"users": bots, "plays": c["bot_plays"]}),
            _step(
                "dedupe", human_plays, c["deduped"], {"duplicate_plays": human_plays - c["deduped"]}
            ),
            _step(
                "min_counts",
                c["pairs0"],
                c["events"],
                {"pairs": c["pairs0"] - c["events"]},
                unit="pairs",
                rounds=c["rounds"],
            ),
        ],
        "unparseable": {
            "rows": sum(s.reasons.get(r, 0) for r in pp.UNPARSEABLE),
            "max_share": p.max_bad_share,
            "examples": s.examples,
        },
        "canonical": {
            "raw_artist_names": n_artists_raw,
            "canonical_artists": s.id_map[names.ARTIST_ID].n_unique(),
            "raw_tracks": raw_tracks,
            "canonical_tracks": s.tracks.height,
            "track_groups": s.tracks[names.TRACK_GROUP_ID].n_unique(),
            "artist_reduction": round(1 - s.id_map[names.ARTIST_ID].n_unique() / n_artists_raw, 4),
            "track_reduction": round(1 - s.tracks.height / raw_tracks, 4),
        },
        "n_buckets": n_buckets,
        "output": {
            "plays": c["plays"],
            "pairs": c["events"],
            "users": umap.height,
            "tracks": items.height,
            "tracks_with_audio_features": _with_features(items),
        },
    }


def _with_features(items: pl.DataFrame) -> int:
    col = "danceability"
    return int(items[col].is_not_null().sum()) if col in items.columns else 0


def _step(
    name: str, rows_in: int, rows_out: int, dropped: dict[str, int], **extra: Any
) -> dict[str, Any]:
    return {"step": name, "rows_in": rows_in, "rows_out": rows_out, "dropped": dropped, **extra}
