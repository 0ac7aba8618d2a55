import threading

import numpy as np
import polars as pl
import pytest

from stages.evaluate import beyond, results
from stages.evaluate.results import EvaluateSettings, compute
from stages.schema import MODEL, RANK, TRACK_IDX, USER_IDX

U32 = pl.UInt32


def _inputs() -> tuple[pl.LazyFrame, pl.LazyFrame, pl.DataFrame, pl.LazyFrame]:
    """Two models' top-5 lists for 30 users, 3 test tracks each, a 40-track catalogue."""
    rng = np.random.default_rng(7)
    recs = pl.DataFrame(
        [
            (model, u, r, int(t))
            for model in ("als", "popularity")
            for u in range(30)
            for r, t in enumerate(rng.choice(40, 5, replace=False), start=1)
        ],
        schema={MODEL: pl.String, USER_IDX: U32, RANK: pl.UInt16, TRACK_IDX: U32},
        orient="row",
    )
    test = pl.DataFrame(
        [(u, int(t)) for u in range(30) for t in rng.choice(40, 3, replace=False)],
        schema={USER_IDX: U32, TRACK_IDX: U32},
        orient="row",
    )
    train = test.with_columns((pl.col(TRACK_IDX) + 1) % 40)
    items = pl.LazyFrame(
        {TRACK_IDX: pl.Series(range(40), dtype=U32), "artist_id": [f"a{t % 7}" for t in range(40)]}
    )
    tracks = beyond.track_table(
        items, train.lazy(), artist="artist_id", audio=(), n_train_users=30
    ).collect()
    return recs.lazy(), test.lazy(), tracks, train.lazy()


class ViewsFailedError(RuntimeError):
    pass


def test_an_error_of_the_views_thread_is_raised_with_its_type_and_the_thread_joined(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        msg = "views failed"
        raise ViewsFailedError(msg)

    monkeypatch.setattr(results.views, "score_groups", fail)
    recs, test, tracks, train = _inputs()
    with pytest.raises(ViewsFailedError, match="views failed"):
        compute(
            recs, test, tracks, e=EvaluateSettings(k=(5,)), n_tracks=40, train=train, replay=test
        )
    assert not [t for t in threading.enumerate() if t.name.startswith("musicrec-views")]
