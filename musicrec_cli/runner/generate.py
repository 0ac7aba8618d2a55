"""Write the built-in synthetic dataset: Parquet part files, generated in parallel, then renamed.

The output folder belongs to `generate` (musicrec_cli.owned): it is claimed with a marker before
anything is written, and a folder holding anything else is refused, never emptied.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from musicrec_cli import owned
from musicrec_cli.config import Config, GenerateConfig
from musicrec_cli.console import progress
from stages.generate import World, make_events, make_world


@functools.lru_cache(maxsize=1)
def _world(g: GenerateConfig) -> World:
    """The world of settings `g`, built once per process (and per worker) for those settings."""
    return make_world(n_users=g.users, n_tracks=g.tracks, n_genres=g.genres, seed=g.seed)


def _write_chunk(g: GenerateConfig, chunk: int, folder: Path) -> int:
    """Draw chunk number `chunk` and write it as one Parquet part file.

    The chunk is seeded by its number, so the output does not depend on which worker draws it.
    """
    size = min(g.chunk_events, g.events - chunk * g.chunk_events)
    events = make_events(_world(g), n_events=size, seed=g.seed * 1_000_003 + chunk)
    events.write_parquet(folder / f"part-{chunk:05d}.parquet", compression="zstd")
    return size


def run_generate(cfg: Config, *, out: Path) -> str:
    """Write `out`/listens/part-*.parquet and `out`/tracks.parquet; replaces earlier data whole.

    Raises:
        NotOwnedError: `out` holds files that an earlier `musicrec generate` did not write.
    """
    g = cfg.generate
    listens, partial = out / "listens", out / ".listens.partial"
    owned.claim(out, "generate", what="the generated data")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    n_chunks = -(-g.events // g.chunk_events)
    workers = min(n_chunks, os.cpu_count() or 1, 2)
    try:
        with progress("generate", n_chunks) as step:
            if workers == 1:
                for chunk in range(n_chunks):
                    _write_chunk(g, chunk, partial)
                    step()
            else:
                # spawn, not fork: Polars' thread pool is not fork-safe
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(workers, context, _world, (g,)) as pool:
                    jobs = [pool.submit(_write_chunk, g, c, partial) for c in range(n_chunks)]
                    for job in as_completed(jobs):
                        job.result()
                        step()
        catalog_tmp = out / ".tracks.parquet.partial"
        _world(g).catalog.write_parquet(catalog_tmp, compression="zstd")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(listens, ignore_errors=True)
    partial.replace(listens)
    catalog_tmp.replace(out / "tracks.parquet")
    return f"{g.events:,} plays by {g.users:,} users of {g.tracks:,} tracks -> {out}"
