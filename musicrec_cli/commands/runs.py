"""Run one stage in a session and print what it did: `run_<stage>(session, ...)`.

The stage commands (commands/pipeline.py) parse their options into the session and call these;
`musicrec all` (commands/whole.py) calls them with every option at its default, so a stage runs
the same way alone and inside `all`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from musicrec_cli import console
from musicrec_cli.report import tables as report
from musicrec_cli.session import Session

# Each run_<stage> imports its runner when it runs: together they pull in SciPy, implicit and
# every stage's modules (~0.3 s), which a command that runs one stage does not need.


def run_preprocess(s: Session) -> None:
    """Run the preprocess stage and print its summary."""
    from musicrec_cli.runner import preprocess as preprocess_run

    console.summary("preprocess", s.guard(lambda: preprocess_run.run_preprocess(s.config())))


def run_split(s: Session) -> None:
    """Run the split stage and print its summary."""
    from musicrec_cli.runner import split as split_run

    console.summary("split", s.guard(lambda: split_run.run_split(s.config())))


def run_features(s: Session) -> None:
    """Run the features stage and print its summary."""
    from musicrec_cli.runner import features as features_run

    console.summary("features", s.guard(lambda: features_run.run_features(s.config())))


def run_train(s: Session) -> None:
    """Run the train stage and print its summary."""
    from musicrec_cli.runner import train as train_run

    console.summary("train", s.guard(lambda: train_run.run_train(s.config())))


def run_predict(s: Session, *, users: Path | None = None) -> None:
    """Run the predict stage (for every user, or those in `users`) and print its summary."""
    from musicrec_cli.runner import predict as predict_run

    text = s.guard(lambda: predict_run.run_predict(s.config(), users_file=users))
    console.summary("predict", text)


def run_evaluate(s: Session, *, as_json: bool = False, k: int | None = None) -> None:
    """Run the evaluate stage, print the metrics table (and JSON) and the summary."""
    from musicrec_cli.runner import evaluate as evaluate_run

    cfg = s.guard(s.config)
    ks = sorted(set(cfg.evaluate.k))
    if k is not None and k not in ks:
        msg = f"{k} is not one of the cut-offs {ks} (evaluate.k in the config)."
        raise typer.BadParameter(msg, param_hint="--k")
    text, _, content = s.guard(lambda: evaluate_run.run_evaluate(cfg))
    # the tables are the result, unless --json is: then stdout holds the JSON alone (`| jq`)
    _print_metrics(content, k, to_stderr=as_json)
    if as_json:
        console.print_json(json.dumps(content, indent=2, sort_keys=True))
    console.summary("evaluate", text)


def _print_metrics(content: dict[str, Any], k: int | None, *, to_stderr: bool) -> None:
    """Models x metrics at one K: a ranking table and a beyond-accuracy table."""
    tables = report.terminal_tables(content, k=k) + report.variant_tables(content, k=k)
    for title, columns, rows, bold in tables:
        console.table(title, columns, rows, bold=bold, to_stderr=to_stderr)
    console.note(
        report.LEGEND + (f" Grey: lift over {content['baseline']}." if content["baseline"] else "")
    )


# what `all` runs, in order; each takes only the session (every option at its default)
STAGE_RUNS: dict[str, Callable[[Session], None]] = {
    "preprocess": run_preprocess,
    "split": run_split,
    "features": run_features,
    "train": run_train,
    "predict": run_predict,
    "evaluate": run_evaluate,
}
