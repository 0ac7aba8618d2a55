"""Where predict's rows go: one Parquet file in the stage folder, or merged into the last run.

A --users run writes only its users' rows; when the previous full run was made from the same
settings, code and upstream runs, those rows replace the users' old ones (scope "all").
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from musicrec_cli import artifacts as art
from musicrec_cli import lineage
from musicrec_cli.codehash import source_fingerprint
from musicrec_cli.config import PredictConfig, table_dict
from stages.predict import SIMILARITY
from stages.schema import SCORE, USER_IDX

# near-unique floats: pyarrow builds a dictionary of them, overflows it and falls back to plain
# for every row group (18% of the writer's CPU on the default data, and a 17% larger file)
UNIQUE_FLOATS = (SCORE, SIMILARITY)
T = TypeVar("T")
_END = object()


def read_ahead(items: Iterator[T], size: int = 2) -> Iterator[T]:
    """`items`, made by a background thread at most `size` ahead of the caller.

    Predict makes the next block (the song rule, the top-k's own probe, the ids) while this one
    is converted and written to Parquet: NumPy, Polars and pyarrow release the GIL for their
    work, so on two cores the writing no longer waits for the scoring or the other way round.
    An exception in `items` is raised here, with its traceback; when the caller stops early
    (an error, Ctrl-C), the thread finishes the item in hand and is joined before this returns.
    """
    ready: queue.Queue[tuple[BaseException | None, object]] = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(entry: tuple[BaseException | None, object]) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((None, item)):
                    return
            put((None, _END))
        except BaseException as exc:  # the caller raises it
            put((exc, None))

    producer = threading.Thread(target=produce, name="musicrec-read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            error, item = ready.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield cast(T, item)
    finally:
        stop.set()
        producer.join()


def parquet_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """The writer of predict's files: zstd, every column dictionary-encoded but UNIQUE_FLOATS."""
    dictionary = [name for name in schema.names if name not in UNIQUE_FLOATS]
    return pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=dictionary)


def stream_rows(
    frames: Iterator[tuple[int, pl.DataFrame]], path: Path, tick: Callable[[], object]
) -> int:
    """Write (part, frame) pairs to one Parquet file (`parquet_writer`); returns the row count.

    Part 1 frames go to a side file that is appended after all of part 0, so the row order
    (exact lists model by model, then re-ranked lists) does not depend on the block size. The
    side file is an Arrow IPC stream: it is read back once, and IPC costs no encoding or
    compression either way.
    """
    side = path.with_name(path.name + ".part1")
    main: pq.ParquetWriter | None = None
    later: pa.ipc.RecordBatchStreamWriter | None = None
    rows = 0
    try:
        for part, frame in frames:
            table = frame.to_arrow()
            if part == 0:
                main = main or parquet_writer(path, table.schema)
                main.write_table(table)
            else:
                later = later or pa.ipc.new_stream(str(side), table.schema)
                later.write_table(table)
            rows += frame.height
            tick()
        if later is not None:
            later.close()
            later = None
            with pa.ipc.open_stream(str(side)) as reader:
                for batch in reader:
                    main = main or parquet_writer(path, batch.schema)
                    main.write_batch(batch)
            side.unlink()
    finally:
        for writer in (main, later):
            if writer is not None:
                writer.close()
    return rows


def merge_base(root: Path, p: PredictConfig, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of the full predictions a --users run may merge into, else None.

    Only a run over every user, with the same settings, code and upstream manifests, qualifies:
    merging into anything else would mix two runs in one file.
    """
    previous = art.read_manifest(root, "predict")
    if previous is None or previous.get("summary", {}).get("scope") == lineage.SCOPE_USERS:
        return None
    same = (
        previous.get("config") == table_dict(p)
        and previous.get("source_sha256") == source_fingerprint("predict")
        and lineage.recorded_upstream(previous) == lineage.recorded_upstream({"inputs": inputs})
    )
    return previous if same else None


def merge_rows(root: Path, fresh: Path, users: npt.NDArray[np.int64], out: Path) -> int:
    """Write the previous predictions minus `users`, then `fresh` (their new rows), to `out`."""
    kept = art.scan(root, "predict", art.PREDICTIONS).filter(
        ~pl.col(USER_IDX).is_in(pl.Series(users).cast(pl.UInt32))
    )
    pl.concat([kept, pl.scan_parquet(fresh)], how="vertical_relaxed").sink_parquet(
        out, compression="zstd"
    )
    fresh.unlink()
    return int(pl.scan_parquet(out).select(pl.len()).collect().item())
