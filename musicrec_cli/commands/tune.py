"""`musicrec tune`: search a model's settings on a validation split carved from train."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from musicrec_cli import console
from musicrec_cli.session import session
from stages.tune import SPACES


def tune(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help=f"Model to tune: one of {', '.join(SPACES)}.")],
    trials: Annotated[
        int, typer.Option(min=1, help="Trials in all (a resumed search counts earlier ones).")
    ] = 30,
    time_limit: Annotated[
        float | None, typer.Option(min=1, help="Stop starting trials after this many seconds.")
    ] = None,
) -> None:
    """Search a model's settings: reads 01_preprocess/ to 03_features/, writes 04_train/tuning/.

    The validation set is carved from train by the split's own strategy; the test set is never
    read. Optuna's TPE sampler, seeded by [train].seed; the search is journaled, so after a kill
    the same command resumes it. Outputs: <model>_trials.parquet (objective and best so far by
    trial), <model>_best.toml (the best [train] settings: `musicrec train --tuned FILE`) and
    <model>_report.json (parameter importances).
    """
    if model not in SPACES:
        msg = f"{model!r} cannot be tuned; choose one of {', '.join(SPACES)}."
        raise typer.BadParameter(msg, param_hint="--model")
    from musicrec_cli.runner import tune as tune_run  # imports optuna: only when tuning

    s = session(ctx)
    text = s.guard(
        lambda: tune_run.run_tune(s.config(), model=model, trials=trials, time_limit=time_limit)
    )
    _print_search(tune_run.tuning_dir(Path(s.config().paths.artifacts)), model)
    console.summary("tune", text)


def _print_search(folder: Path, model: str) -> None:
    """Objective and best so far by trial (the last 20), then the parameter importances."""
    frame = pl.read_parquet(folder / f"{model}_trials.parquet").tail(20)
    params = [c for c in frame.columns if c not in ("number", "state", "value", "best_so_far")]
    params.remove("seconds")
    rows = [
        [str(r["number"]), f"{r['value']:.4f}", f"{r['best_so_far']:.4f}"]
        + [_cell(r[p]) for p in params]
        for r in frame.iter_rows(named=True)
    ]
    bold = {(i, 1) for i, r in enumerate(rows) if r[1] == r[2]}
    console.table(
        f"tune {model}: validation ndcg@10", ["trial", "ndcg@10", "best", *params], rows, bold=bold
    )
    report = json.loads((folder / f"{model}_report.json").read_text(encoding="utf-8"))
    if report["importance"]:
        importance = [[k, f"{v:.2f}"] for k, v in report["importance"].items()]
        console.table(
            "most influential parameters (fANOVA)",
            ["parameter", "importance"],
            importance,
            bold=set(),
        )


def _cell(value: object) -> str:
    """A parameter value in 4 significant digits (choices as they are, absent as blank)."""
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
