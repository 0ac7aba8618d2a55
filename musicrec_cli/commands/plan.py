"""`musicrec plan` and every stage's `--dry-run`: the resources a run will need, before it runs.

Reads only manifests, file footers and sizes (musicrec_cli.planning), computes the plan with
the pure functions of `stages.plan`, prints a table (or `--json`) and one warning per stage
that would not fit this machine. Takes no lock and writes nothing.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer

from musicrec_cli import console
from musicrec_cli.session import EXIT_RESOURCE, Session, session
from stages import plan as stage_plan

COLUMNS = ("stage", "peak memory", "disk written", "scratch disk", "time")


def show_plan(
    s: Session,
    stages: tuple[str, ...] = stage_plan.STAGES,
    *,
    as_json: bool = False,
    strict: bool = False,
    events: int | None = None,
    users: int | None = None,
    tracks: int | None = None,
) -> None:
    """Print the plan of `stages`; with `strict`, exit 4 when a stage would not fit or run."""
    # here, not at the top: planning imports pyarrow and psutil (~0.1 s), which every stage
    # command would pay for its --dry-run option
    from musicrec_cli import planning

    probe = dataclasses.replace(s, command="plan")  # a plan writes nothing: no lock
    cfg = probe.guard(probe.config)
    sizes = probe.guard(lambda: planning.sizes_of(cfg, events=events, users=users, tracks=tracks))
    plans = stage_plan.plan_run(sizes, planning.settings_of(cfg), stages)
    machine = planning.machine_of(cfg)
    problems = stage_plan.problems_for(plans, machine)
    warnings = problems + stage_plan.cautions_for(plans, machine)
    if as_json:
        text = json.dumps(planning.as_json(sizes, machine, plans, warnings), indent=2)
        console.print_json(text)
    else:
        title = f"Plan ({stage_plan.gib(machine.memory_bytes)} memory, "
        title += f"{stage_plan.gib(machine.disk_free_bytes)} free disk)"
        console.table(title, COLUMNS, planning.table_rows(plans), bold=set())
        for line in [*planning.detail_lines(plans), planning.sizes_line(sizes)]:
            console.note(line)
    for line in warnings:
        console.warning(line)
    if strict and problems:
        raise typer.Exit(EXIT_RESOURCE)


def plan(
    ctx: typer.Context,
    stage: Annotated[
        list[str] | None,
        typer.Option("--stage", help="Only this stage (repeatable); default: all six."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 4 if a stage would not fit this machine.")
    ] = False,
    events: Annotated[
        int | None,
        typer.Option(min=1, help="Plan for a raw log of this many events instead of this one."),
    ] = None,
    users: Annotated[int | None, typer.Option(min=1, help="Users, if known.")] = None,
    tracks: Annotated[int | None, typer.Option(min=1, help="Tracks, if known.")] = None,
) -> None:
    """Estimate each stage's peak memory, disk, batches and time: reads sizes, writes nothing.

    Counts come from the stage manifests where they exist, else from the raw files' Parquet
    footers or sizes (estimates are marked ~). Warns when a stage would not fit this machine's
    memory or free disk, and when train would refuse EASE (--strict: exit 4 then), and when
    a stage needs more memory than is available now.
    """
    chosen = tuple(stage or stage_plan.STAGES)
    unknown = [x for x in chosen if x not in stage_plan.STAGES]
    if unknown:
        msg = f"{unknown[0]!r} is not a stage; expected one of {', '.join(stage_plan.STAGES)}."
        raise typer.BadParameter(msg, param_hint="--stage")
    show_plan(
        session(ctx),
        chosen,
        as_json=as_json,
        strict=strict,
        events=events,
        users=users,
        tracks=tracks,
    )
