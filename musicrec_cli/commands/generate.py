"""`musicrec generate`: the built-in synthetic dataset, written where preprocess finds it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from musicrec_cli import console
from musicrec_cli.runner import generate as generate_run
from musicrec_cli.session import session
from musicrec_cli.sources import GENERATED


def generate(
    ctx: typer.Context,
    out: Annotated[
        Path,
        typer.Option(
            help="Folder for listens/ and tracks.parquet: new, or one generate wrote before. "
            "preprocess reads it when [paths].raw is the default and data/raw/listens is empty."
        ),
    ] = GENERATED,
    events: Annotated[
        int | None, typer.Option(help="Number of plays (default [generate].events).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default [generate].seed).")] = None,
) -> None:
    """Generate the built-in synthetic dataset: writes OUT/listens/*.parquet, OUT/tracks.parquet.

    OUT belongs to generate (a marker file says so); a folder with other files is refused.
    Zipf-like users and tracks, genre tastes, a year of plays with skips, messy names.
    Deterministic for a seed; written in chunks, so --events 800000000 runs in bounded memory.
    """
    s = session(ctx)
    if events is not None:
        s = s.with_option(f"generate.events={events}", f"--events {events}")
    if seed is not None:
        s = s.with_option(f"generate.seed={seed}", f"--seed {seed}")
    console.summary("generate", s.guard(lambda: generate_run.run_generate(s.config(), out=out)))
