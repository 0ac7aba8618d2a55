"""Run the evaluate stage: 05_predict + 02_split test -> 06_evaluate."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, scan
from musicrec_cli.config import Config, table_dict
from musicrec_cli.runner import Measure, upstream_inputs
from stages import evaluate
from stages.schema import MODEL, USER_IDX


def run_evaluate(cfg: Config) -> tuple[str, pl.DataFrame]:
    """Ranking metrics of 05_predict against 02_split test; writes 06_evaluate."""
    measure, e, root = Measure(), cfg.evaluate, Path(cfg.paths.artifacts)
    inputs = upstream_inputs(root, "split", "predict")
    n_tracks = require_stage(root, "split")["summary"]["n_tracks"]
    recs = scan(root, "predict", art.PREDICTIONS)
    test = scan(root, "split", art.TEST)
    ks = tuple(sorted(set(e.k)))
    per_user = evaluate.per_user_metrics(recs, test, ks=ks).collect(engine="streaming")
    summary = evaluate.summarise(
        per_user.lazy(), evaluate.coverage(recs, ks=ks, n_items=n_tracks)
    ).collect()
    n_test_users = test.select(pl.col(USER_IDX).n_unique()).collect().item()
    n_predicted = recs.select(pl.col(USER_IDX).n_unique()).collect().item()
    metrics = {
        "n_users_evaluated": n_test_users,
        "n_users_without_test": max(n_predicted - n_test_users, 0),
        "k": list(ks),
        "models": {row.pop(MODEL): row for row in summary.to_dicts()},
    }
    with art.open_stage(root, "evaluate") as out:
        out.write_parquet(per_user, art.PER_USER_METRICS)
        out.write_json(metrics, art.METRICS_JSON)
        folder = art.commit_stage(
            out,
            {
                "config": table_dict(e),
                "inputs": inputs,
                "summary": {"n_users_evaluated": n_test_users},
                **measure.record(),
            },
        )
    return f"{n_test_users:,} test users, {summary.height} model(s) -> {folder}", summary
