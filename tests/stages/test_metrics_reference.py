"""Our ranking metrics against independent implementations: ranx (all six) and scikit-learn (NDCG).

ranx's code is run with numba's JIT disabled: the same definitions, executed as plain Python,
which takes milliseconds here instead of about 30 s of compilation on first use.
"""

import importlib
from types import ModuleType

import numba
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import ndcg_score

from stages.evaluate import ranking as metrics
from stages.schema import MODEL, RANK, TRACK_IDX, USER_IDX

KS = (1, 3, 5, 10, 20, 100)  # 100 is larger than the catalogue and every list
N_ITEMS = 60


@pytest.fixture(scope="module")
def ranx() -> ModuleType:
    numba.config.DISABLE_JIT = True  # ranx is the only numba user in the test suite
    return importlib.import_module("ranx")


def random_run(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """150 users with 1-25 recommendations and 1-15 test tracks, half of them recommended."""
    rng = np.random.default_rng(seed)
    recs, test = [], []
    for user in range(150):
        ranked = rng.choice(N_ITEMS, size=rng.integers(1, 26), replace=False)
        recs += [(user, rank, int(t)) for rank, t in enumerate(ranked, start=1)]
        n_rel = int(rng.integers(1, 16))
        pool = np.concatenate([ranked[: n_rel // 2 + 1], rng.choice(N_ITEMS, size=n_rel)])
        test += [(user, int(t)) for t in np.unique(pool)[:n_rel]]
    recs_df = pl.DataFrame(recs, schema=[USER_IDX, RANK, TRACK_IDX], orient="row")
    test_df = pl.DataFrame(test, schema=[USER_IDX, TRACK_IDX], orient="row")
    return recs_df.with_columns(pl.lit("random").alias(MODEL)), test_df


def ranx_scores(
    ranx: ModuleType, recs: pl.DataFrame, test: pl.DataFrame, *, ks: tuple[int, ...] = KS
) -> dict[str, list[float]]:
    qrels: dict[str, dict[str, int]] = {}
    for user, track in test.iter_rows():
        qrels.setdefault(f"u{user}", {})[f"t{track}"] = 1
    run: dict[str, dict[str, float]] = {}
    for user, rank, track, _ in recs.iter_rows():
        run.setdefault(f"u{user}", {})[f"t{track}"] = 1.0 / rank  # distinct, best first
    names = [f"{m}@{k}" for m in metrics.METRICS for k in ks]
    ranx_run = ranx.Run.from_dict(run)
    ranx.evaluate(ranx.Qrels.from_dict(qrels), ranx_run, names, return_mean=False)
    users = test[USER_IDX].unique().sort()
    return {name: [ranx_run.scores[name][f"u{u}"] for u in users] for name in names}


@pytest.mark.parametrize("seed", [1, 2])
def test_metrics_match_ranx_on_random_rankings(ranx: ModuleType, seed: int) -> None:
    recs, test = random_run(seed)
    ours = metrics.per_user_metrics(recs.lazy(), test.lazy(), ks=KS).collect()
    ref = ranx_scores(ranx, recs, test)
    n_rel = ours[metrics.N_RELEVANT].to_numpy()
    for k in KS:
        for metric in ("precision", "recall", "ndcg", "mrr", "hit_rate"):
            name = metrics.metric_name(metric, k)
            assert ours[name].to_numpy() == pytest.approx(ref[name], abs=1e-12), name
        # ranx divides AP@k by |R|, we by min(|R|, k): equal after rescaling, and equal
        # outright where |R| <= k
        ap = ours[metrics.metric_name("map", k)].to_numpy()
        ref_ap = np.asarray(ref[f"map@{k}"])
        assert ap * np.minimum(n_rel, k) / n_rel == pytest.approx(ref_ap, abs=1e-12)
        assert ap[n_rel <= k] == pytest.approx(ref_ap[n_rel <= k], abs=1e-12)


def test_ranx_map_differs_where_more_relevant_than_k(ranx: ModuleType) -> None:
    # R = {1, 2, 3}, perfect top-2: ours 1.0, ranx 2/3
    recs = pl.DataFrame({USER_IDX: [0, 0], RANK: [1, 2], TRACK_IDX: [1, 2], MODEL: ["m", "m"]})
    test = pl.DataFrame({USER_IDX: [0, 0, 0], TRACK_IDX: [1, 2, 3]})
    ours = metrics.per_user_metrics(recs.lazy(), test.lazy(), ks=(2,)).collect()
    assert ours["map@2"].item() == pytest.approx(1.0)
    assert ranx_scores(ranx, recs, test, ks=(2,))["map@2"] == pytest.approx([2 / 3])


def test_ndcg_matches_sklearn_on_dense_cases() -> None:
    rng = np.random.default_rng(7)
    n_users, n_items = 12, 8
    relevance = (rng.random((n_users, n_items)) < 0.3).astype(float)
    relevance[:, 0] = 1.0  # every user has a test track
    score = rng.permutation(n_users * n_items).reshape(n_users, n_items).astype(float)
    ranks = (-score).argsort(axis=1).argsort(axis=1) + 1
    users, items = np.nonzero(np.ones((n_users, n_items)))
    recs = pl.DataFrame(
        {USER_IDX: users, RANK: ranks.ravel(), TRACK_IDX: items, MODEL: ["m"] * users.size}
    )
    test = pl.DataFrame(dict(zip((USER_IDX, TRACK_IDX), np.nonzero(relevance), strict=True)))
    for k in (1, 3, 8):
        ours = metrics.per_user_metrics(recs.lazy(), test.lazy(), ks=(k,)).collect()
        want = [ndcg_score(relevance[[u]], score[[u]], k=k) for u in range(n_users)]
        assert ours[f"ndcg@{k}"].to_list() == pytest.approx(want), k
