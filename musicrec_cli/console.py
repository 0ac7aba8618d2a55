"""The stderr and stdout Consoles, logging setup, progress bars and tables: the only Rich user.

Results (tables, JSON) go to stdout, everything else (logs, progress, summaries, errors) to
stderr. Nothing printed here is read as Rich markup: names such as "[dunkelbunt]" or
"Gold [/] Fire" are data. When a stream is not a terminal (cron, a pipe) nothing is wrapped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

console = Console(stderr=True)
stdout = Console()
# width of a table printed to a pipe or file: wide enough that no row is ever wrapped
_UNWRAPPED = 10_000


def setup_logging(*, verbose: int, quiet: bool) -> None:
    """INFO by default, DEBUG with -v, WARNING with -q; messages go to stderr.

    On a terminal through Rich; elsewhere as plain `LEVEL message` lines, never wrapped.
    """
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, markup=False, show_path=False, show_time=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(console.file)
        fmt = "%(levelname)s %(message)s"
    logging.basicConfig(level=level, handlers=[handler], format=fmt, force=True)


def _chatty() -> bool:
    """False under -q: success and note lines are left out, warnings and errors are not."""
    return logging.getLogger().isEnabledFor(logging.INFO)


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


def _line(*parts: tuple[str, str]) -> Text:
    """Literal text in styled pieces (never parsed as markup)."""
    return Text.assemble(*parts)


def summary(stage: str, text: str) -> None:
    """The one-line summary each command ends with (left out under -q)."""
    if _chatty():
        console.print(_line((f"✓ {stage} ", "bold green"), (text, "")), soft_wrap=True)


def note(text: str) -> None:
    """An informational line, e.g. a stage skipped as up to date (left out under -q)."""
    if _chatty():
        console.print(_line((text, "dim")), soft_wrap=True)


def error(text: str) -> None:
    """One red line on stderr; `text` is printed as is ("[train].factors" is not markup)."""
    console.print(_line(("error:", "bold red"), (" " + text, "")), soft_wrap=True)


def warning(text: str) -> None:
    """One yellow line on stderr (shown under -q too); `text` is printed as is."""
    console.print(_line(("warning:", "bold yellow"), (" " + text, "")), soft_wrap=True)


def _cell(value: str, *, bold: bool) -> Text:
    """A table cell: its first line as the value, further lines dim (e.g. a lift under it)."""
    first, _, rest = value.partition("\n")
    cell = Text(first, style="bold green" if bold else "")
    if rest:
        cell.append("\n" + rest, style="dim")
    return cell


def table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    bold: set[tuple[int, int]],
    to_stderr: bool = False,
) -> None:
    """Print a result table to stdout; cells at (row, column) in `bold` are highlighted.

    Cells are plain text, never markup; a second line of a cell is printed dim. `to_stderr`:
    the table is for the reader only, because stdout carries another result (e.g. JSON).
    """
    out = Table(title=Text(title), title_justify="left")
    for i, name in enumerate(columns):
        out.add_column(Text(name), justify="left" if i == 0 else "right")
    for r, row in enumerate(rows):
        out.add_row(*(_cell(v, bold=(r, c) in bold) for c, v in enumerate(row)))
    where = console if to_stderr else stdout
    where.print(out, width=None if where.is_terminal else _UNWRAPPED)


def print_json(text: str) -> None:
    """Machine-readable output on stdout, without markup or wrapping."""
    stdout.print(text, markup=False, highlight=False, soft_wrap=True)
