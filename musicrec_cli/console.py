"""The one stderr Console, logging setup, progress bars and tables: the only module using Rich."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console(stderr=True)
stdout = Console()


def setup_logging(*, verbose: int, quiet: bool) -> None:
    """INFO by default, DEBUG with -v, WARNING with -q; messages go to stderr through Rich."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = RichHandler(console=console, markup=False, show_path=False, show_time=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)


@contextmanager
def progress(description: str, total: float | None) -> Iterator[Callable[[], None]]:
    """A Rich progress bar; yields `step()`, which advances it by one of `total` steps.

    The bar is silent when stderr is not a terminal.
    """
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def summary(stage: str, text: str) -> None:
    """The one-line summary each command ends with."""
    console.print(f"[bold green]✓ {stage}[/] {escape(text)}", highlight=False)


def note(text: str) -> None:
    """An informational line (e.g. a stage skipped as up to date)."""
    console.print(f"[dim]{escape(text)}[/]", highlight=False)


def error(text: str) -> None:
    """One red line on stderr; `text` is printed as is ("[train].factors" is not markup)."""
    console.print(
        f"[bold red]error:[/] {escape(text)}", highlight=False, markup=True, soft_wrap=True
    )


def table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], *, bold: set[tuple[int, int]]
) -> None:
    """Print a table to stderr; cells at (row, column) in `bold` are highlighted.

    Cells may carry Rich markup (e.g. "[dim]+12%[/]"); callers escape any user text in them.
    """
    out = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        out.add_column(name, justify="left" if i == 0 else "right")
    for r, row in enumerate(rows):
        out.add_row(*(f"[bold green]{v}[/]" if (r, c) in bold else v for c, v in enumerate(row)))
    console.print(out)


def print_json(text: str) -> None:
    """Machine-readable output on stdout, without markup or wrapping."""
    stdout.print(text, markup=False, highlight=False, soft_wrap=True)
