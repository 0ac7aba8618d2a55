"""Where predict's rows go: one Parquet file in the stage folder, or merged into the last run.

A --users run writes only its users' rows; when the previous full run was made from the same
settings, code and upstream runs, those rows replace the users' old ones (scope "all").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow.parquet as pq

from musicrec_cli import artifacts as art
from musicrec_cli import lineage
from musicrec_cli.codehash import source_fingerprint
from musicrec_cli.config import PredictConfig, table_dict
from stages.schema import USER_IDX


def stream_rows(
    frames: Iterator[tuple[int, pl.DataFrame]], path: Path, tick: Callable[[], object]
) -> int:
    """Write (part, frame) pairs to one Parquet file (zstd); returns the row count.

    Part 1 frames go to a side file that is appended after all of part 0, so the row order
    (exact lists model by model, then re-ranked lists) does not depend on the block size.
    """
    paths = (path, path.with_name(path.name + ".part1"))
    writers: list[pq.ParquetWriter | None] = [None, None]
    rows = 0
    try:
        for part, frame in frames:
            table = frame.to_arrow()
            writers[part] = writers[part] or pq.ParquetWriter(
                paths[part], table.schema, compression="zstd"
            )
            writers[part].write_table(table)  # type: ignore[union-attr]
            rows += frame.height
            tick()
        if writers[1] is not None:
            writers[1].close()
            writers[1] = None
            main = writers[0]
            for batch in pq.ParquetFile(paths[1]).iter_batches():
                main = main or pq.ParquetWriter(path, batch.schema, compression="zstd")
                main.write_batch(batch)
            writers[0] = main
            paths[1].unlink()
    finally:
        for writer in writers:
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
