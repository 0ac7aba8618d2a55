"""Each model on two disjoint taste clusters: a cluster-A listener must get cluster-A tracks."""

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
from implicit.utils import ParameterWarning

from musicrec_cli.artifacts import load_arrays
from stages.evaluate.coldstart import top_k
from stages.interactions import listener_share
from stages.models import UserHistory, registry
from stages.models.als import AlsModel, bm25_confidence, fit_als
from stages.models.bpr import fit_bpr
from stages.models.content import ContentModel, fit_content
from stages.models.hybrid import (
    HybridModel,
    blend,
    build_hybrid,
    effective_weights,
    history_weights,
    load_hybrid,
    normalise_rows,
)
from stages.models.knn import KnnModel, fit_knn
from stages.models.popularity import PopularityModel, fit_popularity, fit_trending
from stages.models.rp3beta import fit_rp3beta
from stages.models.training import TrainingData
from stages.schema import SchemaError

N_USERS, N_ITEMS, HALF = 60, 24, 12  # users 0-29 and tracks 0-11 are cluster A, the rest B
# [als, content, popularity, rp3beta]; the no-audio sets differ so that tests see which is used
WEIGHTS = {
    "cold": (0.0, 0.7, 0.3, 0.0),
    "few": (0.0, 0.5, 0.5, 0.0),
    "warm": (0.6, 0.3, 0.1, 0.0),
    "few_no_audio": (1.0, 0.0, 0.0, 0.0),
    "warm_no_audio": (0.4, 0.3, 0.2, 0.4),
}
LIKED = (0.7, 0.3, 0.0, 0.0)


def _clusters(seed: int = 0) -> sp.csr_matrix:
    """Each user plays 6 of the 12 tracks of their own cluster, 1-5 times each."""
    rng = np.random.default_rng(seed)
    rows, cols, vals = [], [], []
    for u in range(N_USERS):
        base = 0 if u < N_USERS // 2 else HALF
        for i in rng.choice(HALF, size=6, replace=False):
            rows.append(u)
            cols.append(base + i)
            vals.append(np.log1p(rng.integers(1, 6)))
    return sp.csr_matrix((vals, (rows, cols)), shape=(N_USERS, N_ITEMS), dtype=np.float32)


def _audio(seed: int = 0) -> np.ndarray:
    """Cluster A is high on feature 0, low on feature 1; B the opposite; last track unknown."""
    rng = np.random.default_rng(seed)
    centre = np.where(np.arange(N_ITEMS)[:, None] < HALF, [0.9, 0.1, 0.5], [0.1, 0.9, 0.5])
    audio = centre + rng.normal(0, 0.03, size=(N_ITEMS, 3))
    audio[N_ITEMS - 1] = np.nan
    return audio


@pytest.fixture(scope="module")
def user_items() -> sp.csr_matrix:
    return _clusters()


@pytest.fixture(scope="module")
def als(user_items: sp.csr_matrix) -> AlsModel:
    return fit_als(user_items, factors=2, iterations=15, regularization=0.05, alpha=10.0, seed=1)


@pytest.fixture(scope="module")
def models(user_items: sp.csr_matrix, als: AlsModel) -> dict:
    content = fit_content(_audio())
    popularity = fit_popularity(user_items)
    return {
        "als": als,
        "bpr": fit_bpr(
            user_items, factors=8, iterations=300, learning_rate=0.1, regularization=0.01, seed=1
        ),
        "knn": fit_knn(user_items, similarity="cosine", neighbours=10),
        "knn_bm25": fit_knn(user_items, similarity="bm25", neighbours=10),
        "content": content,
        "hybrid": build_hybrid(
            als=als,
            content=content,
            popularity=popularity,
            rp3beta=fit_rp3beta(user_items, alpha=1.0, beta=0.5, neighbours=10),
            weights=WEIGHTS,
            min_tracks=5,
            liked=LIKED,
        ),
    }


def _top_unheard(scores: np.ndarray, user_items: sp.csr_matrix, n: int) -> np.ndarray:
    masked = scores.copy()
    masked[user_items.toarray() > 0] = -np.inf
    return np.argsort(-masked, axis=1, kind="stable")[:, :n]


@pytest.mark.parametrize("name", ["als", "bpr", "knn", "knn_bm25", "content", "hybrid"])
def test_each_user_gets_tracks_of_their_own_cluster(name, user_items, models):
    model = models[name]
    users = np.arange(N_USERS)
    top = _top_unheard(model.score(users, user_items), user_items, n=3)
    in_a = top < HALF
    assert in_a[: N_USERS // 2].all()
    assert (~in_a[N_USERS // 2 :]).all()
    assert model.score(users, user_items).dtype == np.float32


@pytest.mark.parametrize("name", ["als", "bpr", "knn", "content", "hybrid"])
def test_model_files_round_trip_exactly(name, user_items, models, tmp_path: Path):
    model = models[name]
    path = tmp_path / f"{name}.npz"
    with path.open("wb") as handle:
        np.savez(handle, **model.arrays())
    loaded = registry.load(name, load_arrays(path), {"liked": list(LIKED)})
    for key, value in model.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[key], value)
        assert loaded.arrays()[key].dtype == value.dtype
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(loaded.score(users, user_items), model.score(users, user_items))


def test_als_same_seed_gives_same_factors(user_items, als):
    again = fit_als(user_items, factors=2, iterations=15, regularization=0.05, alpha=10.0, seed=1)
    np.testing.assert_array_equal(again.item_factors, als.item_factors)
    np.testing.assert_array_equal(again.user_factors, als.user_factors)
    other = fit_als(user_items, factors=2, iterations=15, regularization=0.05, alpha=10.0, seed=2)
    assert not np.array_equal(other.item_factors, als.item_factors)


def test_bpr_same_seed_gives_same_factors(user_items):
    def fit():
        return fit_bpr(
            user_items, factors=4, iterations=20, learning_rate=0.05, regularization=0.01, seed=3
        )

    np.testing.assert_array_equal(fit().item_factors, fit().item_factors)


def test_als_fold_in_of_cluster_a_tracks_recommends_cluster_a(als):
    liked = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 0], [0, 1, 2])), shape=(1, N_ITEMS))
    scores = als.fold_in(liked) @ als.item_factors.T
    top = _top_unheard(scores, liked, n=5)[0]
    assert (top < HALF).all()


def test_als_explain_names_heard_tracks_of_the_same_cluster(user_items, als):
    row = user_items[[0]]
    target = int(np.setdiff1d(np.arange(HALF), row.indices)[0])
    user = UserHistory(user_idx=0, counts=row, weights=row)
    top = als.explain(user, target, n=3).contributions["als"]
    assert len(top) == 3
    assert {i for i, _ in top} <= set(row.indices.tolist())
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)


def test_bm25_confidence_matches_implicit_on_items_as_documents():
    counts = sp.csr_matrix(np.array([[1, 0, 3], [2, 2, 0]], dtype=np.float32))
    weighted = bm25_confidence(counts, k1=100.0, b=0.8).toarray()
    # hand-computed: N = 3 items, idf(user) = log(3) - log1p(tracks of that user)
    idf = np.log(3) - np.log1p(np.array([2, 2]))
    lengths = np.array([3.0, 2.0, 3.0])  # plays per track (column sums)
    norm = 0.2 + 0.8 * lengths / lengths.mean()
    expected = counts.toarray() * 101 / (100 * norm[None, :] + counts.toarray()) * idf[:, None]
    np.testing.assert_allclose(weighted, expected, rtol=1e-5)
    assert weighted.dtype == np.float32


def test_popularity_is_listener_share():
    # the last user has no training track and does not count
    counts = sp.csr_matrix(
        np.array([[1, 0, 3], [2, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0]], np.float32)
    )
    model = fit_popularity(counts)
    np.testing.assert_allclose(model.item_scores, [0.75, 0.0, 0.5])
    pairs = counts.tocoo()
    frame = pl.LazyFrame({"user_idx": pairs.row, "track_idx": pairs.col})
    shares = listener_share(frame, n_users=4).collect().sort("track_idx")
    np.testing.assert_array_equal(
        model.item_scores[shares["track_idx"].to_numpy()],
        shares["popularity"].to_numpy().astype(np.float32),
    )
    np.testing.assert_array_equal(model.score(np.arange(2), counts[:2]), [model.item_scores] * 2)


def test_trending_decays_plays_by_half_life():
    model = fit_trending(
        np.array([0, 1, 1, 2]),
        np.array([2, 4, 1, 3]),
        np.array([0.0, 28.0, 14.0, 7.0]),
        n_items=4,
        half_life_days=14.0,
    )
    # 2*1 = 2; 4/4 + 1/2 = 1.5; 3/sqrt(2) = 2.1213; unplayed 0; divided by the max
    expected = np.array([2.0, 1.5, 3 / np.sqrt(2), 0.0]) / (3 / np.sqrt(2))
    np.testing.assert_allclose(model.item_scores, expected, rtol=1e-6)


def test_knn_similarity_of_a_track_stays_in_its_cluster(user_items):
    model = fit_knn(user_items, similarity="cosine", neighbours=5)
    neighbours = model.similarity[[0]].indices
    assert len(neighbours) == 5
    assert (neighbours < HALF).all()
    np.testing.assert_allclose(model.similarity[0, 0], 1.0, rtol=1e-6)


def test_content_standardises_features_and_zeroes_unknown_tracks():
    model = fit_content(np.array([[1.0, 100.0], [3.0, 300.0], [np.nan, np.nan]]))
    np.testing.assert_allclose(model.item_vectors, [[-1, -1], [1, 1], [0, 0]])
    assert model.has_features.tolist() == [True, True, False]
    row = sp.csr_matrix(np.array([[2.0, 0.0, 0.0]], np.float32))
    # profile = vector of track 0; cosine to track 0 = 1, to track 1 = -1, unknown track = -1
    np.testing.assert_allclose(model.score(np.zeros(1, np.int64), row), [[1, -1, -1]], atol=1e-6)
    empty = sp.csr_matrix((1, 3), dtype=np.float32)
    np.testing.assert_array_equal(model.score(np.zeros(1, np.int64), empty), [[0, 0, 0]])


def test_content_without_audio_features_scores_zero():
    model = fit_content(np.zeros((4, 0)))
    row = sp.csr_matrix(np.array([[1.0, 0, 0, 0]], np.float32))
    np.testing.assert_array_equal(model.score(np.zeros(1, np.int64), row), np.zeros((1, 4)))


def test_normalise_rows_scales_each_row_to_unit_range():
    scores = np.array([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]], dtype=np.float32)
    np.testing.assert_allclose(normalise_rows(scores), [[0, 1, 0.5], [0, 0, 0]])


def test_history_weights_switch_exactly_at_the_thresholds():
    table = np.array([WEIGHTS[h] for h in ("cold", "few", "warm")], dtype=np.float32)
    assert table.shape == (3, 4)
    got = history_weights(np.array([0, 1, 4, 5, 6]), table, min_tracks=5)
    np.testing.assert_allclose(got, [table[0], table[1], table[1], table[2], table[2]])


@pytest.mark.parametrize(
    ("weights", "has_audio", "expected"),
    [
        ((0.0, 0.7, 0.3, 0.0), True, (0.0, 0.7, 0.3, 0.0)),
        ((2.0, 1.0, 1.0, 0.0), True, (0.5, 0.25, 0.25, 0.0)),  # scaled to sum to 1
        ((1.0, 1.0, 1.0, 1.0), True, (0.25, 0.25, 0.25, 0.25)),
        ((0.0, 0.7, 0.3, 0.0), False, (0.0, 0.0, 1.0, 0.0)),  # no audio: content's share dropped
        ((0.3, 0.4, 0.3, 0.0), False, (0.5, 0.0, 0.5, 0.0)),  # ... the others keep proportions
        ((0.2, 0.4, 0.2, 0.4), False, (0.25, 0.0, 0.25, 0.5)),
        ((0.0, 1.0, 0.0, 0.0), False, (0.0, 0.0, 1.0, 0.0)),  # content only: popularity
    ],
)
def test_effective_weights_drop_content_without_audio_and_sum_to_one(weights, has_audio, expected):
    got = effective_weights(weights, has_audio=has_audio)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got.sum() == pytest.approx(1.0)
    table = effective_weights([weights, weights], has_audio=has_audio)
    np.testing.assert_allclose(table, [expected, expected], rtol=1e-6)


HAND_RP3BETA = KnnModel(
    name="rp3beta",
    similarity=sp.csr_matrix(
        np.array([[0, 0.2, 0.8, 0.4], [0.2, 0, 0, 0], [0.8, 0, 0, 0], [0.4, 0, 0, 0]], np.float32)
    ),
)


def _hand_hybrid(*, min_tracks: int) -> HybridModel:
    """Four tracks whose normalised component scores, for a user who heard track 0 once, are
    ALS [.5, 1, 0, .25] (scores 2, 4, 0, 1), content [1, .5, (1 + 1/sqrt 2) / 2, 0] (cosines
    1, 0, 1/sqrt 2, -1 to the profile [1, 0]), popularity [0, .5, .25, 1] (.1, .5, .3, .9),
    RP3beta [0, .25, 1, .5] (track 0's row of similarities, 0, .2, .8, .4)."""
    return build_hybrid(
        als=AlsModel(
            user_factors=np.array([[1.0, 0.0]], dtype=np.float32),
            item_factors=np.array([[2, 0], [4, 0], [0, 0], [1, 0]], dtype=np.float32),
        ),
        content=ContentModel(
            item_vectors=np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32)
        ),
        popularity=PopularityModel(item_scores=np.array([0.1, 0.5, 0.3, 0.9], dtype=np.float32)),
        rp3beta=HAND_RP3BETA,
        weights=WEIGHTS,
        min_tracks=min_tracks,
        liked=(0.0, 0.3, 0.7, 0.0),
    )


HEARD_0 = sp.csr_matrix(np.array([[1.0, 0, 0, 0]], dtype=np.float32))
C2 = (1 + 2**-0.5) / 2  # normalised content score of track 2


@pytest.mark.parametrize(
    ("min_tracks", "row", "expected"),
    [
        # warm (1 track >= min_tracks 1): .6 ALS + .3 content + .1 popularity
        (1, HEARD_0, [0.6 * 0.5 + 0.3, 0.6 + 0.15 + 0.05, 0.3 * C2 + 0.025, 0.15 + 0.1]),
        # few (1 track < 2): .5 content + .5 popularity
        (2, HEARD_0, [0.5, 0.25 + 0.25, 0.5 * C2 + 0.125, 0.5]),
        # cold (no track): no content profile, so .3 x normalised popularity
        (1, sp.csr_matrix((1, 4), dtype=np.float32), [0, 0.15, 0.075, 0.3]),
    ],
)
def test_hybrid_score_is_the_hand_computed_blend(min_tracks, row, expected):
    model = _hand_hybrid(min_tracks=min_tracks)
    np.testing.assert_allclose(model.score(np.array([0]), row)[0], expected, rtol=1e-6)


def test_hybrid_new_listener_uses_the_liked_weights():
    # liked = (0, .3, .7): .3 content + .7 popularity, whatever ALS folds in
    got = _hand_hybrid(min_tracks=1).score_new(HEARD_0)[0]
    np.testing.assert_allclose(got, [0.3, 0.15 + 0.35, 0.3 * C2 + 0.175, 0.7], rtol=1e-6)


def test_hybrid_shares_are_the_weighted_parts_of_the_score():
    shares = _hand_hybrid(min_tracks=1).shares(0, HEARD_0, 1)  # track 1 scores 0.8
    assert [(s.model, s.weight) for s in shares] == [
        ("als", pytest.approx(0.6)),
        ("content", pytest.approx(0.3)),
        ("popularity", pytest.approx(0.1)),
        ("rp3beta", pytest.approx(0.0)),
    ]
    assert [s.normalised_score for s in shares] == pytest.approx([1.0, 0.5, 0.5, 0.25])
    assert [s.contribution for s in shares] == pytest.approx([0.6, 0.15, 0.05, 0.0])
    assert [s.share for s in shares] == pytest.approx([0.75, 0.1875, 0.0625, 0.0])


def _no_audio_hybrid() -> HybridModel:
    """`_hand_hybrid`'s ALS, popularity and RP3beta over a catalogue without audio features."""
    hand = _hand_hybrid(min_tracks=1)
    return build_hybrid(
        als=hand.als,
        content=fit_content(np.zeros((4, 0))),
        popularity=hand.popularity,
        rp3beta=hand.rp3beta,
        weights=WEIGHTS,
        min_tracks=1,
        liked=(0.0, 0.3, 0.7, 0.0),
    )


HAND_ALS = np.array([0.5, 1, 0, 0.25])  # `_hand_hybrid`'s normalised parts after HEARD_0
HAND_POP = np.array([0, 0.5, 0.25, 1])
HAND_RP3 = np.array([0, 0.25, 1, 0.5])


def test_hybrid_without_audio_features_uses_the_no_audio_sets_18():
    model = _no_audio_hybrid()
    # cold [0, .7, .3, 0] -> popularity only; few_no_audio [1, 0, 0, 0] -> ALS; warm_no_audio
    # [.4, .3, .2, .4] -> content dropped, .4/.2/.4 of 1: .4 ALS + .2 popularity + .4 RP3beta;
    # liked [0, .3, .7, 0] -> popularity
    np.testing.assert_allclose(
        model.weights, [[0, 0, 1, 0], [1, 0, 0, 0], [0.4, 0, 0.2, 0.4]], rtol=1e-6
    )
    np.testing.assert_allclose(model.liked, [0, 0, 1, 0])
    assert model.weights.sum(axis=1) == pytest.approx([1, 1, 1])
    got = model.score(np.array([0]), HEARD_0)[0]  # warm: min_tracks 1
    np.testing.assert_allclose(got, 0.4 * HAND_ALS + 0.2 * HAND_POP + 0.4 * HAND_RP3, rtol=1e-6)
    shares = model.shares(0, HEARD_0, 1)
    assert [s.weight for s in shares] == pytest.approx([0.4, 0, 0.2, 0.4])


def test_hybrid_rp3beta_share_is_the_hand_computed_blend_18():
    model = dataclasses.replace(
        _hand_hybrid(min_tracks=1),
        weights=np.array([[0, 0.7, 0.3, 0], [0, 0.5, 0.5, 0], [0.5, 0, 0, 0.5]], np.float32),
    )
    got = model.score(np.array([0]), HEARD_0)[0]
    np.testing.assert_allclose(got, 0.5 * HAND_ALS + 0.5 * HAND_RP3, rtol=1e-6)
    contributions = model.explain(
        UserHistory(user_idx=0, counts=HEARD_0, weights=HEARD_0), 2, n=3
    ).contributions
    assert set(contributions) == {"als", "content", "rp3beta"}


def test_hybrid_with_audio_features_keeps_its_content_share_18():
    model = _hand_hybrid(min_tracks=1)  # two audio features
    np.testing.assert_allclose(model.weights, [WEIGHTS[h] for h in ("cold", "few", "warm")])


def test_few_tracks_without_audio_rank_exactly_as_als_fold_in_18(user_items, als):
    """Known answer: with few_no_audio = ALS only, a listener with 2 tracks gets ALS fold-in's
    list, whatever popularity says; the same catalogue with audio uses `few` (content and
    popularity only), which ranks otherwise."""
    popularity = PopularityModel(item_scores=np.linspace(1, 0, N_ITEMS, dtype=np.float32))
    rp3 = fit_rp3beta(user_items, alpha=1.0, beta=0.5, neighbours=10)

    def hybrid(audio: np.ndarray) -> HybridModel:
        return build_hybrid(
            als=als, content=fit_content(audio), popularity=popularity, rp3beta=rp3,
            weights=WEIGHTS, min_tracks=5, liked=LIKED,
        )  # fmt: skip

    # a cluster-A listener of tracks 0 and 1, a cluster-B one of 12 and 13 (few: 2 < 5)
    rows = sp.csr_matrix(([1.0, 2.0, 1.0, 3.0], ([0, 0, 1, 1], [0, 1, 12, 13])), shape=(2, N_ITEMS))
    plain = hybrid(np.zeros((N_ITEMS, 0)))
    got = blend(plain.parts(rows, user_factors=als.fold_in(rows)), plain.user_weights(rows))
    want = als.score_new(rows)
    np.testing.assert_array_equal(top_k(got, rows, k=10), top_k(want, rows, k=10))
    # popularity alone would rank track 2 (A) first for both: the list is not popularity's
    assert top_k(got, rows, k=1)[1, 0] >= HALF
    with_audio = hybrid(_audio())
    audio_weights = with_audio.user_weights(rows)
    np.testing.assert_allclose(audio_weights, [WEIGHTS["few"]] * 2, rtol=1e-6)


def test_loaded_hybrid_without_audio_keeps_the_effective_weights_18():
    model = _no_audio_hybrid()
    loaded = load_hybrid(model.arrays(), liked=(0.7, 0.3, 0.0, 0.0))
    np.testing.assert_array_equal(loaded.weights, model.weights)
    np.testing.assert_allclose(loaded.liked, [1, 0, 0, 0])
    np.testing.assert_array_equal(
        loaded.rp3beta.similarity.toarray(), HAND_RP3BETA.similarity.toarray()
    )


def test_hybrid_saved_before_rp3beta_is_refused_with_a_fix_18():
    arrays = _no_audio_hybrid().arrays()
    arrays["weights"] = arrays["weights"][:, :3]
    with pytest.raises(SchemaError, match="rerun `musicrec train`"):
        load_hybrid(arrays, liked=LIKED)


@pytest.mark.parametrize("similarity", ["cosine", "bm25"])
def test_knn_equals_implicits_own_recommenders(user_items, similarity):
    reference = (CosineRecommender if similarity == "cosine" else BM25Recommender)(
        K=5, num_threads=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParameterWarning)  # implicit converts its own COO
        reference.fit(user_items, show_progress=False)
    ours = fit_knn(user_items, similarity=similarity, neighbours=5).similarity
    np.testing.assert_allclose(ours.toarray(), reference.similarity.toarray(), rtol=1e-6)


def test_training_ages_without_timestamps_are_zero_17():
    """A play-count table has no times: every age is 0, so trending ranks as play counts."""
    frame = pl.DataFrame(
        {"user_idx": [0, 1], "track_idx": [0, 1], "weight": [1.0, 1.0], "play_count": [5, 2],
         "last_ts": [None, None]},
        schema_overrides={"user_idx": pl.UInt32, "track_idx": pl.UInt32, "weight": pl.Float32,
                          "play_count": pl.UInt32, "last_ts": pl.Datetime("us", "UTC")},
    )  # fmt: skip
    data = TrainingData.build(frame, np.zeros((2, 0)), n_users=2, n_tracks=2)
    assert data.ages()["age_days"].to_list() == [0.0, 0.0]
