"""What `musicrec plan` and `--dry-run` read: cheap counts of the inputs, the settings, the machine.

Counts are taken where they cost nothing: the stage manifests (exact), Parquet footers (row
counts), the catalogue's footer (tracks), [generate].users for data in a folder `musicrec
generate` owns; a text log's rows are its size over the bytes per line of its first 64 KiB.
Nothing is scanned, nothing written.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq

from musicrec_cli import artifacts as art
from musicrec_cli.config import Config
from musicrec_cli.inputs import Entry, choose_format, list_entries, select
from musicrec_cli.owned import owner_of
from musicrec_cli.sources import InputError, resolve_raw
from stages import plan
from stages.preprocess.formats import PRESETS

# a gzip-compressed text log holds about this many times its size (CSV of plays)
GZIP_RATIO = 5


def settings_of(cfg: Config) -> plan.PlanSettings:
    """The settings of `cfg` that change a stage's cost."""
    p, t, pr = cfg.preprocess, cfg.train, cfg.predict
    return plan.PlanSettings(
        batch_bytes=p.batch_bytes,
        buckets=p.buckets,
        bucket_rows=p.bucket_rows,
        plays_per_part=cfg.split.plays_per_part,
        models=t.models,
        factors=t.factors,
        iterations=t.iterations,
        bpr_factors=t.bpr_factors,
        bpr_iterations=t.bpr_iterations,
        knn_neighbours=t.knn_neighbours,
        rp3beta_neighbours=t.rp3beta_neighbours,
        ease_max_gib=t.ease_max_gib,
        n=pr.n,
        block_size=pr.block_size,
        candidates=pr.candidates,
        rerank_models=pr.rerank_models,
        similar_k=pr.similar_k,
        ks=cfg.evaluate.k,
        threads=min(2, os.cpu_count() or 1),
    )


def _entry_rows(entry: Entry) -> tuple[int, int]:
    """(rows, bytes on disk) of one raw file: its Parquet footer, or its size over line length."""
    if entry.member is not None:
        with zipfile.ZipFile(entry.path) as archive:
            size = archive.getinfo(entry.member).file_size
    else:
        size = entry.path.stat().st_size
    if entry.name.lower().endswith(".parquet") and entry.member is None:
        return pq.ParquetFile(entry.path).metadata.num_rows, size
    head = entry.head()
    unpacked = size * GZIP_RATIO if entry.name.lower().endswith(".gz") else size
    return round(unpacked * max(head.count(b"\n"), 1) / max(len(head), 1)), size


def _catalog_rows(spec: str) -> int | None:
    path = Path(spec)
    if spec and path.is_file() and path.suffix == ".parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    return None


def sizes_of(
    cfg: Config,
    *,
    events: int | None = None,
    users: int | None = None,
    tracks: int | None = None,
) -> plan.Sizes:
    """Counts for the plan: manifests, then file footers, then estimates from the raw size.

    With `events`, the plan is for a raw log of that many events (of the current log's bytes per
    event) and the manifests are not read.
    """
    paths, root = resolve_raw(cfg.paths), Path(cfg.paths.artifacts)
    try:
        raw_events, raw_bytes = _raw_rows(paths.raw, cfg.preprocess.format)
    except InputError:
        recorded = _recorded_raw(root)  # the raw log is gone; 01_preprocess says what it was
        if recorded is None:
            raise
        raw_events, raw_bytes = recorded
    known: dict[str, int] = {}
    if events is not None:
        raw_bytes = round(raw_bytes * events / max(raw_events, 1))
        raw_events = events
    else:
        known = _manifest_counts(root)
    if users is None and events is None and owner_of(Path(paths.raw).parent) == "generate":
        users = cfg.generate.users  # `musicrec generate`'s data: every user listens
    if tracks is None:
        tracks = _catalog_rows(paths.catalog)
    return plan.estimate_sizes(
        raw_events=raw_events, raw_bytes=raw_bytes, users=users, tracks=tracks, known=known
    )


def _raw_rows(spec: str, fmt: str) -> tuple[int, int]:
    """(rows, bytes) of the files preprocess would read."""
    listing = list_entries(spec)
    chosen, _ = select(listing, PRESETS[choose_format(listing, fmt)[0]])
    counted = [_entry_rows(e) for e in chosen]
    return sum(r for r, _ in counted), sum(b for _, b in counted)


def _recorded_raw(root: Path) -> tuple[int, int] | None:
    """(rows, bytes) of the raw log 01_preprocess read, from its report and manifest."""
    pre = art.read_manifest(root, "preprocess")
    report = art.stage_dir(root, "preprocess") / art.QUALITY_REPORT
    if pre is None or not report.is_file():
        return None
    rows = int(json.loads(report.read_text())["rows_in"])
    return rows, sum(int(f["size"]) for f in pre.get("inputs", {}).values())


def _manifest_counts(root: Path) -> dict[str, int]:
    """Exact counts recorded by 01_preprocess and 02_split, where they exist."""
    pre, spl = art.read_manifest(root, "preprocess"), art.read_manifest(root, "split")
    idmap = (pre or {}).get("outputs", {}).get(art.ID_MAP_TRACKS, {})
    return recorded_counts(
        None if pre is None else pre["summary"],
        None if spl is None else spl["summary"],
        spellings=idmap.get("rows"),
    )


def recorded_counts(
    preprocess: Mapping[str, Any] | None,
    split: Mapping[str, Any] | None,
    *,
    spellings: int | None = None,
) -> dict[str, int]:
    """The plan's `known` counts from the summaries 01_preprocess and 02_split recorded.

    Args:
        preprocess: 01_preprocess's manifest summary (None where the stage has not run).
        split: 02_split's manifest summary (None likewise).
        spellings: Rows of id_map_tracks.parquet, where known.
    """
    known: dict[str, int] = {}
    if preprocess is not None:
        known |= {
            "plays": preprocess["n_plays"],
            "pairs": preprocess["n_pairs"],
            "users": preprocess["n_users"],
            "tracks": preprocess["n_tracks"],
        }
    if spellings is not None:
        known["spellings"] = spellings
    if split is not None:
        known |= {"train_pairs": split["n_train"], "test_pairs": split["n_test"]}
        if split.get("n_test_replay") is not None:
            known["replay_pairs"] = split["n_test_replay"]
    return known


def machine_of(cfg: Config) -> plan.Machine:
    """Memory (total, available now) and free disk where the artifacts go."""
    where = Path(cfg.paths.artifacts).resolve()
    while not where.exists():
        where = where.parent
    memory = psutil.virtual_memory()
    return plan.Machine(
        memory_bytes=int(memory.total),
        available_bytes=int(memory.available),
        disk_free_bytes=int(shutil.disk_usage(where).free),
    )


def table_rows(plans: list[plan.StagePlan]) -> list[list[str]]:
    """One row per stage: peak memory, disk written, scratch disk, time."""
    return [
        [
            p.stage + (" (refused)" if p.refused else ""),
            plan.gib(p.peak_bytes),
            plan.gib(p.disk_bytes),
            plan.gib(p.scratch_bytes) if p.scratch_bytes else "-",
            plan.duration(p.seconds),
        ]
        for p in plans
    ]


def detail_lines(plans: list[plan.StagePlan]) -> list[str]:
    """Per stage, how the work is cut and the two largest structures in memory."""
    lines = []
    for p in plans:
        largest = ", ".join(f"{what} {plan.gib(n)}" for what, n in p.memory[:2])
        lines.append(f"{p.stage}: {'; '.join(p.batches)}. Largest in memory: {largest}.")
    return lines


def sizes_line(z: plan.Sizes) -> str:
    """The counts the plan used, estimates marked with ~."""
    names = ("raw_events", "plays", "pairs", "users", "tracks", "train_pairs", "test_pairs")
    parts = [
        f"{name.replace('_', ' ')} {'' if name in z.counted else '~'}{getattr(z, name):,}"
        for name in names
    ]
    return "sizes: " + ", ".join(parts) + " (~ estimated from the raw size)"


def as_json(
    z: plan.Sizes, machine: plan.Machine, plans: list[plan.StagePlan], warnings: list[str]
) -> dict[str, Any]:
    """The plan as one JSON object: sizes (and which were counted), machine, stages, warnings."""
    sizes = asdict(z) | {"counted": sorted(z.counted)}
    return {
        "sizes": sizes,
        "machine": asdict(machine),
        "stages": [asdict(p) | {"memory": dict(p.memory)} for p in plans],
        "warnings": warnings,
    }
