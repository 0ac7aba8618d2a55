"""Run the preprocess stage: raw log -> 01_preprocess, in bounded memory.

The raw events are scanned twice and never held in memory: once for the step counts, the
distinct spellings and the per-user activity (all small), once to write the encoded plays into
user buckets. Each bucket is de-duplicated and aggregated on its own; the k-core runs on the
aggregated pairs with streaming group-bys whose outputs are one row per user or track.

The recipe is in `stages.preprocess`; this module loads, calls and saves. It is over 300 lines
because bounded memory is file work: input batches, hash partitions of the survey counts and
user buckets go through scratch files here, and each piece needs the file system.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import resource
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.config import Config, PreprocessConfig, engine_of, table_dict
from musicrec_cli.console import progress
from musicrec_cli.inputs import (
    local_spec,
    materialise,
    select,
    uri_scheme,
)
from musicrec_cli.runner import Measure, spark_groups
from musicrec_cli.runner import preprocess_side as side
from musicrec_cli.sources import (
    InputError,
    find_damaged,
    resolve_raw,
    scan_groups,
)
from stages.interactions import build_matrix
from stages.preprocess import encode, formats, layout, mapped, names, parse, shows, tables
from stages.preprocess.catalog import CATALOG_KEY
from stages.preprocess.columns import RAW_PLAY_COUNT, SOURCE_FILE
from stages.preprocess.quality import (
    KEPT,
    Counts,
    Survey,
    input_files,
    quality_report,
    survey_problem,
    user_files,
)
from stages.schema import (
    ARTIST_NAME,
    INTERACTIONS,
    PLAY_COUNT,
    PLAYED_AT,
    PLAYS,
    TRACK_IDX,
    USER_ID,
    USER_IDX,
    SchemaError,
)

if TYPE_CHECKING:
    from musicrec_cli.runner.preprocess_spark import SparkPasses

STREAM: Final = "streaming"
IN_MEMORY: Final = "in-memory"  # in Polars 2.1 a plain collect() picks the streaming engine
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Input:
    """The raw input resolved: its format, the files to read and each file's user."""

    fmt: str
    why: str
    files: list[Path]  # to read: on disk, archive members extracted (none for a URI input)
    read: list[str]  # each file as its reader names it in source_file
    shown: list[str]  # the same files as the user knows them
    ignored: list[tuple[str, str]]  # (file, reason)
    users: pl.DataFrame  # source_file, file_user
    names: pl.LazyFrame | None = None  # track_uri, artist_name, track_name of a count table's ids
    shows: tuple[str, ...] = ()  # artists found to be podcast shows (shows.long_play_shows)


def _raw(
    natives: list[tuple[str, pl.LazyFrame]], p: PreprocessConfig, inp: _Input, *, where: str
) -> pl.LazyFrame:
    """Native scans (label, rows) mapped to the raw columns of the format, with each row's user.

    `where` names the input in the message when no play time or count column is found.
    """
    mapping = formats.parse_mapping(p.columns)
    frames = []
    for label, native in natives:
        try:
            frames.append(formats.to_raw(native, fmt=inp.fmt, mapping=mapping, source=label))
        except pl.exceptions.PolarsError as exc:
            msg = f"{label}: cannot read as format {inp.fmt!r}: {str(exc).splitlines()[0]}"
            raise InputError(msg) from exc
    raw = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    schema = raw.collect_schema()
    if PLAYED_AT not in schema and RAW_PLAY_COUNT not in schema:
        msg = f"{where}: no {PLAYED_AT!r} column after mapping format {inp.fmt!r}."
        raise SchemaError(msg)
    raw = layout.assign_users(raw, inp.users, rule=p.user_id)
    if inp.names is not None:
        raw = mapped.attach_names(raw, inp.names)
    if p.drop_shows or inp.shows:
        raw = shows.mark_shows(raw, listed=p.drop_shows, found=inp.shows)
    return raw


def _scan_raw(files: list[Path], p: PreprocessConfig, inp: _Input) -> pl.LazyFrame:
    return _raw(scan_groups(files, preset=formats.PRESETS[inp.fmt]), p, inp, where=str(files[0]))


def parse_native(
    native: pl.LazyFrame, *, label: str, p: PreprocessConfig, inp: _Input
) -> pl.LazyFrame:
    """`_parse` of rows a Spark reader read from a URI input (`label` names them in errors)."""
    raw = _raw([(label, native)], p, inp, where=label)
    return parse.parse_raw(raw, ts_min=p.ts_min, ts_max=p.ts_max, min_ms_played=p.min_ms_played)


def _parse(files: list[Path], p: PreprocessConfig, inp: _Input) -> pl.LazyFrame:
    raw = _scan_raw(files, p, inp)
    return parse.parse_raw(raw, ts_min=p.ts_min, ts_max=p.ts_max, min_ms_played=p.min_ms_played)


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


def _hashed_file(scratch: Path, batch: int) -> Path:
    """Where the survey writes batch `batch`'s `encode.hashed_plays` (several batches)."""
    return scratch / "hashed" / f"{batch:05d}.ipc"


def _counts(
    p: PreprocessConfig, inp: _Input, scratch: Path, *, counted: bool
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, list[pl.LazyFrame]]:
    """(user_reason_counts, spellings, file_reason_counts, hashed plays of each batch) of the log.

    Read a batch of files at a time: each batch's partial counts are written in hash
    partitions of its keys; partition k of every batch is then merged on its own, so no
    group-by sees more than about one batch. The counts of a batch are one `collect_all` on
    the streaming engine, which reads and parses the rows once for all of them (half the CPU
    of three scans at 10M events, same peak).

    The same query gives each batch's kept plays as `encode.hashed_plays` (33 bytes a play):
    encoding them then needs no second parse of the raw files. A log of one batch keeps them
    in memory (10M events: 0.25 s more here, 1.1 s less there); several batches write them
    to scratch files (`_hashed_file`), read back by `_write_buckets`.
    """
    files = inp.files
    batches = file_batches(files, p.batch_bytes)
    if len(batches) == 1:
        parsed = _parse(files, p, inp).cache()  # one parse for the four queries
        kept = parse.kept_plays(parsed)
        # in this order: with the user counts before the spellings the peak was 2.2 GiB, not
        # 1.6 (10M events; the engine buffers the shared parse for the slower queries)
        spelled, users, by_file, hashed = pl.collect_all(
            [
                parse.spellings(kept),
                parse.user_reason_counts(parsed),
                parse.file_reason_counts(parsed),
                encode.hashed_plays(kept, counted=counted),
            ],
            engine=STREAM,
        )
        return users, spelled, by_file, [hashed.lazy()]
    parts = len(batches)
    queries = {
        "users": (parse.user_reason_counts, [USER_ID], parse.merge_user_counts),
        "spellings": (lambda f: parse.spellings(parse.kept_plays(f)), list(parse.SPELLING),
                      parse.merge_spellings),
        "files": (parse.file_reason_counts, [SOURCE_FILE], parse.merge_file_counts),
    }  # fmt: skip
    with progress("preprocess: survey", len(batches)) as step:
        for i, batch in enumerate(batches):
            parsed = _parse(batch, p, inp).cache()
            sinks = [
                count(parsed)
                .with_columns(parse.hash_partition(keys, parts))
                .sink_ipc(  # scratch: Arrow IPC, cheaper to write than Parquet (_write_buckets)
                    pl.PartitionBy(scratch / name / f"{i:05d}", key=parse.PART, include_key=False),
                    compression="lz4",
                    mkdir=True,
                    lazy=True,
                )
                for name, (count, keys, _) in queries.items()
            ]
            kept_hashed = encode.hashed_plays(parse.kept_plays(parsed), counted=counted)
            sinks.append(  # uncompressed: see _write_buckets
                kept_hashed.sink_ipc(
                    _hashed_file(scratch, i), compression="uncompressed", mkdir=True, lazy=True
                )
            )
            pl.collect_all(sinks, engine=STREAM)
            step()
    merged = []
    for name, (count, _, merge) in queries.items():
        found = [sorted(scratch.glob(f"{name}/*/{parse.PART}={k}/*.ipc")) for k in range(parts)]
        frames = [merge(pl.scan_ipc(f)).collect(engine=STREAM) for f in found if f]
        empty = count(_parse(files[:1], p, inp).head(0)).collect()
        merged.append(pl.concat([empty, *frames], how="vertical_relaxed"))
        shutil.rmtree(scratch / name)
    hashed_files = [pl.scan_ipc(_hashed_file(scratch, i)) for i in range(len(batches))]
    return merged[0], merged[1], merged[2], hashed_files


def _survey(
    p: PreprocessConfig, inp: _Input, scratch: Path, spark: SparkPasses | None, *, counted: bool
) -> tuple[Survey, list[pl.LazyFrame] | None]:
    """The first pass: step counts, user activity, canonical ids (on Spark or on Polars).

    Also the hashed plays of each batch of files (`_counts`); None on Spark.
    """
    hashed = None
    if spark is not None:
        user_counts, id_map, file_counts = spark.counts()
    else:
        user_counts, spell, file_counts, hashed = _counts(p, inp, scratch, counted=counted)
        # small frames already in memory: the in-memory engine is the faster one here
        id_map = names.canonicalise(spell.lazy()).collect(engine=IN_MEMORY)
        del spell  # copied into id_map; kept to the end it added ~80 bytes a spelling to the peak
    reasons = parse.count_reasons(user_counts.lazy()).collect()
    activity = parse.user_activity(user_counts.lazy(), max_plays_per_day=p.max_plays_per_day)
    bad = reasons.filter(pl.col(parse.DROP_REASON).is_in(parse.UNPARSEABLE))["n"].sum()
    if not bad:
        examples = pl.DataFrame()
    elif spark is not None and not inp.files:  # a URI input: only Spark reads it
        examples = spark.bad_examples(n=5)
    else:
        examples = parse.bad_examples(_parse(inp.files, p, inp), n=5).collect(engine=STREAM)
    tracks = tables.number_tracks(names.canonical_tracks(id_map.lazy())).collect(engine=IN_MEMORY)
    survey = Survey(
        reasons={(r or KEPT): n for r, n in reasons.iter_rows()},
        id_map=tables.number_spellings(id_map.lazy(), tracks=tracks.lazy()).collect(
            engine=IN_MEMORY
        ),
        tracks=tracks,
        activity=activity.sort(USER_ID).collect(engine=IN_MEMORY),
        examples=examples.to_dicts(),
        file_counts=file_counts,
    )
    return survey, hashed


class _Laps:
    """Wall and CPU seconds of each phase and the peak RSS so far at its end, for the report.

    The peak only grows: the phase where it jumps is the one that set it. CPU seconds (user +
    system of every thread) are the steadier figure on a shared machine.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.peak_rss_mib: dict[str, int] = {}
        self._last = time.perf_counter()
        self._last_cpu = time.process_time()

    def lap(self, phase: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.seconds[phase] = round(now - self._last, 2)
        self.cpu_seconds[phase] = round(cpu - self._last_cpu, 2)
        self.peak_rss_mib[phase] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        self._last, self._last_cpu = now, cpu
        log.info(
            "preprocess: %s took %.1f s (%.1f CPU s), peak RSS so far %d MiB",
            phase,
            self.seconds[phase],
            self.cpu_seconds[phase],
            self.peak_rss_mib[phase],
        )


def _n_buckets(p: PreprocessConfig, rows: int) -> int:
    return p.buckets or max(1, math.ceil(rows / p.bucket_rows))


def _write_buckets(
    encoded: list[pl.LazyFrame], scratch: Path, n_buckets: int
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(de-duplicated plays, aggregated pairs) of every bucket, in bucket order.

    `encoded` holds the plays of each batch of input files, in file order. Each batch is sunk
    into the bucket files on its own: Polars' streaming engine holds about 90 bytes per parsed
    row of a query (docs/preprocess.md), so one query over every file grew with the log
    (14.2 GB at 100M events). A bucket (about bucket_rows plays) fits in memory and is sorted
    there: for a frame that fits, the in-memory engine sorts faster than the streaming one.
    Every play's scratch file (hashed plays, bucket files, plays, pairs) is uncompressed Arrow
    IPC: LZ4 cost CPU on every play twice, written and read, and cannot shrink the 64-bit hashes
    (10M events in 2 batches and 4 buckets: bucket phase 9.5-9.9 -> 3.6-3.8 CPU s with the single
    scan, docs/preprocess.md); the price is scratch disk (`stages.plan_costs.SCRATCH_PLAY`).
    A single bucket's plays and pairs stay in memory, as the bucket itself did. `encoded` is
    emptied once read, and each batch's hashed-plays file (`_hashed_file`) deleted once sunk.
    """
    if n_buckets == 1:
        collected = pl.concat(encoded).drop(encode.BUCKET).collect(engine=STREAM)
        encoded.clear()
        shutil.rmtree(scratch / "hashed", ignore_errors=True)
        deduped = encode.dedupe_bucket(collected)
        del collected
        aggregated = encode.aggregate_sorted_plays(deduped.lazy()).collect(engine=IN_MEMORY)
        return deduped.lazy(), aggregated.lazy()
    for i, batch in enumerate(encoded):
        batch.sink_ipc(
            pl.PartitionBy(scratch / "buckets" / f"{i:05d}", key=encode.BUCKET, include_key=False),
            compression="uncompressed",
            mkdir=True,
            engine=STREAM,
        )
        _hashed_file(scratch, i).unlink(missing_ok=True)  # read once: its disk is free now
    encoded.clear()
    # a bucket's scratch folders are deleted once read, so the bucket files and the
    # de-duplicated plays are never both whole on disk (at 800M each is several GB)
    inputs: list[tuple[pl.LazyFrame, list[Path]]] = []
    for b in range(n_buckets):
        folders = [f / f"{encode.BUCKET}={b}" for f in sorted((scratch / "buckets").iterdir())]
        folders = [f for f in folders if f.is_dir()]
        if folders:
            inputs.append((pl.concat([pl.scan_ipc(f / "*.ipc") for f in folders]), folders))
    (scratch / "plays").mkdir(parents=True, exist_ok=True)
    (scratch / "pairs").mkdir(parents=True, exist_ok=True)
    plays, pairs = [], []
    # a bucket's plays are written on a second thread while this one aggregates them (Polars
    # releases the GIL); both are done before the next bucket, so one bucket is alive at a time.
    # An error there is raised here by result(); on any error the with block joins the thread.
    with (
        progress("preprocess: buckets", len(inputs)) as step,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="musicrec-plays") as writer,
    ):
        for b, (bucket, folders) in enumerate(inputs):
            plays.append(scratch / "plays" / f"{b:05d}.ipc")
            pairs.append(scratch / "pairs" / f"{b:05d}.ipc")
            collected = bucket.collect(engine=STREAM)
            for folder in folders:
                shutil.rmtree(folder)
            deduped = encode.dedupe_bucket(collected)
            del collected
            written = writer.submit(deduped.write_ipc, plays[-1], compression="uncompressed")
            encode.aggregate_sorted_plays(deduped.lazy()).collect(engine=IN_MEMORY).write_ipc(
                pairs[-1], compression="uncompressed"
            )
            written.result()
            del deduped
            step()
    shutil.rmtree(scratch / "buckets", ignore_errors=True)
    return pl.scan_ipc(plays), pl.scan_ipc(pairs)


def run_preprocess(cfg: Config) -> str:
    """Clean the raw log, build canonical tracks, aggregate, encode, write 01_preprocess.

    A URI input (hdfs://, s3a://, file://) is listed and read by Spark on the Spark engine;
    the Polars engine reads a file:// URI as its path and refuses the others in one line.
    """
    engine = engine_of(cfg, "preprocess")
    remote = engine == "spark" and uri_scheme(cfg.paths.raw) is not None
    paths_cfg = resolve_raw(cfg.paths)
    if not remote:
        paths_cfg = dataclasses.replace(paths_cfg, raw=local_spec(paths_cfg.raw))
    cfg = dataclasses.replace(cfg, paths=paths_cfg)
    measure, p, root = Measure(), cfg.preprocess, Path(cfg.paths.artifacts)
    paths: list[Path] = []
    try:
        with contextlib.ExitStack() as stack:
            session = None
            if engine == "spark":
                from musicrec_cli.spark import spark_session

                session = stack.enter_context(spark_session(cfg.spark, workdir=root))
            listing, fmt, why, peek = side.listing(
                cfg.paths.raw, p.format, session if remote else None
            )
            chosen, ignored = select(listing, formats.PRESETS[fmt])
            chosen, names_found, names_set = side.names_entries(
                chosen, fmt=fmt, setting=p.names, peek=peek
            )
            ignored = sorted([*ignored, *((e.shown, side.NAMES_REASON) for e in names_found)])
            users = layout.file_user_ids([e.rel for e in chosen], rule=p.user_id, root=listing.root)
            log.info("preprocess: format %s (%s), %d file(s)", fmt, why, len(chosen))
            catalog = side.scan_catalog(cfg.paths.catalog, p.catalog_columns)
            with art.open_stage(root, "preprocess") as out:
                unpacked = out.path("_unpacked")
                paths = [] if remote else materialise(chosen, unpacked)
                # ~30 s at 800M events: hashed on the writer's thread while the passes run
                inputs = out.background(
                    side.fingerprints,
                    [*chosen, *names_found],
                    names_set,
                    cfg.paths.catalog,
                    stop=out.stop,
                )
                read = [e.uri or "" for e in chosen] if remote else [str(f) for f in paths]
                inp = _Input(
                    fmt=fmt,
                    why=why,
                    files=paths,
                    read=read,
                    shown=[e.shown for e in chosen],
                    ignored=ignored,
                    users=pl.DataFrame(
                        {SOURCE_FILE: read, layout.FILE_USER: users},
                        schema={SOURCE_FILE: pl.String, layout.FILE_USER: pl.String},
                    ),
                    names=side.names(session, names_set, names_found, remote=remote, into=unpacked),
                )
                found = side.long_play_shows(
                    _scan_raw(paths, p, inp) if paths else None, fmt=fmt, minutes=p.show_minutes
                )
                inp = dataclasses.replace(inp, shows=tuple(found[ARTIST_NAME]))
                spark = None
                if session is not None:
                    from musicrec_cli.runner.preprocess_spark import SparkPasses

                    spark = SparkPasses.of_input(
                        session, inp.files, chosen, formats.PRESETS[fmt],
                        parse_files=functools.partial(_parse, p=p, inp=inp),
                        parse_native=functools.partial(parse_native, label=read[0], p=p, inp=inp),
                    )  # fmt: skip
                report, summary = _build(cfg, inp, out, catalog, spark)
                report["shows"] = side.shows_report(p, report, found, fmt=fmt)
                report["names_tables"] = {
                    "files": [str(f) for f in names_set] + [e.shown for e in names_found],
                    "ids": 0 if inp.names is None else inp.names.select(pl.len()).collect().item(),
                }
                stack.close()  # Spark stopped and its scratch folder gone before the commit
                shutil.rmtree(unpacked, ignore_errors=True)
                out.write_json(report, art.QUALITY_REPORT)
                folder = art.commit_stage(
                    out,
                    {
                        "config": table_dict(p),
                        "engine": engine,
                        "paths": table_dict(cfg.paths),
                        "inputs": inputs.result(),
                        "summary": summary,
                        **measure.record(),
                    },
                )
    except (OSError, pl.exceptions.ComputeError) as exc:
        if (what := art.out_of_resources(exc)) is not None:
            partial = root / f".{art.stage_dir(root, 'preprocess').name}.partial"
            msg = (
                f"{partial}: {what} while writing the preprocess files; nothing was replaced "
                f"({art.stage_dir(root, 'preprocess')} is unchanged); free space and rerun."
            )
            raise art.ResourceError(msg) from exc
        damaged = find_damaged(paths)
        where = f"{damaged}: truncated or corrupt gzip file" if damaged else cfg.paths.raw
        msg = f"{where}: cannot read the raw listening log: {str(exc).splitlines()[0]}"
        raise InputError(msg) from exc
    return (
        f"format {fmt} ({why}): {report['rows_in']:,} rows -> {summary['n_plays']:,} plays, "
        f"{summary['n_pairs']:,} pairs, {summary['n_users']:,} users x "
        f"{summary['n_tracks']:,} tracks ({summary['n_buckets']} bucket(s)) -> {folder}"
    )


def _min_track_users(p: PreprocessConfig, n_users: int) -> int:
    """[preprocess].min_track_users, or 1 with fewer users than that (said in the log).

    The filter is for a community's log: on one or two people's exports it would drop every
    track.
    """
    if n_users >= p.min_track_users:
        return p.min_track_users
    log.info(
        "preprocess: %d user(s) < [preprocess].min_track_users (%d): %d listener(s) kept",
        n_users,
        p.min_track_users,
        1,
    )
    return 1


def _renumbering(
    users_k: pl.DataFrame,
    tracks_k: pl.DataFrame,
    *,
    spec: str,
    p: PreprocessConfig,
    survey: Survey,
    n_users0: int,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """(user map, track map, `encode.reindex` lookups) of the k-core's users and tracks."""
    if users_k.height == 0 or tracks_k.height == 0:
        msg = (
            f"{spec}: no user-track pairs left after the min-count filters; lower "
            f"[preprocess].min_user_tracks ({p.min_user_tracks}) or min_track_users "
            f"({p.min_track_users})."
        )
        raise SchemaError(msg)
    umap = encode.new_index(users_k.lazy(), column=USER_IDX).collect(engine=IN_MEMORY)
    tmap = encode.new_index(tracks_k.lazy(), column=TRACK_IDX).collect(engine=IN_MEMORY)
    lookups = {
        "users": encode.index_lookup(umap, size=n_users0),
        "tracks": encode.index_lookup(tmap, size=survey.tracks.height),
    }
    return umap, tmap, lookups


def _distinct_hashes(survey: Survey) -> tuple[bool, bool]:
    """Whether the spellings' and the users' 64-bit hashes are distinct: joins on them are exact.

    Every user of the log counts, bots too: a bot's id hashed like a human's would take their idx.
    """
    spellings = survey.id_map[encode.SPELLING_HASH].n_unique() == survey.id_map.height
    users = survey.activity.select(encode.user_hash().n_unique()).item() == survey.activity.height
    return spellings, users


def _build(
    cfg: Config,
    inp: _Input,
    out: art.StageWriter,
    catalog: pl.LazyFrame | None,
    spark: SparkPasses | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both passes and every output but the report; returns (report, manifest summary).

    With `spark`, both passes over the raw events run on Spark; the rest is shared.
    """
    p, spec, files = cfg.preprocess, cfg.paths.raw, inp.files
    scratch, laps = out.path("_scratch"), _Laps()
    first = (
        _raw([(inp.read[0], pl.LazyFrame(schema=spark.native))], p, inp, where=inp.read[0])
        if spark is not None and spark.native is not None  # a URI input: the reader's columns
        else _scan_raw(files[:1], p, inp)
    )
    counted = RAW_PLAY_COUNT in first.collect_schema()
    survey, hashed = _survey(p, inp, scratch, spark, counted=counted)
    laps.lap("survey")
    problem = survey_problem(survey, fmt=inp.fmt, max_bad_share=p.max_bad_share)
    if problem:
        msg = f"{spec}: {problem}"
        raise InputError(msg)
    humans = survey.activity.filter(~pl.col(parse.IS_BOT))
    n_buckets = _n_buckets(p, survey.kept)
    users0 = encode.assign_buckets(humans.lazy(), n_buckets=n_buckets).collect(engine=IN_MEMORY)
    by_hash, users_by_hash = _distinct_hashes(survey)
    kcore = {
        "min_user_tracks": p.min_user_tracks,
        "min_track_users": _min_track_users(p, users0.height),
        "max_rounds": p.kcore_rounds,
    }
    renumber = functools.partial(
        _renumbering, spec=spec, p=p, survey=survey, n_users0=users0.height
    )
    if spark is not None:
        umap, tmap, (rounds, n_pairs0, n_deduped, n_events, n_plays) = spark.events(
            out, survey.id_map, users0, by_hash=by_hash, counted=counted,
            n_groups=spark_groups(survey.kept), kcore=kcore, renumber=renumber, lap=laps.lap,
        )  # fmt: skip
    else:
        if hashed is not None and by_hash and users_by_hash:  # no second parse
            encoded = [
                encode.encode_hashed(batch, id_map=survey.id_map.lazy(), users=users0.lazy())
                for batch in hashed
            ]
        else:
            shutil.rmtree(scratch / "hashed", ignore_errors=True)
            encoded = [  # a batch of files at a time, as the survey: see _write_buckets
                encode.encode_plays(
                    parse.kept_plays(_parse(batch, p, inp)),
                    id_map=survey.id_map.lazy(),
                    users=users0.lazy(),
                    by_hash=by_hash,
                    users_by_hash=users_by_hash,
                    counted=counted,
                )
                for batch in file_batches(files, p.batch_bytes)
            ]
        del hashed  # now held by `encoded` alone, which _write_buckets empties
        plays0, pairs0 = _write_buckets(encoded, scratch, n_buckets)
        laps.lap("buckets")
        users_k, tracks_k, rounds = encode.kcore(pairs0, **kcore)
        laps.lap("kcore")
        umap, tmap, lookups = renumber(users_k, tracks_k)
        n_pairs0 = pairs0.select(pl.len()).collect().item()
        n_deduped = plays0.select(pl.len()).collect().item()
        n_events = out.sink_parquet(
            encode.reindex(pairs0, **lookups).select(list(INTERACTIONS)), art.EVENTS
        )
        del pairs0  # read no more: its memory (one bucket) or disk is free for plays.parquet
        shutil.rmtree(scratch / "pairs", ignore_errors=True)
        n_plays = out.sink_parquet(
            encode.reindex(plays0, **lookups).select(
                *PLAYS,
                *([PLAY_COUNT] if counted else []),  # a count table's counts stay counts
            ),
            art.PLAYS,
        )
        del plays0
        shutil.rmtree(scratch, ignore_errors=True)
    laps.lap("events_and_plays")
    # the id maps need neither the matrix nor items: written on a second thread meanwhile, as
    # no step of this phase keeps both cores busy (10M: items 0.68 s wall for 1.0 CPU s)
    with ThreadPoolExecutor(1, thread_name_prefix="musicrec-id-maps") as beside:
        id_maps = beside.submit(_write_id_maps, out, survey.id_map, tmap)
        events = pl.scan_parquet(out.path(art.EVENTS))
        matrix = build_matrix(events, value=PLAY_COUNT, n_users=umap.height, n_tracks=tmap.height)
        out.write_matrix(matrix, art.INTERACTION_MATRIX)
        stats = tables.track_stats(matrix)
        del matrix  # 8 bytes a pair (2.5 GB at 800M events): freed before the tables' joins
        items = _write_tables(out, survey, users0, umap, tmap, stats, catalog)
        id_maps.result()
    laps.lap("matrix_and_tables")
    counts = Counts(
        deduped=n_deduped,
        pairs=n_pairs0,
        events=n_events,
        plays=n_plays,
        rounds=rounds,
        n_buckets=n_buckets,
        users=umap.height,
    )
    report = quality_report(
        survey, counts, fmt=inp.fmt, max_bad_share=p.max_bad_share, items=items, counted=counted
    )
    files_report = input_files(survey.file_counts, read=inp.read, shown=inp.shown)
    report |= {
        "format_reason": inp.why,
        "files": files_report,
        "ignored_files": [{"path": f, "reason": r} for f, r in inp.ignored],
        "user_ids": user_files(files_report),
        "seconds": laps.seconds,
        "cpu_seconds": laps.cpu_seconds,
        "peak_rss_mib": laps.peak_rss_mib,
    }
    summary = {
        "n_users": umap.height,
        "n_tracks": tmap.height,
        "n_pairs": n_events,
        "n_plays": n_plays,
        "n_buckets": n_buckets,
        "has_timestamps": not counted,
        "format": inp.fmt,
    }
    return report, summary


def _write_tables(
    out: art.StageWriter,
    survey: Survey,
    users0: pl.DataFrame,
    umap: pl.DataFrame,
    tmap: pl.DataFrame,
    stats: pl.DataFrame,
    catalog: pl.LazyFrame | None,
) -> pl.DataFrame:
    """Write items and users; returns items."""
    items = tables.items_table(
        survey.tracks.lazy(),
        track_map=tmap.lazy(),
        stats=stats.lazy(),
        catalog=catalog,
        id_map=survey.id_map.lazy(),
    ).collect(engine=IN_MEMORY)
    users = tables.users_table(users0.lazy(), user_map=umap.lazy(), activity=survey.activity.lazy())
    out.write_parquet(items.drop(CATALOG_KEY, strict=False), art.ITEMS)
    out.write_parquet(users.collect(engine=IN_MEMORY), art.USERS)
    return items


def _write_id_maps(out: art.StageWriter, id_map: pl.DataFrame, tmap: pl.DataFrame) -> None:
    """Write id_map_tracks (every spelling with its final track_idx) and id_map_artists."""
    final = tables.final_id_map(id_map.lazy(), track_map=tmap.lazy()).collect(engine=IN_MEMORY)
    out.write_parquet(final, art.ID_MAP_TRACKS)
    artists = names.canonical_artists(final.lazy()).collect(engine=IN_MEMORY)
    out.write_parquet(artists, art.ID_MAP_ARTISTS)
