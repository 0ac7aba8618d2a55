"""Bytes and seconds per element of each stage's structures, for `stages.plan`.

Each estimator returns what its stage holds at its peak, as named terms (count x bytes per
element), what it writes and how long it takes. Constants marked "code" are array layouts read
off the stage's code; "measured" ones are fitted to the peaks and wall times recorded in
benchmarks/results/full_scale.json (800M events), full_scale_1-in-80.json (10M) and the runs of
benchmarks/plan_accuracy.py (default data, 10M), and checked by tests/stages/test_plan.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stages.plan import PlanSettings, Sizes

MIB = 2**20
# resident memory of a stage's process before it reads data: Python, Polars, NumPy, SciPy and
# what the stage imports (implicit, scikit-learn); measured on the default data's manifests
BASE_BYTES = {
    "preprocess": 330 * MIB,
    "split": 250 * MIB,
    "features": 230 * MIB,
    "train": 420 * MIB,
    "predict": 450 * MIB,
    "evaluate": 400 * MIB,
}
# what to change when a stage would not fit in memory
REMEDY = {
    "preprocess": "lower [preprocess].bucket_rows and batch_bytes, or use --engine spark.",
    "split": "lower [split].plays_per_part, or use --engine spark.",
    "features": "run it on a machine with more memory.",
    "train": "leave models out of [train].models (ease, knn, bpr), or use --engine spark (ALS).",
    "predict": "lower [predict].block_size or leave models out of [train].models.",
    "evaluate": "lower [predict].n or the number of models.",
}

# preprocess (measured): the survey holds a batch of raw events (batch_bytes of the raw files)
# and the distinct spellings through name normalisation (fitted on the survey phase's peak at
# 10M and 800M events: 1,531 and 8,578 MiB); the id map is kept to the end; one clean play of
# an in-memory bucket, sorted; one pair while the events are re-indexed and the CSR is built
SURVEY_PER_EVENT = 120
SURVEY_PER_SPELLING = 390
IDMAP_PER_SPELLING = 200
BUCKET_PER_PLAY = 200
MATRIX_PER_PAIR = 30
# split (measured): one play of the user range being aggregated, beside the train CSR's arrays
# filled range by range (8 bytes a pair: CSR_PER_PAIR); at 800M events 5.09 GiB (2026-12-01),
# 6.35 (12-02) and 6.89 with the CLI's allocator keeping freed pages 10 s (12-02, later)
SPLIT_PER_PLAY = 80
# features (measured): the streaming group-bys over the training pairs
FEATURES_PER_PAIR = 15
# train (code): the float32 CSR of weights, filled batch by batch from the features_train scan
# (8); (measured) ALS: implicit's transposed copy (8) and what its allocator and factor setup
# keep (~6), alpha applied in place (5.50 GiB at 800M events, 2026-12-01)
TRAIN_DATA_PER_PAIR = 8
ALS_PER_PAIR = 14
CSR_PER_PAIR = 8  # code: float32 data + int32 indices
# predict (code): per thread, FactorTopK's (256, n_items) float32 score buffer; the generic
# scorer's 2^24 dense scores (x3: scores, mask, argpartition); the catalogue per track and user
SCORE_ROWS = 256
DENSE_BYTES = 3 * 4 * (1 << 24)
CATALOG_PER_TRACK = 300
CATALOG_PER_USER = 60
ROW_BYTES = 48  # one prediction row in a block's frame
# evaluate (measured): a prediction row and a test pair held for the per-user frame, plus the
# beyond-accuracy parts (stages.evaluate.beyond: BEYOND_ROWS list rows, two parts at a time,
# each with its track columns), a fixed working set once the lists pass two parts. Fitted to
# the 800M run of 2026-12-02 (6.08 GiB, 274M rows: 1.01x) and the 10M run of
# benchmarks/results/plan_10m_run.json (1.85 GiB, 17.1M rows: 0.97x)
EVAL_PER_PREDICTION = 12
EVAL_PER_BEYOND_ROW = 80
EVAL_BEYOND_PARTS = 2
EVAL_PER_TEST_PAIR = 30
# disk (measured bytes per row of zstd Parquet; NPZ arrays are uncompressed: code)
DISK_PLAY = 9
DISK_PAIR = 26  # events.parquet 17 + the matrix 8 (+1)
DISK_SPELLING = 21
DISK_TRACK = 60
DISK_USER = 12
DISK_SPLIT_PAIR = 25  # train/test Parquet 17 + matrix 8
DISK_REPLAY = 17
DISK_FEATURE_PAIR = 21
DISK_PREDICTION = 8
DISK_SIMILAR = 11
DISK_USER_METRICS = 60
# uncompressed Arrow IPC (musicrec_cli/runner/preprocess.py, _write_buckets): the survey's hashed
# plays (several batches; 19.4 GB for 558.8M plays at 800M), then the bucket files, and at the
# bucket phase's end each bucket's de-duplicated plays and its pairs
SCRATCH_HASHED_PLAY = 35
SCRATCH_PLAY = 24
SCRATCH_PAIR = 40
# seconds (measured, on the 2-core machine, shared)
SECONDS = {
    "start": 3.0,
    "preprocess_event": 1.5e-6,
    "split_play": 0.2e-6,
    "features_pair": 0.4e-6,
    "train_load_pair": 0.3e-6,
    "als_pair_factor_iter": 3.6e-9,
    "bpr_pair_iter": 4.5e-7,
    "knn_pair": 2.0e-6,
    "rp3beta_pair": 1.5e-6,
    "ease_cubed": 2.0e-11,
    "predict_user_list": 2.0e-4,
    "evaluate_prediction": 0.45e-6,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """One stage's terms: memory by structure, disk, scratch, seconds, batches, refusal."""

    memory: Mapping[str, float]
    disk: float
    scratch: float
    seconds: float
    batches: tuple[str, ...]
    refused: str = ""


def count(n: float) -> str:
    """A count in short form: 18.6M, 802.4K."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def preprocess(z: Sizes, s: PlanSettings) -> Estimate:
    """Survey of the spellings, one bucket at a time, then events, plays and the CSR."""
    n_batches = max(1, math.ceil(z.raw_bytes / s.batch_bytes))
    n_buckets = s.buckets or max(1, math.ceil(z.plays / s.bucket_rows))
    per_bucket = math.ceil(z.plays / n_buckets)
    idmap = z.spellings * IDMAP_PER_SPELLING
    batch_events = z.raw_events * min(1.0, s.batch_bytes / max(z.raw_bytes, 1))
    phases = {
        "survey: a batch of raw events, spellings": batch_events * SURVEY_PER_EVENT
        + z.spellings * SURVEY_PER_SPELLING,
        "bucket of plays, sorted in memory": per_bucket * BUCKET_PER_PLAY + idmap,
        "pairs re-indexed, CSR": z.pairs * MATRIX_PER_PAIR + idmap,
    }
    peak = max(phases, key=lambda k: phases[k])
    memory = {peak: phases[peak]}
    if not peak.startswith("survey"):
        memory = {peak: phases[peak] - idmap, "id map of spellings": idmap}
    disk = (
        z.plays * DISK_PLAY
        + z.pairs * DISK_PAIR
        + z.spellings * DISK_SPELLING
        + z.tracks * DISK_TRACK
        + z.users * DISK_USER
    )
    return Estimate(
        memory=memory,
        disk=disk,
        scratch=max(
            z.plays * SCRATCH_HASHED_PLAY if n_batches > 1 else 0,
            z.plays * SCRATCH_PLAY + z.pairs * SCRATCH_PAIR if n_buckets > 1 else 0,
        ),
        seconds=SECONDS["start"] + z.raw_events * SECONDS["preprocess_event"],
        batches=(
            f"survey: {n_batches} batch(es) of <= {s.batch_bytes / MIB:,.0f} MiB raw",
            f"{n_buckets} bucket(s) of ~{count(per_bucket)} plays",
        ),
    )


def split(z: Sizes, s: PlanSettings) -> Estimate:
    """User ranges of ~plays_per_part plays, then the train matrix."""
    n_parts = max(1, math.ceil(z.plays / s.plays_per_part))
    per_part = math.ceil(z.plays / n_parts)
    phases = {
        "user range being split": per_part * SPLIT_PER_PLAY,
        "train CSR filled so far": z.train_pairs * CSR_PER_PAIR,
    }
    return Estimate(
        memory=phases,
        disk=(z.train_pairs + z.test_pairs) * DISK_SPLIT_PAIR + z.replay_pairs * DISK_REPLAY,
        scratch=(z.train_pairs + z.test_pairs + z.replay_pairs) * DISK_REPLAY,
        seconds=SECONDS["start"] + z.plays * SECONDS["split_play"],
        batches=(f"{n_parts} user range(s) of ~{count(per_part)} plays",),
    )


def features(z: Sizes, s: PlanSettings) -> Estimate:
    """Streaming group-bys over the training pairs."""
    return Estimate(
        memory={"streaming group-bys over train pairs": z.train_pairs * FEATURES_PER_PAIR},
        disk=(z.train_pairs + z.test_pairs) * DISK_FEATURE_PAIR
        + z.tracks * DISK_TRACK
        + z.users * DISK_USER * 3,
        scratch=0,
        seconds=SECONDS["start"] + z.train_pairs * SECONDS["features_pair"],
        batches=("streaming",),
    )
