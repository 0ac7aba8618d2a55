import numpy as np
import polars as pl
import pytest
from scipy import stats

from stages.evaluate.compare import bootstrap_ci, compare_models, holm, wilcoxon_p
from stages.schema import MODEL, USER_IDX


def _per_user(values: dict[str, np.ndarray], metric: str = "ndcg@10") -> pl.DataFrame:
    n = len(next(iter(values.values())))
    return pl.concat(
        pl.DataFrame(
            {MODEL: [m] * n, USER_IDX: np.arange(n, dtype=np.uint32), metric: v.astype(float)}
        )
        for m, v in values.items()
    )


def test_holm_matches_hand_computed_adjustment():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04), capped at 1
    assert holm(np.array([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
    assert holm(np.array([0.5, 0.9])) == pytest.approx([1.0, 1.0])


def test_wilcoxon_p_is_scipys_on_nonzero_differences_and_1_when_all_equal():
    d = np.array([[0.5, 0.0], [-0.2, 0.0], [0.3, 0.0], [0.0, 0.0], [0.9, 0.0], [np.nan, 0.0]])
    p = wilcoxon_p(d)
    assert p[0] == pytest.approx(stats.wilcoxon([0.5, -0.2, 0.3, 0.9]).pvalue)
    assert p[1] == 1.0


def test_wilcoxon_p_with_tied_magnitudes_is_the_exact_sign_flip_count():
    # |d| midranks: 0.5 -> 1, the four 1s -> 3.5; T = 4 x 3.5 = 14 of at most 15; of the 32
    # sign flips only "all four 1s positive" (with or without the 0.5) reach 14: p = 2 x 2/32
    d = np.array([[1.0], [1.0], [1.0], [1.0], [-0.5]])
    assert wilcoxon_p(d)[0] == 0.125


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13, 14])
def test_wilcoxon_p_equals_scipys_exact_permutation_p_on_ties(n: int):
    # scipy answers n <= 13 tied differences with all 2**n sign flips; wilcoxon_p counts them
    d = np.random.default_rng(n).choice([-1.0, -0.5, -1 / 3, 0.25, 0.5, 1.0], size=n)
    assert wilcoxon_p(d[:, None])[0] == stats.wilcoxon(d).pvalue, d


def test_bootstrap_interval_of_a_constant_shift_is_that_shift():
    low, high = bootstrap_ci(np.full((50, 1), 0.1), n_samples=100, seed=1)
    assert low == pytest.approx([0.1])
    assert high == pytest.approx([0.1])


def test_bootstrap_interval_is_the_percentiles_of_the_seeded_resample_means():
    # the definition, one sample at a time: block x n draws of the seeded generator per block,
    # each sample the mean of its drawn users' values (NaN users left out); 3 blocks, the last
    # one short, an odd n, one column with gaps and one with no user at all
    n, n_samples, block = 101, 150, 64
    values = np.random.default_rng(4).normal(size=(n, 3))
    values[::7, 1] = np.nan
    values[:, 2] = np.nan
    rng = np.random.default_rng(9)
    means = []
    for start in range(0, n_samples, block):
        draws = rng.integers(0, n, size=(min(block, n_samples - start), n))
        means += [np.nanmean(values[draw][:, :2], axis=0) for draw in draws]
    want = np.percentile(np.array(means), [2.5, 97.5], axis=0)
    low, high = bootstrap_ci(values, n_samples=n_samples, seed=9, block=block)
    assert low[:2] == pytest.approx(want[0], rel=1e-12)
    assert high[:2] == pytest.approx(want[1], rel=1e-12)
    assert np.isnan(low[2])
    assert np.isnan(high[2])


def test_identical_models_are_never_significant(rng):
    values = rng.random(300)
    out = compare_models(
        _per_user({"a": values, "b": values.copy(), "c": rng.random(300)}),
        metrics=["ndcg@10"],
        baseline="a",
    )
    b = out.filter(pl.col("model") == "b", pl.col("reference") == "a").row(0, named=True)
    assert b["p_value"] == 1.0
    assert b["mean_difference"] == 0.0
    assert (b["ci_low"], b["ci_high"]) == (0.0, 0.0)
    assert not b["significant"]


def test_comparisons_name_baseline_and_best_once_each():
    values = {"pop": np.zeros(20), "als": np.full(20, 0.5), "knn": np.full(20, 0.3)}
    out = compare_models(_per_user(values), metrics=["ndcg@10"], baseline="pop", n_samples=50)
    pairs = sorted(out.select("model", "reference", "role").rows())
    assert pairs == [
        ("als", "pop", "baseline"),
        ("knn", "als", "best"),
        ("knn", "pop", "baseline"),
    ]
    als = out.filter(pl.col("model") == "als").row(0, named=True)
    assert als["mean_difference"] == pytest.approx(0.5)
    assert als["n_users"] == 20


def test_users_with_a_null_value_are_left_out_of_that_comparison():
    a = np.array([0.1, 0.2, 0.3, 0.4])
    frame = _per_user({"a": a, "b": a + 0.1}).with_columns(
        pl.when((pl.col(MODEL) == "b") & (pl.col(USER_IDX) == 0))
        .then(None)
        .otherwise(pl.col("ndcg@10"))
        .alias("ndcg@10")
    )
    row = compare_models(frame, metrics=["ndcg@10"], baseline="a", n_samples=20).row(0, named=True)
    assert row["n_users"] == 3
    assert row["mean_difference"] == pytest.approx(0.1)


def _rejection_rate(delta: float, *, share=0.3, n=260, sigma=0.5, reps=200, seed=0) -> float:
    """Share of seeded simulations where 'better' beats 'base' significantly at 5%."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        base = rng.random(n)
        better = base + rng.normal(0, sigma, n) + delta * (rng.random(n) < share)
        out = compare_models(
            _per_user({"base": base, "better": better}),
            metrics=["ndcg@10"],
            baseline="base",
            n_samples=0,
        )
        hits += out.filter(pl.col("role") == "baseline")["significant"][0]
    return hits / reps


@pytest.mark.parametrize(("delta", "low", "high"), [(0.3, 0.68, 0.90), (0.0, 0.0, 0.10)])
def test_a_model_better_on_a_known_share_of_users_is_found_at_the_expected_power(delta, low, high):
    # differences = delta on 30% of users + N(0, 0.5^2): mean 0.09, sd 0.519; a paired t-test
    # has power Phi(0.09 sqrt(260) / 0.519 - 1.96) = 0.80 at n = 260, Wilcoxon about 0.78
    # (asymptotic relative efficiency 3/pi); with delta = 0 it rejects in ~5% of runs.
    assert low <= _rejection_rate(delta) <= high


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    data = rng.normal(0.2, 1.0, size=(100, 200))  # 200 columns of 100 users, true mean 0.2
    low, high = bootstrap_ci(data, n_samples=400, seed=4)
    coverage = np.mean((low <= 0.2) & (high >= 0.2))
    assert 0.88 <= coverage <= 0.99
