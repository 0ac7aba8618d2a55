"""The `musicrec` command: one thin command per stage, plus `generate` and `all`.

Errors a user can cause print one red line and exit with a documented code (docs/faults.md):
1 bad input, config or upstream artifact; 2 bad command-line usage (Typer); 3 the artifacts
directory is locked by another run; 4 out of disk or memory, or artifacts not writable;
130 Ctrl-C; 143 SIGTERM. `--debug` shows the traceback. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import polars as pl
import typer

from musicrec_cli import artifacts as art
from musicrec_cli import console, lock, report, serve, signals
from musicrec_cli.artifacts import STAGES, ArtifactError, ResourceError
from musicrec_cli.config import Config, ConfigError, load_config, table_dict
from musicrec_cli.runner import evaluate as evaluate_run
from musicrec_cli.runner import features as features_run
from musicrec_cli.runner import generate as generate_run
from musicrec_cli.runner import is_up_to_date
from musicrec_cli.runner import predict as predict_run
from musicrec_cli.runner import preprocess as preprocess_run
from musicrec_cli.runner import split as split_run
from musicrec_cli.runner import train as train_run
from musicrec_cli.sources import InputError
from stages.preprocess.formats import KNOWN_FORMATS
from stages.schema import SchemaError

app = typer.Typer(
    help="Music recommendations from listening logs: six stages, each rerunnable alone.\n\n"
    "preprocess -> split -> features -> train -> predict -> evaluate, each writing "
    "artifacts/NN_<stage>/ with a manifest.json. Settings come from musicrec.toml; "
    "--set table.key=value overrides one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

USER_ERRORS = (ConfigError, ArtifactError, SchemaError, InputError, pl.exceptions.PolarsError)
EXIT_USER_ERROR = 1
EXIT_USAGE = 2  # Typer's own code for a bad option or argument
EXIT_LOCKED = 3
EXIT_RESOURCE = 4
EXIT_INTERRUPTED = signals.EXIT_INTERRUPTED
EXIT_TERMINATED = signals.EXIT_TERMINATED
# commands that write stage folders, so take artifacts/.lock
LOCKING = frozenset({*STAGES, "all"})
T = TypeVar("T")


class _State:
    config_path: Path | None = None
    overrides: list[str] = []  # noqa: RUF012
    debug: bool = False
    command: str = ""
    wait: float = 0.0


_state = _State()


def _config() -> Config:
    return load_config(_state.config_path, _state.overrides)


def _lock_artifacts() -> None:
    """Take artifacts/.lock for a writing command, then clean up after killed runs."""
    if _state.command not in LOCKING:
        return
    root = Path(_config().paths.artifacts)
    if lock.holds(root):
        return
    lock.acquire(root, command=f"musicrec {_state.command}", wait_seconds=_state.wait)
    art.recover(root)


def _input_hint() -> str:
    """What the running command reads, for errors that do not name their file (Polars, gzip)."""
    key = "raw" if _state.command in ("preprocess", "all") else "artifacts"
    try:
        return f"[paths].{key} = {getattr(_config().paths, key)}"
    except ConfigError:
        return f"[paths].{key}"


def _one_line(exc: BaseException) -> str:
    """The error as one line, naming the file where the exception does not."""
    if isinstance(exc, MemoryError):
        return (
            f"out of memory while running `musicrec {_state.command}`; lower "
            "[predict].block_size or the data size, or free memory, and rerun."
        )
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or ' '.join(lines)}."
    if isinstance(exc, pl.exceptions.PolarsError | OSError):
        # Polars' first line is the message; the rest is a hint or a context stack
        first = lines[0] if lines else ""
        return f"musicrec {_state.command}: reading {_input_hint()}: {type(exc).__name__}: {first}"
    return " ".join(lines) or type(exc).__name__


def _guard(work: Callable[[], T]) -> T:
    """Run `work` under the artifacts lock, turning user errors into one red line and an exit code.

    The codes are the EXIT_* constants above; `--debug` re-raises instead, with the traceback.
    Exceptions not listed here are bugs and propagate with their traceback.
    """
    signals.state.guarded += 1
    try:
        _lock_artifacts()
        return work()
    except (*USER_ERRORS, MemoryError, OSError) as exc:
        if _state.debug:
            raise
        code = EXIT_USER_ERROR
        if isinstance(exc, lock.LockedError):
            code = EXIT_LOCKED
        elif isinstance(exc, ResourceError | MemoryError) or (
            isinstance(exc, OSError) and exc.errno in art.RESOURCE_ERRNOS
        ):
            code = EXIT_RESOURCE
        console.error(_one_line(exc))
        raise typer.Exit(code) from None
    except KeyboardInterrupt as exc:
        console.error(signals.message(exc))
        raise typer.Exit(signals.exit_code(exc)) from None
    finally:
        signals.state.guarded -= 1


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
    _state.config_path, _state.overrides, _state.debug = config, list(set_ or []), debug
    _state.command, _state.wait = ctx.invoked_subcommand or "", wait
    console.setup_logging(verbose=verbose, quiet=quiet)
    signals.install()
    ctx.call_on_close(lock.release_all)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder for listens/ and tracks.parquet.")] = Path(
        "data/raw"
    ),
    events: Annotated[
        int | None, typer.Option(help="Number of plays (default [generate]).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default [generate].seed).")] = None,
) -> None:
    """Generate the built-in synthetic dataset: writes OUT/listens/*.parquet, OUT/tracks.parquet.

    Zipf-like users and tracks, genre tastes, a year of plays with skips, messy names.
    Deterministic for a seed; written in chunks, so --events 800000000 runs in bounded memory.
    """
    extra = [f"generate.events={events}"] * (events is not None) + [f"generate.seed={seed}"] * (
        seed is not None
    )
    _state.overrides += extra
    text = _guard(lambda: generate_run.run_generate(_config(), out=out))
    console.summary("generate", text)


@app.command("preprocess")
def preprocess_cmd(
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help=f"Format of the raw log, one of {', '.join(KNOWN_FORMATS)} "
            "(default: preprocess.format in the config).",
        ),
    ] = None,
) -> None:
    """Clean the raw log and encode ids: reads [paths].raw and .catalog, writes 01_preprocess/.

    Outputs: plays.parquet (clean plays), events.parquet (one row per user-track pair),
    items.parquet, users.parquet, id_map_tracks.parquet, id_map_artists.parquet,
    interaction_matrix.npz, quality_report.json.
    """
    if fmt is not None:
        if fmt not in KNOWN_FORMATS:
            msg = f"{fmt!r} is not a known format; expected one of {', '.join(KNOWN_FORMATS)}."
            raise typer.BadParameter(msg, param_hint="--format")
        _state.overrides.append(f"preprocess.format={fmt}")
    console.summary("preprocess", _guard(lambda: preprocess_run.run_preprocess(_config())))


@app.command("split")
def split_cmd() -> None:
    """Split plays at a time cut-off: reads 01_preprocess/, writes 02_split/.

    Outputs: train.parquet, test.parquet (pairs first played after the cut-off, known users and
    tracks only), train_matrix.npz, test_matrix.npz.
    """
    console.summary("split", _guard(lambda: split_run.run_split(_config())))


@app.command("features")
def features_cmd() -> None:
    """Weight interactions and describe users and tracks: reads 02_split/, writes 03_features/.

    Outputs: features_train.parquet (with confidence weight), features_test.parquet,
    item_features.parquet, user_features.parquet.
    """
    console.summary("features", _guard(lambda: features_run.run_features(_config())))


@app.command("train")
def train_cmd() -> None:
    """Fit the models in [train].models: reads 03_features/, writes 04_train/.

    Outputs: <model>.npz per model, models.json (settings), metrics.json (training times).
    """
    console.summary("train", _guard(lambda: train_run.run_train(_config())))


@app.command("predict")
def predict_cmd(
    users: Annotated[
        Path | None,
        typer.Option(
            "--users",
            exists=True,
            dir_okay=False,
            readable=True,
            help="Only these users: one user_id per line, or a .parquet/.csv with a user_id "
            "column. Unknown ids are reported and skipped.",
        ),
    ] = None,
) -> None:
    """Top-N unheard tracks per user and model: reads 04_train/, writes 05_predict/.

    Outputs: predictions.parquet (user_id, user_idx, rank, track_id, track_idx, track_group_id,
    score, model, generated_at), with re-ranked lists as model "<name>+rerank", and
    similar_tracks.parquet (top-K neighbours per track by item-factor cosine). The folder is
    replaced only when complete, so a failed run leaves the previous predictions in place.
    """
    console.summary("predict", _guard(lambda: predict_run.run_predict(_config(), users_file=users)))


def _print_metrics(content: dict[str, Any], k: int | None) -> None:
    """Models x metrics at one K on stderr: a ranking table and a beyond-accuracy table."""
    for title, columns, rows, bold in report.terminal_tables(content, k=k):
        console.table(title, columns, rows, bold=bold)
    console.note(
        report.LEGEND + (f" Grey: lift over {content['baseline']}." if content["baseline"] else "")
    )


@app.command("evaluate")
def evaluate_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics.json to stdout.")] = False,
    k: Annotated[
        int | None, typer.Option("--k", help="Cut-off shown in the table (default 10).")
    ] = None,
) -> None:
    """Score predictions against the test set: reads 05_predict/, 02_split/, writes 06_evaluate/.

    Outputs: metrics.json (per model at each K: precision, recall, NDCG, MAP, MRR, hit rate,
    coverage, artist diversity, audio distance, novelty, popularity; lift over the baseline)
    and per_user_metrics.parquet. Definitions: docs/evaluation.md.
    """
    cfg = _guard(_config)
    ks = sorted(set(cfg.evaluate.k))
    if k is not None and k not in ks:
        msg = f"{k} is not one of the cut-offs {ks} (evaluate.k in the config)."
        raise typer.BadParameter(msg, param_hint="--k")
    text, _, content = _guard(lambda: evaluate_run.run_evaluate(cfg))
    _print_metrics(content, k)
    if as_json:
        console.print_json(json.dumps(content, indent=2, sort_keys=True))
    console.summary("evaluate", text)


app.command()(serve.recommend)
app.command()(serve.similar)
app.command()(serve.explain)


@app.command("report")
def report_cmd(
    out: Annotated[
        Path | None,
        typer.Option(help="Report folder (default <artifacts>/06_evaluate/report)."),
    ] = None,
    k: Annotated[
        int | None, typer.Option("--k", help="Cut-off of the distributions (default 10).")
    ] = None,
) -> None:
    """Write an HTML report with plots: reads 06_evaluate/ and its inputs, writes OUT/.

    OUT/index.html is self-contained (plots embedded as PNG) and opens without a server; the
    PNGs are also written beside it.
    """
    cfg = _guard(_config)
    root = Path(cfg.paths.artifacts)
    folder = out or root / "06_evaluate" / "report"
    page = _guard(lambda: report.build_report(root, folder, k=k))
    console.summary("report", f"{page}")


@app.command("stamp-config", hidden=True)
def stamp_config_cmd(
    folder: Annotated[Path, typer.Argument(help="Where to write <stage>.json stamps.")],
) -> None:
    """Write each stage's resolved settings to FOLDER/<stage>.json, only where they changed.

    The Makefile makes each stage depend on its stamp, so editing one table of musicrec.toml
    reruns that stage and what follows it, and nothing before it.
    """
    cfg = _guard(_config)
    folder.mkdir(parents=True, exist_ok=True)
    for stage in ("generate", *STAGES):
        settings = table_dict(getattr(cfg, stage))
        if stage == "preprocess":
            settings |= {"paths": table_dict(cfg.paths)}
        text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
        path = folder / f"{stage}.json"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)


@app.command("all")
def all_cmd(
    force: Annotated[
        bool, typer.Option("--force", help="Rerun stages that are up to date.")
    ] = False,
) -> None:
    """Run the six stages in order, skipping those whose inputs and settings have not changed."""
    cfg = _guard(_config)
    commands: dict[str, Callable[[], None]] = {
        "preprocess": preprocess_cmd,
        "split": split_cmd,
        "features": features_cmd,
        "train": train_cmd,
        "predict": lambda: predict_cmd(None),
        "evaluate": lambda: evaluate_cmd(False, None),
    }
    for stage in STAGES:
        if not force and is_up_to_date(cfg, stage):
            console.note(f"{stage}: up to date, skipped")
            continue
        commands[stage]()
