"""Write the built-in synthetic dataset: Parquet part files, generated in parallel, then renamed."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from musicrec_cli.config import Config, GenerateConfig
from musicrec_cli.console import progress
from stages.generate import World, make_events, make_world

_world: World | None = None


def _build_world(g: GenerateConfig) -> World:
    return make_world(n_users=g.users, n_tracks=g.tracks, n_genres=g.genres, seed=g.seed)


def _init_worker(g: GenerateConfig) -> None:
    global _world  # noqa: PLW0603 - one world per worker process, built once
    _world = _build_world(g)


def _write_chunk(g: GenerateConfig, chunk: int, folder: Path) -> int:
    """Draw chunk number `chunk` and write it as one Parquet part file.

    The chunk is seeded by its number, so the output does not depend on which worker draws it.
    """
    assert _world is not None
    size = min(g.chunk_events, g.events - chunk * g.chunk_events)
    events = make_events(_world, n_events=size, seed=g.seed * 1_000_003 + chunk)
    events.write_parquet(folder / f"part-{chunk:05d}.parquet", compression="zstd")
    return size


def run_generate(cfg: Config, *, out: Path) -> str:
    """Write `out`/listens/part-*.parquet and `out`/tracks.parquet; replaces earlier data whole."""
    g = cfg.generate
    listens, partial = out / "listens", out / ".listens.partial"
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    n_chunks = -(-g.events // g.chunk_events)
    workers = min(n_chunks, os.cpu_count() or 1, 2)
    try:
        with progress("generate", n_chunks) as step:
            if workers == 1:
                _init_worker(g)
                for chunk in range(n_chunks):
                    _write_chunk(g, chunk, partial)
                    step()
            else:
                # spawn, not fork: Polars' thread pool is not fork-safe
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(workers, context, _init_worker, (g,)) as pool:
                    jobs = [pool.submit(_write_chunk, g, c, partial) for c in range(n_chunks)]
                    for job in as_completed(jobs):
                        job.result()
                        step()
        catalog_tmp = out / ".tracks.parquet.partial"
        (_world or _build_world(g)).catalog.write_parquet(catalog_tmp, compression="zstd")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(listens, ignore_errors=True)
    partial.replace(listens)
    catalog_tmp.replace(out / "tracks.parquet")
    return f"{g.events:,} plays by {g.users:,} users of {g.tracks:,} tracks -> {out}"
