"""The resource plan of a run: per stage, peak memory, disk written, batches and a rough time.

Pure functions over counts: `Sizes` (what the data holds, counted or estimated) and
`PlanSettings` (the config values that change the cost) give one `StagePlan` per stage. The
costs are sums of the structures each stage holds at its peak (the CSR, the factors, an
in-memory bucket, the item-item matrices ...), each a count times bytes per element. Bytes per
element are read off the code where it allocates arrays (a float32 CSR entry is 8 bytes) and
measured where Polars decides (bytes per row of a sorted bucket): the measured ones come from
benchmarks/results/full_scale.json (800M events), full_scale_1-in-80.json and
plan_accuracy.json (default data and 10M events), which `benchmarks/plan_accuracy.py`
compares with these estimates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from stages import plan_costs as costs
from stages import plan_models

STAGES = ("preprocess", "split", "features", "train", "predict", "evaluate")
GIB = 2**30


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """Counts of one data set, at each step of the pipeline.

    Attributes:
        raw_events: Rows of the raw log.
        raw_bytes: Bytes of the raw files on disk.
        plays: Clean, de-duplicated plays (01_preprocess plays.parquet).
        pairs: (user, track) pairs after the filters (events.parquet).
        users: Users after the filters.
        tracks: Tracks after the filters.
        spellings: Distinct raw (artist, track) spellings (id_map_tracks.parquet).
        train_pairs: Training pairs (02_split train.parquet).
        test_pairs: Test pairs (02_split test.parquet).
        replay_pairs: Test pairs with re-listens (02_split test_replay.parquet).
        counted: Names of the counts read from files or manifests; the rest are estimates.
    """

    raw_events: int
    raw_bytes: int
    plays: int
    pairs: int
    users: int
    tracks: int
    spellings: int
    train_pairs: int
    test_pairs: int
    replay_pairs: int
    counted: frozenset[str] = field(default_factory=frozenset)


# what one raw event becomes, measured on the generator's data at 400K, 10M and 800M events
# (plays 0.70-0.75, pairs 0.37-0.39; train/test shares of the temporal split 0.83/0.17)
PLAYS_PER_EVENT = 0.72
PAIRS_PER_EVENT = 0.38
TRAIN_SHARE = 0.83
TEST_SHARE = 0.17
REPLAY_SHARE = 0.27
# distinct spellings: 6.5% of events on small logs, at most about 13.5 per track
SPELLINGS_PER_EVENT = 0.065
SPELLINGS_PER_TRACK = 13.5
# a raw log of unknown users and tracks: events per user and per track, a guess, flagged
EVENTS_PER_USER = 500
EVENTS_PER_TRACK = 1000


def estimate_sizes(
    *,
    raw_events: int,
    raw_bytes: int,
    users: int | None = None,
    tracks: int | None = None,
    known: dict[str, int] | None = None,
) -> Sizes:
    """Every count from the raw log's size, with the counts in `known` taken as they are.

    Args:
        raw_events: Rows of the raw log (Parquet metadata, or estimated from bytes).
        raw_bytes: Bytes of the raw files.
        users: Users, if known (a manifest, the generator's settings, `plan --users`).
        tracks: Tracks, if known (a manifest, the catalogue's rows, `plan --tracks`).
        known: Counts read from manifests, by `Sizes` attribute name; they win.
    """
    got = dict(known or {})
    if users is not None:
        got.setdefault("users", users)
    if tracks is not None:
        got.setdefault("tracks", tracks)
    events = max(raw_events, 1)
    n_tracks = got.get("tracks", max(1, events // EVENTS_PER_TRACK))
    pairs = got.get("pairs", round(events * PAIRS_PER_EVENT))
    values = {
        "plays": round(events * PLAYS_PER_EVENT),
        "pairs": pairs,
        "users": max(1, events // EVENTS_PER_USER),
        "tracks": n_tracks,
        "spellings": round(min(events * SPELLINGS_PER_EVENT, n_tracks * SPELLINGS_PER_TRACK)),
        "train_pairs": round(pairs * TRAIN_SHARE),
        "test_pairs": round(pairs * TEST_SHARE),
        "replay_pairs": round(pairs * REPLAY_SHARE),
    } | got
    return Sizes(
        raw_events=raw_events,
        raw_bytes=raw_bytes,
        counted=frozenset(got) | {"raw_events", "raw_bytes"},
        **{k: int(v) for k, v in values.items() if k not in ("raw_events", "raw_bytes")},
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSettings:
    """The settings that change a stage's cost, and the machine's threads.

    The keys are musicrec.toml's of the same names (`ks` is [evaluate].k); their defaults live
    there and in musicrec_cli/config.py only: `musicrec_cli.planning.settings_of(cfg)` builds
    this. `threads` counts FactorTopK's score buffers (one per thread).
    """

    batch_bytes: int
    buckets: int
    bucket_rows: int
    plays_per_part: int
    models: tuple[str, ...]
    factors: int
    iterations: int
    bpr_factors: int
    bpr_iterations: int
    knn_neighbours: int
    rp3beta_neighbours: int
    ease_max_gib: float
    n: int
    block_size: int
    candidates: int
    rerank_models: tuple[str, ...]
    similar_k: int
    ks: tuple[int, ...]
    threads: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StagePlan:
    """What one stage is expected to need.

    Attributes:
        stage: The stage's name.
        peak_bytes: Peak resident memory of the stage's process.
        disk_bytes: Bytes of its outputs (its folder once committed).
        scratch_bytes: Extra disk used while it runs, deleted before the commit.
        seconds: Rough wall time on one 2-core machine like the one the costs were measured on.
        memory: (what, bytes) of the largest structures alive at the peak, largest first.
        batches: How the work is cut, one phrase each ("30 buckets of 18.6M plays").
        refused: Why the stage will refuse to run ("" if it will run).
    """

    stage: str
    peak_bytes: int
    disk_bytes: int
    scratch_bytes: int
    seconds: float
    memory: tuple[tuple[str, int], ...]
    batches: tuple[str, ...]
    refused: str = ""


ESTIMATORS: dict[str, Callable[[Sizes, PlanSettings], costs.Estimate]] = {
    "preprocess": costs.preprocess,
    "split": costs.split,
    "features": costs.features,
    "train": plan_models.train,
    "predict": plan_models.predict,
    "evaluate": plan_models.evaluate,
}


def plan_stage(stage: str, sizes: Sizes, settings: PlanSettings) -> StagePlan:
    """The plan of one of STAGES (see the module docstring for where the costs come from)."""
    est = ESTIMATORS[stage](sizes, settings)
    parts = tuple(sorted(((k, int(v)) for k, v in est.memory.items() if v > 0), key=_by_size))
    return StagePlan(
        stage=stage,
        peak_bytes=int(costs.BASE_BYTES[stage] + sum(v for _, v in parts)),
        disk_bytes=int(est.disk),
        scratch_bytes=int(est.scratch),
        seconds=round(est.seconds, 1),
        memory=parts,
        batches=est.batches,
        refused=est.refused,
    )


def _by_size(item: tuple[str, int]) -> int:
    return -item[1]


def plan_run(
    sizes: Sizes, settings: PlanSettings, stages: tuple[str, ...] = STAGES
) -> list[StagePlan]:
    """`plan_stage` of each of `stages`, in pipeline order."""
    return [plan_stage(s, sizes, settings) for s in STAGES if s in stages]


@dataclass(frozen=True, slots=True, kw_only=True)
class Machine:
    """What the run has: total and available memory, free disk where the artifacts go."""

    memory_bytes: int
    available_bytes: int
    disk_free_bytes: int


def problems_for(plans: list[StagePlan], machine: Machine) -> list[str]:
    """One line per stage that would not fit this machine (memory, disk) or will refuse to run.

    Memory is compared with the machine's total (a stage above it fails or swaps); disk with the
    free space, summed over the stages planned (each stage folder stays), scratch included.
    """
    lines = [f"{p.stage}: {p.refused}" for p in plans if p.refused]
    lines += [
        f"{p.stage}: needs about {gib(p.peak_bytes)} of memory, more than this machine's "
        f"{gib(machine.memory_bytes)}; {costs.REMEDY[p.stage]}"
        for p in plans
        if p.peak_bytes > machine.memory_bytes
    ]
    used = 0
    for p in plans:
        used += p.disk_bytes
        if used + p.scratch_bytes > machine.disk_free_bytes:
            lines.append(
                f"{p.stage}: the stages up to it write about {gib(used + p.scratch_bytes)} "
                f"(scratch included), more than the {gib(machine.disk_free_bytes)} free; "
                "free disk or point [paths].artifacts elsewhere."
            )
            break
    return lines


def cautions_for(plans: list[StagePlan], machine: Machine) -> list[str]:
    """One line per stage that fits the machine but not the memory available now."""
    return [
        f"{p.stage}: needs about {gib(p.peak_bytes)} of memory, more than the "
        f"{gib(machine.available_bytes)} available now; free memory first."
        for p in plans
        if machine.available_bytes < p.peak_bytes <= machine.memory_bytes
    ]


def gib(n: float) -> str:
    """Bytes as GiB, or MiB below 1 GiB, or TB above 1000 GiB (EASE's dense matrices)."""
    if n >= 1000 * GIB:
        return f"{n / 1e12:,.1f} TB"
    if n >= GIB:
        return f"{n / GIB:,.2f} GiB"
    return f"{n / 2**20:,.0f} MiB"


def duration(seconds: float) -> str:
    """Seconds as "4 s", "3.2 min" or "1.4 h"."""
    if seconds < 60:
        return f"{math.ceil(seconds):d} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
