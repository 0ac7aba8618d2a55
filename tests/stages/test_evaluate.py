import math

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from stages.evaluate import beyond as evaluate
from stages.evaluate import ranking as metrics
from stages.schema import MODEL, RANK, TRACK_IDX, USER_IDX

LOG2_3 = math.log2(3)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


def recs_frame(rows: list[tuple[str, int, int, int]]) -> pl.LazyFrame:
    """(model, user_idx, rank, track_idx) rows."""
    schema = {MODEL: pl.String, USER_IDX: pl.UInt32, RANK: pl.UInt16, TRACK_IDX: pl.UInt32}
    return pl.LazyFrame(rows, schema=schema, orient="row")


def pairs_frame(rows: list[tuple[int, int]]) -> pl.LazyFrame:
    """(user_idx, track_idx) rows."""
    return pl.LazyFrame(rows, schema={USER_IDX: pl.UInt32, TRACK_IDX: pl.UInt32}, orient="row")


def one_list(tracks: list[int], *, model: str = "m", user: int = 0) -> pl.LazyFrame:
    return recs_frame([(model, user, r, t) for r, t in enumerate(tracks, start=1)])


def scores(recs: pl.LazyFrame, test: pl.LazyFrame, k: int) -> dict[str, float]:
    frame = metrics.per_user_metrics(recs, test, ks=(k,)).collect()
    assert frame.height == 1
    return {m: frame[f"{m}@{k}"][0] for m in metrics.METRICS}


def test_perfect_ranking_scores_one() -> None:
    got = scores(one_list([1, 2, 3]), pairs_frame([(0, 1), (0, 2)]), k=2)
    assert got == pytest.approx(dict.fromkeys(metrics.METRICS, 1.0))


def test_no_hit_scores_zero() -> None:
    got = scores(one_list([5, 6, 7]), pairs_frame([(0, 1), (0, 2)]), k=3)
    assert got == pytest.approx(dict.fromkeys(metrics.METRICS, 0.0))


def test_one_hit_at_rank_two_hand_computed() -> None:
    # R = {2, 4}; list 1, 2, 3, 4; at K=3 only rank 2 hits.
    got = scores(one_list([1, 2, 3, 4]), pairs_frame([(0, 2), (0, 4)]), k=3)
    assert got == pytest.approx(
        {
            "precision": 1 / 3,
            "recall": 1 / 2,
            "ndcg": (1 / LOG2_3) / (1 + 1 / LOG2_3),
            "map": (1 / 2) / 2,
            "mrr": 1 / 2,
            "hit_rate": 1.0,
        }
    )


def test_k_larger_than_list_and_catalogue_counts_missing_slots_as_misses() -> None:
    # catalogue of 4 tracks, all recommended; K=5: hits at ranks 2 and 4.
    got = scores(one_list([1, 2, 3, 4]), pairs_frame([(0, 2), (0, 4)]), k=5)
    assert got == pytest.approx(
        {
            "precision": 2 / 5,
            "recall": 1.0,
            "ndcg": (1 / LOG2_3 + 1 / math.log2(5)) / (1 + 1 / LOG2_3),
            "map": (1 / 2 + 2 / 4) / 2,
            "mrr": 1 / 2,
            "hit_rate": 1.0,
        }
    )


def test_user_with_fewer_than_k_recommendations() -> None:
    got = scores(one_list([9]), pairs_frame([(0, 9), (0, 8), (0, 7)]), k=5)
    assert got == pytest.approx(
        {
            "precision": 1 / 5,
            "recall": 1 / 3,
            "ndcg": 1 / (1 + 1 / LOG2_3 + 1 / 2),
            "map": 1 / 3,
            "mrr": 1.0,
            "hit_rate": 1.0,
        }
    )


@pytest.mark.parametrize(("order", "want_mrr"), [([7, 8], 0.5), ([8, 7], 1.0)])
def test_tied_scores_are_ordered_by_rank(order: list[int], want_mrr: float) -> None:
    # both tracks have score 0.5; only the rank column decides which one is first
    recs = one_list(order).with_columns(pl.lit(0.5, pl.Float32).alias("score"))
    got = scores(recs, pairs_frame([(0, 8)]), k=2)
    assert got["mrr"] == pytest.approx(want_mrr)
    assert got["ndcg"] == pytest.approx(1.0 if want_mrr == 1.0 else 1 / LOG2_3)


def test_users_without_test_are_excluded_and_users_without_recs_score_zero() -> None:
    recs = recs_frame(
        [("als", 0, 1, 1), ("als", 5, 1, 1), ("als+rerank", 0, 1, 2), ("als+rerank", 1, 1, 3)]
    )
    test = pairs_frame([(0, 1), (0, 1), (1, 3)])  # duplicate pair counts once
    frame = metrics.per_user_metrics(recs, test, ks=(1,)).collect()
    assert frame.select(MODEL, USER_IDX, "n_relevant", "hit_rate@1").to_dict(as_series=False) == {
        MODEL: ["als", "als", "als+rerank", "als+rerank"],
        USER_IDX: [0, 1, 0, 1],
        "n_relevant": [1, 1, 1, 1],
        "hit_rate@1": [1.0, 0.0, 0.0, 1.0],
    }


def test_ranks_beyond_k_do_not_count() -> None:
    got = scores(one_list([1, 2, 3]), pairs_frame([(0, 3)]), k=2)
    assert got == pytest.approx(dict.fromkeys(metrics.METRICS, 0.0))


# beyond accuracy ------------------------------------------------------------------------------

ITEMS = pl.LazyFrame(
    {
        TRACK_IDX: pl.Series([0, 1, 2, 3, 4], dtype=pl.UInt32),
        "artist_key": ["a", "a", "b", "c", "b"],
        "danceability": [0.0, 0.5, 1.0, None, 0.5],
    }
)
# listeners: track 0 by 4 users, 1 by 2, 2 by 1, 3 by none, 4 by 1
TRAIN = pairs_frame([(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1), (0, 2), (3, 4)])


def tracks_table() -> pl.LazyFrame:
    return evaluate.track_table(
        ITEMS, TRAIN, artist="artist_key", audio=("danceability",), n_train_users=4
    )


def test_track_table_popularity_and_self_information() -> None:
    got = tracks_table().collect()
    assert got[evaluate.POPULARITY].to_list() == pytest.approx([1.0, 0.5, 0.25, 0.0, 0.25])
    # a track nobody played counts as played by one of the 4 users: log2(4) bits
    assert got[evaluate.SELF_INFORMATION].to_list() == pytest.approx([0.0, 1.0, 2.0, 2.0, 2.0])
    assert got["artist"].to_list() == [1, 1, 2, 3, 2]
    std = math.sqrt(1 / 8)  # population std of 0, 0.5, 1, 0.5 (stages.audio.standardise)
    assert got["z_danceability"].to_list() == pytest.approx([-0.5 / std, 0.0, 0.5 / std, None, 0.0])


def test_beyond_metrics_hand_computed() -> None:
    recs = recs_frame(
        [
            ("m", 0, 1, 0),
            ("m", 0, 2, 2),
            ("m", 1, 1, 2),
            ("m", 1, 2, 4),
            ("m", 2, 1, 3),
            ("m", 9, 1, 1),  # user 9 is not evaluated
        ]
    )
    users = pl.LazyFrame({USER_IDX: pl.Series([0, 1, 2], dtype=pl.UInt32)})
    got = evaluate.per_user_beyond(recs, tracks_table().collect(), users, ks=(1, 2))
    z = 0.5 / math.sqrt(1 / 8)
    want = pl.DataFrame(
        {
            MODEL: ["m", "m", "m"],
            USER_IDX: [0, 1, 2],
            evaluate.N_RECOMMENDED: [2, 2, 1],
            "artist_diversity@1": [1.0, 1.0, 1.0],
            "novelty@1": [0.0, 2.0, 2.0],
            "popularity@1": [1.0, 0.25, 0.0],
            "audio_distance@1": [None, None, None],
            "artist_diversity@2": [1.0, 0.5, 1.0],
            "novelty@2": [1.0, 2.0, 2.0],
            "popularity@2": [0.625, 0.25, 0.0],
            # two tracks with features: the distance between their z-scores
            "audio_distance@2": [2 * z, z, None],
        },
        schema_overrides={USER_IDX: pl.UInt32, evaluate.N_RECOMMENDED: pl.UInt32},
    )
    assert_frame_equal(got, want.select(got.columns), check_dtypes=False)


def test_audio_distance_equals_mean_pairwise_distance(rng: np.random.Generator) -> None:
    n_items, n_users, k, d = 30, 20, 6, 3
    features = rng.normal(size=(n_items, d))
    z = (features - features.mean(axis=0)) / features.std(axis=0)  # population std
    items = pl.LazyFrame(
        {TRACK_IDX: pl.Series(range(n_items), dtype=pl.UInt32)}
        | {f"f{j}": features[:, j] for j in range(d)}
    )
    table = evaluate.track_table(
        items, TRAIN, artist=None, audio=tuple(f"f{j}" for j in range(d)), n_train_users=4
    )
    lists = np.stack([rng.choice(n_items, size=k, replace=False) for _ in range(n_users)])
    recs = recs_frame([("m", u, r + 1, int(lists[u, r])) for u in range(n_users) for r in range(k)])
    users = pl.LazyFrame({USER_IDX: pl.Series(range(n_users), dtype=pl.UInt32)})
    got = evaluate.per_user_beyond(recs, table.collect(), users, ks=(k,))
    diff = z[lists][:, :, None, :] - z[lists][:, None, :, :]
    squared = (diff**2).sum(axis=-1)
    want = np.sqrt(squared.sum(axis=(1, 2)) / (k * (k - 1)))
    assert got[f"audio_distance@{k}"].to_numpy() == pytest.approx(want)
    assert "artist_diversity@6" not in got.columns


def test_coverage_counts_only_evaluated_users() -> None:
    recs = recs_frame(
        [("a", 0, 1, 0), ("a", 0, 2, 1), ("a", 1, 1, 0), ("a", 2, 1, 4), ("b", 0, 1, 3)]
    )
    users = pl.LazyFrame({USER_IDX: pl.Series([0, 1], dtype=pl.UInt32)})
    got = evaluate.coverage(recs, users, ks=(1, 2), n_items=5).collect()
    assert got.to_dict(as_series=False) == {
        MODEL: ["a", "b"],
        "coverage@1": [0.2, 0.2],
        "coverage@2": [0.4, 0.2],
    }


def test_summarise_means_and_users_without_recommendations() -> None:
    per_user = pl.LazyFrame(
        {
            MODEL: ["a", "a", "b"],
            USER_IDX: [0, 1, 0],
            evaluate.N_RECOMMENDED: [2, 0, 1],
            "ndcg@2": [1.0, 0.0, 0.5],
            "novelty@2": [3.0, None, 1.0],
        }
    )
    cover = pl.LazyFrame({MODEL: ["a", "b"], "coverage@2": [0.4, 0.2]})
    got = evaluate.summarise(per_user, cover).collect()
    assert got.to_dict(as_series=False) == {
        MODEL: ["a", "b"],
        "n_users": [2, 1],
        "n_users_without_recommendations": [1, 0],
        "ndcg@2": [0.5, 0.5],
        "novelty@2": [3.0, 1.0],
        "coverage@2": [0.4, 0.2],
    }


def test_lift_over_baseline() -> None:
    summary = pl.DataFrame(
        {MODEL: ["als", "popularity"], "ndcg@10": [0.3, 0.2], "mrr@10": [0.1, 0.0]}
    )
    got = evaluate.lift_over(summary, baseline="popularity")
    assert got is not None
    want = {MODEL: ["als", "popularity"], "ndcg@10": [0.5, 0.0], "mrr@10": [None, None]}
    assert_frame_equal(got, pl.DataFrame(want, schema_overrides={"mrr@10": pl.Float64}))
    assert evaluate.lift_over(summary, baseline="knn") is None


def test_beyond_metrics_without_any_evaluated_list_is_empty() -> None:
    recs = recs_frame([("m", 7, 1, 0)])  # user 7 is not evaluated
    users = pl.LazyFrame({USER_IDX: pl.Series([0], dtype=pl.UInt32)})
    got = evaluate.per_user_beyond(recs, tracks_table().collect(), users, ks=(5,))
    assert got.height == 0
    assert "novelty@5" in got.columns


def test_tracks_missing_from_the_catalogue_are_left_out_of_the_means() -> None:
    recs = recs_frame([("m", 0, 1, 1), ("m", 0, 2, 99)])  # track 99 is not in the catalogue
    users = pl.LazyFrame({USER_IDX: pl.Series([0], dtype=pl.UInt32)})
    got = evaluate.per_user_beyond(recs, tracks_table().collect(), users, ks=(2,))
    assert got.select("n_recommended", "novelty@2", "popularity@2", "artist_diversity@2").row(
        0
    ) == (2, 1.0, 0.5, 1.0)


@pytest.mark.parametrize("longest", [20, 70])
def test_first_artists_are_the_first_occurrences_within_each_list(longest: int) -> None:
    # lists of 1..longest rows with repeated and unknown artists; 20 rows compare lags, 70
    # rows hash (list, artist); the reference is the definition, list by list
    rng = np.random.default_rng(longest)
    lengths = rng.integers(1, longest + 1, 300)
    lengths[0] = longest
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    codes = rng.integers(0, 12, int(lengths.sum()))
    codes[[0, longest - 1]] = 99  # the longest list repeats its first artist last, only there
    unknown = rng.random(len(codes)) < 0.1
    unknown[[0, longest - 1]] = False
    artist = pl.Series(codes, dtype=pl.UInt32).set(pl.Series(unknown), None)
    want = []
    for start, length in zip(starts, lengths, strict=True):
        seen: set[int] = set()
        for value in artist[int(start) : int(start + length)].to_list():
            want.append(value is not None and value not in seen)
            seen |= {value} if value is not None else set()
    got = evaluate._first_artists(artist, starts)  # noqa: SLF001
    assert got.tolist() == want
    assert 0 < sum(want) < len(want)


@pytest.mark.parametrize("part_rows", [evaluate.BEYOND_ROWS, 6, 1])
def test_beyond_metrics_equal_each_list_scored_alone(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, part_rows: int
) -> None:
    # the rows are scored in parts cut at list boundaries: 7 lists of 5 (35 rows; two halves,
    # then parts of 6 and of 1 row moved to the next list start); every list's values must
    # equal those of the list scored alone
    monkeypatch.setattr(evaluate, "BEYOND_ROWS", part_rows)
    n_items, k = 12, 5
    items = pl.LazyFrame(
        {
            TRACK_IDX: pl.Series(range(n_items), dtype=pl.UInt32),
            "artist_id": [f"a{t % 4}" for t in range(n_items)],
            "f0": rng.normal(size=n_items),
        }
    )
    table = evaluate.track_table(
        items, TRAIN, artist="artist_id", audio=("f0",), n_train_users=4
    ).collect()
    lists = [rng.choice(n_items, size=k, replace=False) for _ in range(7)]
    rows = [("m", u, r + 1, int(t)) for u, ts in enumerate(lists) for r, t in enumerate(ts)]
    users = pl.LazyFrame({USER_IDX: pl.Series(range(7), dtype=pl.UInt32)})
    got = evaluate.per_user_beyond(recs_frame(rows), table, users, ks=(2, k))
    alone = pl.concat(
        evaluate.per_user_beyond(recs_frame(rows[u * k : (u + 1) * k]), table, users, ks=(2, k))
        for u in range(7)
    )
    assert got.height == 7
    assert_frame_equal(got, alone)
