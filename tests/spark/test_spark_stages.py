"""The Spark engine's stage functions give the Polars engine's rows (local[2], tiny frames)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from polars.testing import assert_frame_equal

from stages import predict, songs, split
from stages.models.als import AlsModel
from stages.schema import INTERACTIONS, PLAYS, RANK, SCORE, TRACK_IDX, USER_IDX
from stages.spark import polars_cast, to_spark_arrow
from stages.spark import predict as spark_predict
from stages.spark import split as spark_split


def _to_polars(frame, schema) -> pl.DataFrame:
    return polars_cast(pl.from_arrow(frame.toArrow()).lazy(), schema).collect()


def _plays(rng: np.random.Generator, n: int = 400) -> pl.DataFrame:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return pl.DataFrame(
        {
            USER_IDX: rng.integers(0, 30, n),
            TRACK_IDX: rng.integers(0, 25, n),
            "played_at": [start + dt.timedelta(hours=int(h)) for h in rng.integers(0, 2000, n)],
            "ms_played": rng.integers(30_000, 300_000, n),
            "skipped": rng.random(n) < 0.2,
        }
    ).cast(PLAYS)  # type: ignore[arg-type]


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "strategy",
    [
        "temporal",
        "user-random",
        pytest.param("user-temporal", marks=SLOW),
        pytest.param("held-out-users", marks=SLOW),
    ],
)
def test_spark_split_gives_the_polars_rows(spark, strategy):
    plays = _plays(np.random.default_rng(1))
    params = split.SplitParams(strategy=strategy, min_user_tracks=3, held_out_share=0.3)
    want = split.split_plays(plays.lazy(), params=params)
    held_out = None
    if strategy == "held-out-users":
        users = plays.lazy().select(USER_IDX).unique()
        held_out = split.choose_held_out_users(users, share=0.3, seed=params.seed).collect()
    got = spark_split.split_plays(
        spark.createDataFrame(to_spark_arrow(plays)),
        params=params,
        cutoff=want.cutoff,
        held_out=held_out,
        n_groups=3,
    )
    for name in ("train", "test", "replay"):
        rows = _to_polars(getattr(got, name), INTERACTIONS)
        assert rows.height > 0, name
        assert_frame_equal(rows, getattr(want, name).collect(), check_dtypes=True)


@pytest.mark.parametrize(
    ("one_per_group", "allow_heard_songs"), [(True, False), pytest.param(False, True, marks=SLOW)]
)
def test_spark_lists_over_item_blocks_equal_the_polars_lists(
    spark, rng, one_per_group, allow_heard_songs
):
    users, items, n = rng.normal(size=(40, 6)), rng.normal(size=(90, 6)), 7
    users, items = users.astype(np.float32), items.astype(np.float32)
    group = rng.permutation(np.arange(90) % 30)  # 30 songs of 3 versions, across the blocks
    dense = sp.random(40, 90, density=0.2, format="csr", random_state=3).toarray()
    dense[5] = 0  # a user who heard nothing
    heard = sp.csr_matrix(dense)
    pairs = pl.DataFrame(
        {
            USER_IDX: np.repeat(np.arange(40), np.diff(heard.indptr)),
            TRACK_IDX: heard.indices.astype(np.int64),
        }
    )
    scored = np.arange(40)
    rows = spark_predict.user_rows(
        spark, users, scored, spark.createDataFrame(to_spark_arrow(pairs))
    )
    settings = spark_predict.ListSettings(
        n=n,
        depth=2 * n,
        one_per_group=one_per_group,
        allow_heard_songs=allow_heard_songs,
        block_items=25,
    )
    got = _to_polars(spark_predict.top_n(spark, rows, items, group, settings), spark_predict.LISTS)
    top = predict.FactorTopK(items)
    idx, best = songs.plain_lists(
        lambda r, k: top(users[r], heard[r], k),
        40,
        group,
        n=n,
        heard=None if allow_heard_songs else songs.heard_groups(heard, group),
        depth=2 * n,
        one_per_group=one_per_group,
    )
    want = predict.ranked_frame(scored, idx, best, model_name="").select(list(spark_predict.LISTS))
    assert_frame_equal(got.drop(SCORE), want.drop(SCORE))
    np.testing.assert_allclose(got[SCORE].to_numpy(), want[SCORE].to_numpy(), rtol=1e-5)
    # no heard track made any list; the user who heard nothing has a full list
    heard_pairs = pairs.cast({USER_IDX: pl.UInt32, TRACK_IDX: pl.UInt32})
    assert got.join(heard_pairs, on=[USER_IDX, TRACK_IDX]).height == 0
    assert got.filter(pl.col(USER_IDX) == 5)[RANK].to_list() == list(range(1, n + 1))


def test_spark_lists_keep_heard_tracks_for_a_replay_test_as_polars_does(spark, rng):
    """One person's log (split test_view "replay"): heard tracks stay in the lists on Spark too.

    Each user's best track is made one they heard; the Spark lists equal the Polars scorer's
    with keep_heard (and allowed heard songs), across two item blocks.
    """
    users, items, n = rng.normal(size=(12, 5)), rng.normal(size=(40, 5)), 4
    users, items = users.astype(np.float32), items.astype(np.float32)
    group = np.arange(40)  # every track its own song
    best_track = np.argmax(users @ items.T, axis=1)
    heard = sp.csr_matrix(
        (np.ones(12, np.float32), best_track, np.arange(13)), shape=(12, 40)
    )  # fmt: skip
    pairs = pl.DataFrame({USER_IDX: np.arange(12), TRACK_IDX: best_track.astype(np.int64)})
    rows = spark_predict.user_rows(
        spark, users, np.arange(12), spark.createDataFrame(to_spark_arrow(pairs))
    )
    settings = spark_predict.ListSettings(n=n, depth=2 * n, one_per_group=True,
                                          allow_heard_songs=True, block_items=25,
                                          keep_heard=True)  # fmt: skip
    got = _to_polars(spark_predict.top_n(spark, rows, items, group, settings), spark_predict.LISTS)
    model = AlsModel(user_factors=users, item_factors=items)
    idx, best = predict.scorer(model, keep_heard=True)(np.arange(12), heard, n)
    want = predict.ranked_frame(np.arange(12), idx, best, model_name="")
    assert_frame_equal(got.drop(SCORE), want.select(list(spark_predict.LISTS)).drop(SCORE))
    first = got.filter(pl.col(RANK) == 1).sort(USER_IDX)[TRACK_IDX].to_numpy()
    np.testing.assert_array_equal(first, best_track)  # the heard best track leads each list


@pytest.mark.parametrize("keep_heard", [False, True])
def test_spark_rerank_candidates_equal_the_drivers_and_read_back_per_block(
    spark, rng, tmp_path, keep_heard
):
    """The k best tracks per user that the re-ranker starts from: Spark's (over two item
    blocks) = `predict.scorer`'s on the driver, and `read_candidates` gives them back as the
    driver's (b, k) arrays, block by block."""
    from musicrec_cli.runner import predict_spark as runner_spark

    n_users, n_items, k = 30, 50, 12
    users = rng.normal(size=(n_users, 4)).astype(np.float32)
    items = rng.normal(size=(n_items, 4)).astype(np.float32)
    dense = (sp.random(n_users, n_items, density=0.3, random_state=5).toarray() > 0).astype(
        np.float32
    )
    dense[7] = 0  # a user who heard nothing
    heard = sp.csr_matrix(dense)
    pairs = pl.DataFrame(
        {
            USER_IDX: np.repeat(np.arange(n_users), np.diff(heard.indptr)),
            TRACK_IDX: heard.indices.astype(np.int64),
        }
    )
    scored = np.arange(n_users)
    rows = spark_predict.user_rows(
        spark, users, scored, spark.createDataFrame(to_spark_arrow(pairs))
    )
    found = spark_predict.top_candidates(
        spark, rows, items, k=k, block_items=20, keep_heard=keep_heard
    )
    folder = tmp_path / "candidates"
    found.write.parquet(str(folder))
    model = AlsModel(user_factors=users, item_factors=items)
    score = predict.scorer(model, keep_heard=keep_heard)
    blocks = [scored[:8], scored[8:9], scored[9:]]
    for block, (idx, best) in zip(
        blocks, runner_spark.read_candidates(folder, blocks, k), strict=True
    ):
        want_idx, want_best = score(block, heard[block], k)
        np.testing.assert_array_equal(idx, want_idx)
        np.testing.assert_allclose(best, want_best, rtol=1e-5)
    if not keep_heard:  # a user who heard 30% of 50 tracks still has 12 candidates
        assert (idx >= 0).all()
