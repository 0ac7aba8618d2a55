"""Run the predict stage: 04_train models -> 05_predict/predictions.parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import stage_dir
from musicrec_cli.config import Config, table_dict
from musicrec_cli.console import progress
from musicrec_cli.runner import Measure, upstream_inputs
from musicrec_cli.runner.train import load_models
from stages import predict
from stages.schema import MODEL, TRACK_ID, TRACK_IDX, USER_ID, USER_IDX


def run_predict(cfg: Config) -> str:
    """Top-N per user for every trained model, streamed in user blocks to 05_predict."""
    measure, p, root = Measure(), cfg.predict, Path(cfg.paths.artifacts)
    inputs = upstream_inputs(root, "preprocess", "split", "train")
    models = load_models(root)
    user_items = art.load_matrix(root, "split", art.TRAIN_MATRIX)
    user_ids = pl.read_parquet(stage_dir(root, "preprocess") / art.USERS).sort(USER_IDX)[USER_ID]
    track_ids = pl.read_parquet(stage_dir(root, "preprocess") / art.ITEMS).sort(TRACK_IDX)[TRACK_ID]
    users = np.flatnonzero(np.diff(user_items.indptr) > 0)
    blocks = [users[i : i + p.block_size] for i in range(0, len(users), p.block_size)]
    rows = 0
    with (
        art.open_stage(root, "predict") as out,
        progress("predict", len(blocks) * len(models)) as bar,
    ):
        writer: pq.ParquetWriter | None = None
        for name, model in models.items():
            for block in blocks:
                recs = predict.recommend_block(model, block, user_items, n=p.n, model_name=name)
                recs = recs.with_columns(
                    user_ids.gather(recs[USER_IDX]).alias(USER_ID),
                    track_ids.gather(recs[TRACK_IDX]).alias(TRACK_ID),
                ).select(USER_IDX, USER_ID, "rank", TRACK_IDX, TRACK_ID, "score", MODEL)
                table = recs.to_arrow()
                writer = writer or pq.ParquetWriter(
                    out.path(art.PREDICTIONS), table.schema, compression="zstd"
                )
                writer.write_table(table)
                rows += recs.height
                bar.advance(0)
        if writer is not None:
            writer.close()
        out.add_file(art.PREDICTIONS, rows=rows)
        folder = art.commit_stage(
            out,
            {
                "config": table_dict(p),
                "inputs": inputs,
                "summary": {"n_users": len(users), "models": list(models), "rows": rows},
                **measure.record(),
            },
        )
    return f"top-{p.n} for {len(users):,} users x {len(models)} model(s), {rows:,} rows -> {folder}"
