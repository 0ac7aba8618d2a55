"""Commands over the whole pipeline: `musicrec all` and the Makefile's `stamp-config`.

Both decide per stage from the same two things: its settings (one table of musicrec.toml) and
its code fingerprint (musicrec_cli.codehash).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from musicrec_cli import console
from musicrec_cli.artifacts import STAGES
from musicrec_cli.codehash import source_fingerprint
from musicrec_cli.commands.pipeline import DryRun, Engine, SparkMaster, with_engine
from musicrec_cli.commands.plan import show_plan
from musicrec_cli.commands.runs import STAGE_RUNS
from musicrec_cli.config import table_dict
from musicrec_cli.runner import is_up_to_date
from musicrec_cli.session import session
from musicrec_cli.sources import resolve_raw


def all_stages(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Rerun stages that are up to date.")
    ] = False,
    engine: Engine = None,
    spark_master: SparkMaster = None,
    dry_run: DryRun = False,
) -> None:
    """Run the six stages in order, skipping those whose inputs, settings and code are unchanged."""
    s = with_engine(session(ctx), engine, spark_master)
    if dry_run:
        show_plan(s)
        return
    cfg = s.guard(s.config)
    for stage, run in STAGE_RUNS.items():
        if not force and is_up_to_date(cfg, stage):
            console.note(f"{stage}: up to date, skipped")
            continue
        run(s)


def stamp_config(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Where to write <stage>.json stamps.")],
) -> None:
    """Write each stage's settings and code fingerprint to FOLDER/<stage>.json, where changed.

    The Makefile makes each stage depend on its stamp, so editing one table of musicrec.toml,
    or the code of one stage, reruns that stage and what follows it, and nothing before it.
    """
    s = session(ctx)
    cfg = s.guard(s.config)
    folder.mkdir(parents=True, exist_ok=True)
    for stage in ("generate", *STAGES):
        settings = table_dict(getattr(cfg, stage))
        if stage == "preprocess":
            settings |= {"paths": table_dict(resolve_raw(cfg.paths))}
        stamp = {"config": settings, "source_sha256": source_fingerprint(stage)}
        text = json.dumps(stamp, indent=2, sort_keys=True) + "\n"
        path = folder / f"{stage}.json"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
