"""`musicrec evaluate`'s files are byte-identical whatever order its input rows arrive in (18).

Before the fix, metrics.json and per_user_metrics.parquet differed in the float's last bit
between two runs on the same artifacts: Polars adds a group's floats in arrival order, which
joins, threads and the streaming engine change (stages.evaluate.ranking.group_reduce).
"""

import io
import json

import numpy as np
import polars as pl

from stages.evaluate import beyond
from stages.evaluate.results import EvaluateSettings, compute
from stages.schema import MODEL, RANK, TRACK_IDX, USER_IDX

N_USERS, N_TRACKS, LIST = 400, 300, 20


def _shuffled(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    return frame.sample(fraction=1.0, shuffle=True, seed=seed)


def _upstream(seed: int = 3) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Three models' top-20 lists for 400 users, 1-40 test tracks each, a 300-track catalogue."""
    rng = np.random.default_rng(seed)
    lists = [
        (model, u, r, int(t))
        for model in ("a", "b", "c")
        for u in range(N_USERS)
        for r, t in enumerate(rng.choice(N_TRACKS, LIST, replace=False), start=1)
    ]
    recs = pl.DataFrame(
        lists,
        schema={MODEL: pl.String, USER_IDX: pl.UInt32, RANK: pl.UInt16, TRACK_IDX: pl.UInt32},
        orient="row",
    )
    pairs = [
        (u, int(t))
        for u in range(N_USERS)
        for t in rng.choice(N_TRACKS, rng.integers(1, 40), replace=False)
    ]
    test = pl.DataFrame(pairs, schema={USER_IDX: pl.UInt32, TRACK_IDX: pl.UInt32}, orient="row")
    train = test.with_columns((pl.col(TRACK_IDX) + 1) % N_TRACKS)
    items = pl.DataFrame(
        {
            TRACK_IDX: pl.Series(range(N_TRACKS), dtype=pl.UInt32),
            "artist_id": [f"artist{t % 37}" for t in range(N_TRACKS)],
            "danceability": rng.random(N_TRACKS),
            "tempo": rng.normal(120, 30, N_TRACKS),
        }
    )
    return recs, test, train, items


def _evaluate(
    recs: pl.DataFrame, test: pl.DataFrame, train: pl.DataFrame, items: pl.DataFrame
) -> tuple[bytes, bytes]:
    """metrics.json's text and per_user_metrics.parquet's bytes, as the runner writes them."""
    tracks = beyond.track_table(
        items.lazy(),
        train.lazy(),
        artist="artist_id",
        audio=("danceability", "tempo"),
        n_train_users=N_USERS,
    ).collect()
    per_user, _, content = compute(
        recs.lazy(),
        test.lazy(),
        tracks,
        e=EvaluateSettings(k=(5, 10, 20), metric_variants=True, bootstrap_samples=200),
        n_tracks=N_TRACKS,
        train=train.lazy(),
        replay=test.lazy(),
    )
    buffer = io.BytesIO()
    per_user.write_parquet(buffer)
    return json.dumps(content, indent=2).encode(), buffer.getvalue()


def test_evaluate_outputs_are_byte_identical_for_any_input_row_order_18() -> None:
    recs, test, train, items = _upstream()
    first = _evaluate(recs, test, train, items)
    for seed in (1, 2):
        shuffled = _evaluate(_shuffled(recs, seed), _shuffled(test, seed), train, items)
        assert shuffled[0] == first[0]
        assert shuffled[1] == first[1]
