"""`musicrec report`: the HTML report of the latest evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from musicrec_cli import artifacts as art
from musicrec_cli import console, owned
from musicrec_cli.lineage import check_chain
from musicrec_cli.report import html as report
from musicrec_cli.session import session


def report_cmd(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Report folder (default <artifacts>/report). A new folder, or one an earlier "
            "`musicrec report` wrote; any other folder is refused, never emptied."
        ),
    ] = None,
    k: Annotated[
        int | None, typer.Option("--k", help="Cut-off of the distributions (default 10).")
    ] = None,
) -> None:
    """Write an HTML report with plots: reads 06_evaluate/ and its inputs, writes OUT/.

    OUT/index.html is self-contained (plots embedded as PNG) and opens without a server; the
    PNGs are also written beside it. OUT is replaced only when the new report is complete.
    """
    s = session(ctx)

    def work() -> Path:
        root = s.artifacts
        check_chain(root, ("evaluate",))
        folder = out or art.report_dir(root)
        with owned.replacing(folder, "report", what="the report") as partial:
            report.build_report(root, partial, k=k)
        return folder / "index.html"

    console.summary("report", f"{s.guard(work)}")
