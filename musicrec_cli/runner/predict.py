"""Run the predict stage: 04_train models -> 05_predict/{predictions,similar_tracks}.parquet.

Users are scored one block at a time and each block is appended to a Parquet file inside the
stage's partial folder, so memory is bounded by the block size and yesterday's folder stays in
place until the new one is complete (artifacts.commit_stage). The lists themselves, exact and
re-ranked per model and similar tracks, are made in runner/predict_lists.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
from pathlib import Path

from musicrec_cli import artifacts as art
from musicrec_cli import lineage
from musicrec_cli.config import Config, engine_of, table_dict
from musicrec_cli.console import progress
from musicrec_cli.runner import (
    Measure,
    predict_lists,
    predict_output,
    predict_spark,
    predict_users,
    upstream_inputs,
)
from musicrec_cli.runner.predict_catalog import codes, load_catalog
from musicrec_cli.runner.train import load_models

log = logging.getLogger(__name__)

_UNKNOWN_SAMPLE = 20


def run_predict(cfg: Config, *, users_file: Path | None = None) -> str:
    """Top-N per user for every trained model, streamed in user blocks to 05_predict.

    With `users_file`, the users' new rows replace theirs in the previous full predictions when
    those were made from the same settings, code and upstream runs (scope "all", merged); else
    the folder holds only those users (scope "users"), which evaluate and `all` treat as stale.
    """
    measure, p, root = Measure(), cfg.predict, Path(cfg.paths.artifacts)
    # one person's log is tested on the tracks they play again: lists may hold them
    replay = art.require_stage(root, "split")["summary"].get("test_view") == "replay"
    if replay:
        p = dataclasses.replace(p, allow_heard_songs=True)
        log.info("predict: one user's log (split test_view replay): heard tracks allowed")
    generated_at = dt.datetime.now(dt.UTC)  # one timestamp for every row of this run
    inputs = upstream_inputs(root, "preprocess", "split", "train")
    base = None if users_file is None else predict_output.merge_base(root, p, inputs)
    models = load_models(root)
    for name in p.rerank_models:
        if name not in models:
            log.warning("[predict].rerank_models: %r is not in 04_train; not re-ranked", name)
    user_items = art.load_matrix(root, "split", art.TRAIN_MATRIX)
    catalog = load_catalog(root, user_items)
    users, unknown = predict_users.resolve_users(catalog.user_ids, user_items, users_file)
    blocks = [users[i : i + p.block_size] for i in range(0, len(users), p.block_size)]
    n_sim = -(-user_items.shape[1] // p.block_size) if p.similar_k else 0
    written = [*models, *(m + predict_lists.RERANK_SUFFIX for m in models if m in p.rerank_models)]
    engine = engine_of(cfg, "predict")
    scope = lineage.SCOPE_USERS if users_file is not None and base is None else lineage.SCOPE_ALL
    with art.open_stage(root, "predict") as out:
        spark_lists = (
            predict_spark.spark_lists(
                cfg, out, models, users, codes(catalog.group_ids), p=p, keep_heard=replay
            )
            if engine == "spark"
            else {}
        )
        with progress("predict", len(blocks) * len(written) + n_sim) as step:
            frames = predict_output.read_ahead(
                (part, predict_lists.with_ids(f, catalog, generated_at))
                for part, f in predict_lists.block_frames(
                    models, blocks, user_items, catalog, p, spark_lists, keep_heard=replay
                )
            )
            fresh = out.path(art.PREDICTIONS if base is None else "users.parquet")
            with out.writing(fresh.name):
                rows = predict_output.stream_rows(frames, fresh, step)
            if base is not None:
                with out.writing(art.PREDICTIONS):
                    rows = predict_output.merge_rows(root, fresh, users, out.path(art.PREDICTIONS))
            similar = predict_output.read_ahead(predict_lists.similar_frames(models, catalog, p))
            with out.writing(art.SIMILAR_TRACKS):
                sim_rows = predict_output.stream_rows(similar, out.path(art.SIMILAR_TRACKS), step)
        out.add_file(art.PREDICTIONS, rows=rows)
        for folder in spark_lists.values():
            shutil.rmtree(folder)
        if out.path(art.SIMILAR_TRACKS).exists():
            out.add_file(art.SIMILAR_TRACKS, rows=sim_rows)
        users_part = (
            {}
            if users_file is None
            else {
                "users_file": str(users_file),
                "users_file_sha256": art.sha256_file(users_file),
                "merged_into_run_of": None if base is None else base.get("created_at"),
            }
        )
        n_users = len(users) if base is None else int(base["summary"]["n_users"])
        folder = art.commit_stage(
            out,
            {
                "config": table_dict(p),
                "engine": engine,
                "inputs": inputs,
                "generated_at": generated_at.isoformat(),
                "summary": {
                    "scope": scope,
                    "n_users": n_users,
                    "n_users_predicted": len(users),
                    "n_unknown_users": len(unknown),
                    "unknown_users_sample": unknown[:_UNKNOWN_SAMPLE],
                    "models": written,
                    "rows": rows,
                    "similar_rows": sim_rows,
                    **users_part,
                },
                **measure.record(),
            },
        )
    what = {
        lineage.SCOPE_ALL: "" if base is None else f", merged into the run of {n_users:,} users",
        lineage.SCOPE_USERS: " ONLY (no full run to merge into; evaluate will refuse)",
    }[scope]
    return (
        f"top-{p.n} for {len(users):,} users{what} x {len(written)} list(s), {rows:,} rows "
        f"-> {folder}"
    )
