"""The `musicrec` command group: builds the per-run Session and registers the commands.

The commands live in `musicrec_cli/commands/` (generate, pipeline: one a stage, whole: all and
stamp-config, query, report, serve, tune) and take the Session from Typer's context; the exit
codes and the error guard are in `musicrec_cli/session.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from musicrec_cli import console, lock, signals
from musicrec_cli.commands import generate, pipeline, plan, query, serve, tune, whole
from musicrec_cli.commands.report import report_cmd
from musicrec_cli.session import Session

app = typer.Typer(
    help="Music recommendations from listening logs: six stages, each rerunnable alone.\n\n"
    "preprocess -> split -> features -> train -> predict -> evaluate, each writing "
    "artifacts/NN_<stage>/ with a manifest.json. Settings come from musicrec.toml; "
    "--set table.key=value overrides one. --engine spark runs preprocess, split, features, "
    "train (ALS) and predict (ALS lists, and the candidates the driver re-ranks) on "
    "Apache Spark; evaluate, report and the queries read the same files on Polars (pip "
    "install 'musicrec[spark]'; README: Scaling out).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # help texts name settings as [table].key: plain text, never Rich markup
    rich_markup_mode=None,
)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config file (default ./musicrec.toml).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one setting, e.g. --set train.factors=128."),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            metavar="SECONDS",
            help="If another run holds the artifacts directory, wait this long for it (exit 3).",
        ),
    ] = 0.0,
) -> None:
    """Music recommendations from listening logs."""
    ctx.obj = Session(
        config_path=config,
        overrides=tuple(set_ or ()),
        command=ctx.invoked_subcommand or "",
        debug=debug,
        wait=wait,
    )
    console.setup_logging(verbose=verbose, quiet=quiet)
    signals.install()
    ctx.call_on_close(lock.release_all)


app.command()(generate.generate)
app.command()(pipeline.preprocess)
app.command()(pipeline.split)
app.command()(pipeline.features)
app.command()(pipeline.train)
app.command()(tune.tune)
app.command()(pipeline.predict)
app.command()(pipeline.evaluate)
app.command()(query.recommend)
app.command()(query.similar)
app.command()(query.explain)
app.command()(serve.serve)
app.command("report")(report_cmd)
app.command()(plan.plan)
app.command("stamp-config", hidden=True)(whole.stamp_config)
app.command("all")(whole.all_stages)
