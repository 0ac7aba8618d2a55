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


def test_view_groups_share_out_train_pairs_and_leave_the_metrics_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """User ids follow activity: with train's counts the first view group is cut short where
    its users' train pairs reach their share, and metrics.json is the same as without."""
    from stages.evaluate import counts

    recs, test, tracks, _ = _inputs()
    # users 0-2 hold most of train (30 pairs each), the 27 others 1 pair each
    train = pl.DataFrame(
        [(u, t) for u in range(30) for t in range(30 if u < 3 else 1)],
        schema={USER_IDX: U32, TRACK_IDX: U32},
        orient="row",
    )
    train_counts = counts.count_sorted_pairs(
        train[USER_IDX].to_numpy(), train[TRACK_IDX].to_numpy()
    )
    assert train_counts is not None
    monkeypatch.setattr(results, "VIEW_ROWS", 100)  # 300 recommendations: 3 groups
    seen: list[list[int]] = []
    score_groups = results.views.score_groups

    def recording(recommendations: pl.LazyFrame, *args: object, **kwargs: object) -> object:
        users = recommendations.select(USER_IDX).unique().collect()
        seen[:] = [sorted(users.filter(where)[USER_IDX]) for where in kwargs["groups"]]
        return score_groups(recommendations, *args, **kwargs)

    monkeypatch.setattr(results.views, "score_groups", recording)
    settings = EvaluateSettings(k=(5,))
    args = (recs, test, tracks)
    weighted = compute(*args, e=settings, n_tracks=40, train=train.lazy(), replay=test,
                       train_counts=train_counts)[2]  # fmt: skip
    # 10 rows of lists a user and 90 + 27 train pairs: 417 in all, 139 a group; users 0-2
    # weigh 40 each, the others 11: the first group ends at user 4 (running weight 142)
    assert seen[0] == [0, 1, 2, 3, 4]
    assert sum(map(len, seen)) == 30
    plain = compute(*args, e=settings, n_tracks=40, train=train.lazy(), replay=test)[2]
    assert seen[0] == list(range(10))
    assert weighted["views"] == plain["views"]
