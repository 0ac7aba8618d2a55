"""`recommend`, `similar`, `explain` through CliRunner on a tiny two-cluster pipeline.

Listeners a0-a9 play only Alpha Band, b0-b9 only Beta Band; Alpha tracks sound alike
(high danceability), Beta tracks too (low), so every right answer stays inside one band.
"""

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from musicrec_cli.app import app
from musicrec_cli.artifacts import load_matrix
from musicrec_cli.config import ConfigError, TrainConfig
from musicrec_cli.config_load import load_config
from musicrec_cli.runner.train import load_models
from stages.interactions import build_matrix
from stages.models import registry
from stages.models.knn import fit_knn

N_TRACKS = 12


def _write_data(folder: Path) -> None:
    rng = np.random.default_rng(5)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = []
    for band, prefix in (("Alpha Band", "a"), ("Beta Band", "b")):
        for u in range(10):
            for t in rng.choice(N_TRACKS, size=8, replace=False):
                for _ in range(int(rng.integers(1, 4))):
                    played = start + dt.timedelta(hours=int(rng.integers(0, 24 * 100)))
                    rows.append((f"{prefix}{u}", played, band, f"Song {t}"))
    listens = pl.DataFrame(
        rows, schema=["user_id", "played_at", "artist_name", "track_name"], orient="row"
    ).with_columns(
        pl.col("played_at").cast(pl.Datetime("us", "UTC")),
        pl.lit(200_000, pl.Int64).alias("ms_played"),
        pl.lit(False).alias("skipped"),
    )
    listens.write_parquet(folder / "listens.parquet")
    noise = rng.normal(0, 0.02, size=(2 * N_TRACKS, 3))
    level = np.repeat([0.9, 0.1], N_TRACKS)
    pl.DataFrame(
        {
            "artist_name": ["Alpha Band"] * N_TRACKS + ["Beta Band"] * N_TRACKS,
            "track_name": [f"Song {t}" for t in range(N_TRACKS)] * 2,
            "danceability": level + noise[:, 0],
            "energy": 1 - level + noise[:, 1],
            "valence": 0.5 + noise[:, 2],
        }
    ).write_parquet(folder / "tracks.parquet")


BAND_CONFIG = """
[paths]
raw = "{folder}/listens.parquet"
catalog = "{folder}/tracks.parquet"
artifacts = "{folder}/artifacts"
[preprocess]
min_user_tracks = 3
min_track_users = 2
[train]
factors = 2
iterations = 15
alpha = 10.0
bpr_iterations = 300
bpr_learning_rate = 0.1
bpr_factors = 8
knn_neighbours = 10
[predict]
n = 5
[evaluate]
k = [5]
"""


def write_band_config(folder: Path) -> None:
    """musicrec.toml for the two-band data in `folder` (also used by tests/http)."""
    (folder / "musicrec.toml").write_text(BAND_CONFIG.format(folder=folder))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve")
    _write_data(folder)
    write_band_config(folder)
    result = run(folder, "all")
    assert result.exit_code == 0, result.output
    return folder


def run(folder: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(folder / "musicrec.toml"), *args])


def as_json(folder: Path, *args: str) -> dict:
    result = run(folder, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def ids(payload: dict) -> list[str]:
    return [row["track_id"] for row in payload["tracks"]]


@pytest.mark.parametrize("model", ["hybrid", "als", "knn", "content", "bpr"])
def test_recommend_gives_a_listener_their_own_band(project: Path, model: str):
    for user, band in (("a3", "alpha band"), ("b7", "beta band")):
        payload = as_json(project, "recommend", user, "-n", "3", "--model", model)
        assert payload["user"] == user
        assert payload["model"] == model
        assert [r["rank"] for r in payload["tracks"]] == [1, 2, 3]
        assert all(t.startswith(band) for t in ids(payload)), (model, ids(payload))
        scores = [r["score"] for r in payload["tracks"]]
        assert scores == sorted(scores, reverse=True)


def test_recommend_matches_the_predict_stage(project: Path):
    preds = pl.read_parquet(project / "artifacts" / "05_predict" / "predictions.parquet")
    for model in ("hybrid", "als", "popularity"):
        want = preds.filter((pl.col("user_id") == "a3") & (pl.col("model") == model)).sort("rank")
        got = as_json(project, "recommend", "a3", "-n", "5", "--model", model)["tracks"]
        assert [r["score"] for r in got] == pytest.approx(want["score"].to_list(), rel=1e-5)
        # the same tracks, up to the order of tied scores
        last = want["score"][-1]
        above = set(want.filter(pl.col("score") > last + 1e-6)["track_id"])
        assert above <= {r["track_id"] for r in got}, model


def test_recommend_never_returns_heard_tracks(project: Path):
    train = pl.read_parquet(project / "artifacts" / "02_split" / "train.parquet")
    items = pl.read_parquet(project / "artifacts" / "01_preprocess" / "items.parquet")
    users = pl.read_parquet(project / "artifacts" / "01_preprocess" / "users.parquet")
    heard = (
        train.join(users, on="user_idx")
        .join(items, on="track_idx")
        .filter(pl.col("user_id") == "a3")
    )["track_id"].to_list()
    got = ids(as_json(project, "recommend", "a3", "-n", "20", "--model", "als"))
    assert len(got) == N_TRACKS - len(heard) + N_TRACKS  # every unheard track of both bands
    assert not set(got) & set(heard)


def test_recommend_for_liked_tracks_folds_a_new_listener_in(project: Path):
    payload = as_json(
        project, "recommend", "--liked", "ALPHA  BAND - song 1", "--liked", "alpha band - song 2"
    )
    assert payload["user"] is None
    assert payload["liked"] == ["ALPHA  BAND - song 1", "alpha band - song 2"]
    got = ids(payload)
    assert len(got) == 10
    assert all(t.startswith("alpha band") for t in got[:5]), got
    assert not {"alpha band - song 1", "alpha band - song 2"} & set(got)
    for model in ("als", "content", "knn"):
        got = ids(as_json(project, "recommend", "--liked", "Beta Band - Song 3", "-m", model))
        assert all(t.startswith("beta band") for t in got[:3]), (model, got)


def test_unknown_liked_name_offers_the_closest_tracks(project: Path):
    result = run(project, "recommend", "--liked", "Alpha Bnd - Song 1")
    assert result.exit_code == 1
    assert "unknown track 'Alpha Bnd - Song 1'" in result.output
    assert "'alpha band - song 1'" in result.output


def test_similar_stays_in_the_band_and_leaves_the_seed_out(project: Path):
    for model in ("als", "knn", "content"):
        payload = as_json(project, "similar", "Alpha Band - Song 4", "-n", "4", "-m", model)
        assert payload["track"] == "alpha band - song 4"
        got = ids(payload)
        assert len(got) == 4
        assert "alpha band - song 4" not in got
        assert all(t.startswith("alpha band") for t in got), (model, got)


def test_explain_lists_heard_tracks_and_hybrid_shares(project: Path):
    preds = pl.read_parquet(project / "artifacts" / "05_predict" / "predictions.parquet")
    top = preds.filter(
        (pl.col("user_id") == "a3") & (pl.col("model") == "hybrid") & (pl.col("rank") == 1)
    )
    track = top["track_id"].item()
    payload = as_json(project, "explain", "a3", track, "-n", "3")
    assert payload["track"] == track
    assert payload["heard"] is False
    shares = {s["model"]: s for s in payload["hybrid_shares"]}
    # the project has audio features: the default warm set, as it sums to 1
    parts = ("als", "content", "popularity", "rp3beta")
    assert [shares[m]["weight"] for m in parts] == pytest.approx(list(TrainConfig().hybrid_warm))
    assert sum(s["share"] for s in shares.values()) == pytest.approx(1.0)
    total = sum(s["contribution"] for s in shares.values())
    assert total == pytest.approx(top["score"].item(), rel=1e-5)
    for model in ("als", "knn", "content"):
        rows = payload["contributions"][model]
        assert 1 <= len(rows) <= 3
        assert all(r["track_id"].startswith("alpha band") for r in rows), model
        values = [r["value"] for r in rows]
        assert values == sorted(values, reverse=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recommend", "nobody"], "unknown user 'nobody'"),
        (["recommend", "a3", "--model", "svd"], "model 'svd' is not trained"),
        (["similar", "Gamma Band - Song 1"], "unknown track 'Gamma Band - Song 1'"),
        (["explain", "a3", "nothing - at all"], "unknown track 'nothing - at all'"),
        (["explain", "zed", "alpha band - song 1"], "unknown user 'zed'"),
        (["similar", "alpha band - song 1", "-m", "hybrid"], "model 'hybrid' has no track"),
        (["recommend", "--liked", "alpha band - song 1", "-m", "bpr"], "cannot score new"),
    ],
)
def test_unknown_names_are_one_line_errors(project: Path, args: list[str], message: str):
    result = run(project, *args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_recommend_needs_exactly_one_of_user_and_liked(project: Path):
    assert run(project, "recommend").exit_code == 2
    assert run(project, "recommend", "a3", "--liked", "alpha band - song 1").exit_code == 2


def test_train_saves_every_model_and_loads_them_back(project: Path):
    root = project / "artifacts"
    specs = json.loads((root / "04_train" / "models.json").read_text())
    # the default [train].models: every registered model but the dense EASE and the blend on it
    opt_in = {"ease", "blend"}
    assert set(specs) == set(TrainConfig().models) == set(registry.names()) - opt_in
    assert specs["hybrid"]["params"]["warm"] == list(TrainConfig().hybrid_warm)
    assert specs["knn"]["params"] == {"similarity": "cosine", "neighbours": 10}
    models = load_models(root)
    hybrid = models["hybrid"]
    # the hybrid reuses the very components trained beside it
    np.testing.assert_array_equal(hybrid.als.item_factors, models["als"].item_factors)
    np.testing.assert_array_equal(hybrid.content.item_vectors, models["content"].item_vectors)
    np.testing.assert_array_equal(
        hybrid.rp3beta.similarity.toarray(), models["rp3beta"].similarity.toarray()
    )
    assert hybrid.content.item_vectors.shape == (2 * N_TRACKS, 3)
    assert models["knn"].similarity.shape == (2 * N_TRACKS, 2 * N_TRACKS)


def test_knn_is_fitted_on_confidence_weights_and_scores_play_counts(project: Path):
    """The choice measured in docs/models.md (benchmarks/knn_matrix.py), pinned both ways."""
    root = project / "artifacts"
    knn = load_models(root, ("knn",))["knn"]
    counts = load_matrix(root, "split", "train_matrix.npz")
    weights = build_matrix(
        pl.read_parquet(root / "03_features" / "features_train.parquet"),
        value="weight",
        n_users=counts.shape[0],
        n_tracks=counts.shape[1],
    )
    on_weights = fit_knn(weights, similarity="cosine", neighbours=10).similarity
    on_counts = fit_knn(counts, similarity="cosine", neighbours=10).similarity
    np.testing.assert_array_equal(knn.similarity.toarray(), on_weights.toarray())
    assert not np.allclose(on_weights.toarray(), on_counts.toarray())
    preds = pl.read_parquet(root / "05_predict" / "predictions.parquet").filter(
        pl.col("model") == "knn"
    )
    users, tracks = preds["user_idx"].to_numpy(), preds["track_idx"].to_numpy()
    from_counts = np.asarray((counts @ knn.similarity).todense())[users, tracks]
    from_weights = np.asarray((weights @ knn.similarity).todense())[users, tracks]
    np.testing.assert_allclose(preds["score"].to_numpy(), from_counts, rtol=1e-5)
    assert not np.allclose(preds["score"].to_numpy(), from_weights, rtol=1e-3)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.hybrid_cold=[0.5, 0.5]", "4 weights >= 0 for [als, content, popularity, rp3beta]"),
        ('train.models=["als", "svd"]', "a non-empty list of model names"),
        ('train.confidence="tfidf"', "one of 'log', 'bm25', 'binary', 'raw'"),
        ('train.knn_similarity="jaccard"', "'cosine' or 'bm25'"),
    ],
)
def test_bad_train_settings_are_config_errors(override: str, message: str):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])
