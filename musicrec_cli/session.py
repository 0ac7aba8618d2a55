"""Per-run state of one `musicrec` invocation, the error guard and the exit codes.

The group callback in app.py builds one `Session` and puts it in Typer's context (`ctx.obj`);
every command takes it back with `session(ctx)`. Nothing here is module-level mutable state, so
two invocations in one process (CliRunner tests) cannot see each other's settings.

Errors a user can cause print one red line and exit with a documented code (docs/faults.md):
1 bad input, config or upstream artifact; 2 bad command-line usage (Typer); 3 the artifacts
directory is locked by another run; 4 out of disk or memory, or artifacts not writable;
130 Ctrl-C; 143 SIGTERM. `--debug` shows the traceback. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import polars as pl
import typer

from musicrec_cli import artifacts as art
from musicrec_cli import console, lock, signals
from musicrec_cli.artifacts import STAGES, ArtifactError, ResourceError
from musicrec_cli.config import DEFAULT_CONFIG, Config, ConfigError
from musicrec_cli.config_load import load_config
from musicrec_cli.sources import InputError, resolve_raw
from stages.models import MemoryPlanError
from stages.schema import SchemaError

USER_ERRORS = (ConfigError, ArtifactError, SchemaError, InputError)
# Polars errors that only musicrec's own code causes: inputs are checked at the edges (schemas,
# config), so a missing column or a bad expression past them is a bug and keeps its traceback
POLARS_BUGS = (
    pl.exceptions.ColumnNotFoundError,
    pl.exceptions.SchemaFieldNotFoundError,
    pl.exceptions.StructFieldNotFoundError,
    pl.exceptions.DuplicateError,
    pl.exceptions.ShapeError,
    pl.exceptions.InvalidOperationError,
    pl.exceptions.SQLInterfaceError,
    pl.exceptions.SQLSyntaxError,
)
EXIT_USER_ERROR = 1
EXIT_USAGE = 2  # Typer's own code for a bad option or argument
EXIT_LOCKED = 3
EXIT_RESOURCE = 4
EXIT_INTERRUPTED = signals.EXIT_INTERRUPTED
EXIT_TERMINATED = signals.EXIT_TERMINATED
# commands that write stage folders, so take artifacts/.lock
LOCKING = frozenset({*STAGES, "all"})
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """What one invocation was asked to do: config source, overrides, command and flags.

    Attributes:
        config_path: `--config`, or None for ./musicrec.toml.
        overrides: `--set` values, then the command's own options (e.g. `generate --events`).
        flags: (override, option as typed) for the overrides that came from an option, so a
            bad value is blamed on `--events 0`, not on musicrec.toml or `--set`.
        command: The subcommand's name, e.g. "predict"; it decides whether the lock is taken.
        debug: Re-raise user errors with their traceback instead of one line.
        wait: Seconds to wait for another run's artifacts lock.
    """

    config_path: Path | None = None
    overrides: tuple[str, ...] = ()
    flags: tuple[tuple[str, str], ...] = ()
    command: str = ""
    debug: bool = False
    wait: float = 0.0
    _cache: dict[str, Config] = field(default_factory=dict, compare=False, repr=False)

    def with_overrides(self, *extra: str) -> Session:
        """The same session with more `table.key=value` overrides, blamed as `--set`."""
        return dataclasses.replace(self, overrides=(*self.overrides, *extra), _cache={})

    def with_option(self, override: str, flag: str) -> Session:
        """The same session with a command option's `table.key=value` override."""
        return dataclasses.replace(
            self,
            overrides=(*self.overrides, override),
            flags=(*self.flags, (override, flag)),
            _cache={},
        )

    def config(self) -> Config:
        """The resolved configuration (read once per session)."""
        if "config" not in self._cache:
            self._cache["config"] = load_config(
                self.config_path, self.overrides, flags=dict(self.flags)
            )
        return self._cache["config"]

    @property
    def artifacts(self) -> Path:
        """The artifacts directory of the resolved configuration."""
        return Path(self.config().paths.artifacts)

    def guard(self, work: Callable[[], T]) -> T:
        """Run `work` under the artifacts lock, turning user errors into one line and an exit code.

        The codes are the EXIT_* constants of this module; `--debug` re-raises instead, with the
        traceback. Exceptions not listed here are bugs and propagate with their traceback.
        """
        signals.state.guarded += 1
        try:
            self._lock_artifacts()
            return work()
        except (*USER_ERRORS, pl.exceptions.PolarsError, MemoryError, OSError) as exc:
            if self.debug or _is_bug(exc):
                raise
            console.error(self._one_line(exc))
            raise typer.Exit(_exit_code(exc)) from None
        except KeyboardInterrupt as exc:
            console.error(signals.message(exc))
            raise typer.Exit(signals.exit_code(exc)) from None
        finally:
            signals.state.guarded -= 1

    def _lock_artifacts(self) -> None:
        """Take artifacts/.lock for a writing command, then clean up after killed runs."""
        if self.command not in LOCKING:
            return
        self._check_project()
        root = self.artifacts
        if lock.holds(root):
            return
        lock.acquire(root, command=f"musicrec {self.command}", wait_seconds=self.wait)
        art.recover(root)

    def _check_project(self) -> None:
        """Say when the built-in defaults are used; refuse when they point at nothing.

        Run outside a project folder, a writing command would otherwise create ./artifacts/
        and fail on data that was never there.
        """
        if self.config_path is not None or DEFAULT_CONFIG.is_file():
            return
        cfg = self.config()
        raw = resolve_raw(cfg.paths).raw
        here = Path.cwd()
        if not (Path(cfg.paths.artifacts).is_dir() or Path(raw).exists()):
            msg = (
                f"{here}: no {DEFAULT_CONFIG} here and no data at {raw}; run musicrec in a "
                "project folder, or pass --config FILE."
            )
            raise ConfigError(msg)
        log.info("no %s in %s: using the built-in defaults", DEFAULT_CONFIG, here)

    def _input_hint(self) -> str:
        """What the running command reads, for errors that do not name their file (Polars)."""
        key = "raw" if self.command in ("preprocess", "all") else "artifacts"
        try:
            return f"[paths].{key} = {getattr(self.config().paths, key)}"
        except ConfigError:
            return f"[paths].{key}"

    def _one_line(self, exc: BaseException) -> str:
        """The error as one line, naming the file where the exception does not."""
        if isinstance(exc, MemoryPlanError):
            return str(exc)  # says what it would need and what to use instead
        if isinstance(exc, MemoryError):
            return (
                f"out of memory while running `musicrec {self.command}`; lower "
                "[predict].block_size or the data size, or free memory, and rerun."
            )
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        if isinstance(exc, OSError) and exc.filename:
            return f"{exc.filename}: {exc.strerror or ' '.join(lines)}."
        if isinstance(exc, pl.exceptions.PolarsError | OSError):
            # Polars' first line is the message; the rest is a hint or a context stack
            first = lines[0] if lines else ""
            what = f"{type(exc).__name__}: {first}"
            return f"musicrec {self.command}: reading {self._input_hint()}: {what}"
        return " ".join(lines) or type(exc).__name__


def _is_bug(exc: BaseException) -> bool:
    """True for a Polars error our own code caused (unless it is the disk filling up)."""
    return isinstance(exc, POLARS_BUGS) and art.out_of_resources(exc) is None


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, lock.LockedError):
        return EXIT_LOCKED
    if isinstance(exc, ResourceError | MemoryError) or art.out_of_resources(exc) is not None:
        return EXIT_RESOURCE
    return EXIT_USER_ERROR


def session(ctx: typer.Context) -> Session:
    """The Session the group callback stored in the context (a default one outside the app)."""
    found = ctx.find_object(Session)
    return found if found is not None else Session(command=ctx.info_name or "")
