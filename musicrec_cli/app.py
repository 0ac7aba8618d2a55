"""The `musicrec` command: one thin command per stage, plus `generate` and `all`.

Errors a user can cause (bad config, missing or bad input, missing upstream artifacts) print one
red line and exit 1; `--debug` shows the traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import polars as pl
import typer

from musicrec_cli import console
from musicrec_cli.artifacts import STAGES, ArtifactError
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
from stages.formats import KNOWN_FORMATS
from stages.schema import MODEL, SchemaError

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
EXIT_INTERRUPTED = 130
T = TypeVar("T")


class _State:
    config_path: Path | None = None
    overrides: list[str] = []  # noqa: RUF012
    debug: bool = False


_state = _State()


def _config() -> Config:
    return load_config(_state.config_path, _state.overrides)


def _guard(work: Callable[[], T]) -> T:
    """Run `work`, turning user errors into one red line and exit code 1."""
    try:
        return work()
    except USER_ERRORS as exc:
        if _state.debug:
            raise
        console.error(
            str(exc).strip().splitlines()[0]
            if isinstance(exc, pl.exceptions.PolarsError)
            else str(exc)
        )
        raise typer.Exit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt:
        console.error("interrupted; finished stages are kept, the current one was discarded.")
        raise typer.Exit(EXIT_INTERRUPTED) from None


@app.callback()
def main(
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
) -> None:
    """Music recommendations from listening logs."""
    _state.config_path, _state.overrides, _state.debug = config, list(set_ or []), debug
    console.setup_logging(verbose=verbose, quiet=quiet)


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
def predict_cmd() -> None:
    """Top-N unheard tracks per user and model: reads 04_train/, writes 05_predict/.

    Output: predictions.parquet (user_idx, user_id, rank, track_idx, track_id, score, model).
    """
    console.summary("predict", _guard(lambda: predict_run.run_predict(_config())))


def _print_metrics(summary: pl.DataFrame, ks: tuple[int, ...]) -> None:
    k = 10 if 10 in ks else ks[0]
    names = ["precision", "recall", "ndcg", "map", "mrr", "hit_rate", "coverage"]
    columns = [f"{m}@{k}" for m in names]
    rows = [[row[MODEL], *(f"{row[c]:.4f}" for c in columns)] for row in summary.to_dicts()]
    best = {(int(summary[c].arg_max() or 0), j + 1) for j, c in enumerate(columns)}
    console.table(
        f"Evaluation at K={k} ({summary['n_users'][0]:,} test users)",
        ["model", *columns],
        rows,
        bold=best,
    )


@app.command("evaluate")
def evaluate_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics.json to stdout.")] = False,
) -> None:
    """Score predictions against the test set: reads 05_predict/, 02_split/, writes 06_evaluate/.

    Outputs: metrics.json (per model: precision, recall, NDCG, MAP, MRR, hit rate at each K,
    coverage) and per_user_metrics.parquet.
    """
    cfg = _guard(_config)
    text, summary = _guard(lambda: evaluate_run.run_evaluate(cfg))
    _print_metrics(summary, tuple(sorted(set(cfg.evaluate.k))))
    if as_json:
        path = Path(cfg.paths.artifacts) / "06_evaluate" / "metrics.json"
        console.print_json(json.dumps(json.loads(path.read_text()), indent=2))
    console.summary("evaluate", text)


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
        "predict": predict_cmd,
        "evaluate": lambda: evaluate_cmd(False),
    }
    for stage in STAGES:
        if not force and is_up_to_date(cfg, stage):
            console.note(f"{stage}: up to date, skipped")
            continue
        commands[stage]()
