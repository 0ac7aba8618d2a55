"""Each library's version of the ranking metrics: hand-computed cases, implicit and ranx."""

import importlib
import math

import numba
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from implicit.evaluation import ranking_metrics_at_k

from stages.evaluate.variants import VARIANTS, as_json, metric_variants
from stages.schema import MODEL, RANK, TRACK_IDX, USER_IDX
from tests.stages.test_metrics_reference import random_run

L2, L3 = 1 / math.log2(3), 0.5  # discounts of ranks 2 and 3 (log2(r + 1))


@pytest.fixture(scope="module")
def hand() -> dict[str, dict[str, float]]:
    """u0: R = {11, 12}, list 10 11 12; u1: R = {20..23}, list 20; u2: no test, list 13."""
    recs = pl.LazyFrame(
        {
            MODEL: ["m"] * 5,
            USER_IDX: [0, 0, 0, 1, 2],
            RANK: [1, 2, 3, 1, 1],
            TRACK_IDX: [10, 11, 12, 20, 13],
        },
        schema={MODEL: pl.String, USER_IDX: pl.UInt32, RANK: pl.UInt16, TRACK_IDX: pl.UInt32},
    )
    test = pl.LazyFrame(
        {USER_IDX: [0, 0, 1, 1, 1, 1], TRACK_IDX: [11, 12, 20, 21, 22, 23]},
        schema={USER_IDX: pl.UInt32, TRACK_IDX: pl.UInt32},
    )
    return {v: rows["m"] for v, rows in as_json(metric_variants(recs, test, ks=(3,))).items()}


NDCG_U0 = (L2 + L3) / (1 + L2)
NDCG_U1 = 1 / (1 + L2 + L3)
EXPECTED = {
    "musicrec": {
        "precision@3": (2 / 3 + 1 / 3) / 2,
        "recall@3": (1 + 1 / 4) / 2,
        "ndcg@3": (NDCG_U0 + NDCG_U1) / 2,
        "map@3": ((1 / 2 + 2 / 3) / 2 + 1 / 3) / 2,
        "mrr@3": (1 / 2 + 1) / 2,
        "hit_rate@3": 1.0,
    },
    # micro-averaged precision: 3 hits over min(3, 2) + min(3, 4) slots
    "implicit": {"precision@3": 3 / 5, "ndcg@3": (NDCG_U0 + NDCG_U1) / 2, "map@3": 0.458333333},
    "lenskit": {
        "precision@3": (2 / 3 + 1 / 1) / 2,  # u1's list has one track
        "recall@3": (2 / 2 + 1 / 3) / 2,  # over min(|R|, 3)
        # discount max(log2 r, 1): ranks 1 and 2 count 1, rank 3 1 / log2(3)
        "ndcg@3": ((1 + L2) / 2 + 1 / (2 + L2)) / 2,
        "map@3": ((1 / 2 + 2 / 3) / 2 + 1 / 1) / 2,  # u1: over min(|R|, |L|) = 1
        "mrr@3": 0.75,
        "hit_rate@3": 1.0,
    },
    # u2 (a list, no test tracks) counts as 0: means over 3 users
    "spark": {
        "precision@3": (2 / 3 + 1 / 3) / 3,
        "recall@3": (1 + 1 / 4) / 3,
        "ndcg@3": (NDCG_U0 + NDCG_U1) / 3,
        "map@3": ((1 / 2 + 2 / 3) / 2 + 1 / 3) / 3,
    },
    "trec": {"map@3": ((1 / 2 + 2 / 3) / 2 + 1 / 4) / 2},  # u1: AP over |R| = 4
}
EXPECTED["recbole"] = EXPECTED["musicrec"]
EXPECTED["implicit"]["map@3"] = EXPECTED["musicrec"]["map@3"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_matches_its_hand_computed_definition(hand, variant):
    got = hand[variant]
    for name, value in EXPECTED[variant].items():
        assert got[name] == pytest.approx(value), name
    if variant == "implicit":
        assert set(got) == {"precision@3", "ndcg@3", "map@3"}  # what implicit reports


class _Lists:
    """An implicit-style model whose recommend returns fixed lists (padded with -1)."""

    def __init__(self, recs: pl.DataFrame, n_users: int, k: int) -> None:
        self.ids = np.full((n_users, k), -1, dtype=np.int32)
        top = recs.filter(pl.col(RANK) <= k)
        self.ids[top[USER_IDX].to_numpy(), top[RANK].to_numpy() - 1] = top[TRACK_IDX].to_numpy()

    def recommend(self, userids, user_items, N=10, **_):  # noqa: N803 (implicit's name)
        ids = self.ids[userids, :N]
        return ids, np.zeros(ids.shape, dtype=np.float32)


@pytest.mark.parametrize("k", [1, 5, 10])
def test_implicit_variant_equals_implicit_ranking_metrics_at_k(k):
    recs, test = random_run(3)
    n_users, n_items = 150, 60
    test_csr = sp.csr_matrix(
        (np.ones(test.height), (test[USER_IDX].to_numpy(), test[TRACK_IDX].to_numpy())),
        shape=(n_users, n_items),
    )
    train_csr = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    want = ranking_metrics_at_k(
        _Lists(recs, n_users, 25), train_csr, test_csr, K=k, show_progress=False
    )
    got = as_json(metric_variants(recs.lazy(), test.lazy(), ks=(k,)))["implicit"]["random"]
    assert got[f"precision@{k}"] == pytest.approx(want["precision"], abs=1e-12)
    assert got[f"map@{k}"] == pytest.approx(want["map"], abs=1e-12)
    assert got[f"ndcg@{k}"] == pytest.approx(want["ndcg"], abs=1e-12)


def test_trec_variant_map_equals_ranx():
    numba.config.DISABLE_JIT = True
    ranx = importlib.import_module("ranx")
    recs, test = random_run(4)
    qrels, run = {}, {}
    for user, track in test.iter_rows():
        qrels.setdefault(f"u{user}", {})[f"t{track}"] = 1
    for user, rank, track, _ in recs.iter_rows():
        run.setdefault(f"u{user}", {})[f"t{track}"] = 1.0 / rank
    want = ranx.evaluate(ranx.Qrels.from_dict(qrels), ranx.Run.from_dict(run), "map@10")
    got = as_json(metric_variants(recs.lazy(), test.lazy(), ks=(10,)))["trec"]["random"]
    assert got["map@10"] == pytest.approx(want, abs=1e-12)
