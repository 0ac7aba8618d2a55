"""Write the built-in synthetic dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

from musicrec_cli.config import Config
from musicrec_cli.console import progress
from stages.generate import make_events, make_world


def run_generate(cfg: Config, *, out: Path) -> str:
    """Write the synthetic log as Parquet chunks to `out`/listens and the catalog beside it."""
    g = cfg.generate
    listens = out / "listens"
    partial = out / ".listens.partial"
    world = make_world(n_users=g.users, n_tracks=g.tracks, n_genres=g.genres, seed=g.seed)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    n_chunks = -(-g.events // g.chunk_events)
    with progress("generate", n_chunks) as bar:
        for chunk in range(n_chunks):
            size = min(g.chunk_events, g.events - chunk * g.chunk_events)
            events = make_events(world, n_events=size, seed=g.seed * 1_000_003 + chunk)
            events.write_parquet(partial / f"part-{chunk:05d}.parquet", compression="zstd")
            bar.advance(0)
    catalog_tmp = out / ".tracks.parquet.partial"
    world.catalog.write_parquet(catalog_tmp, compression="zstd")
    shutil.rmtree(listens, ignore_errors=True)
    partial.replace(listens)
    catalog_tmp.replace(out / "tracks.parquet")
    return f"{g.events:,} plays by {g.users:,} users of {g.tracks:,} tracks -> {out}"
