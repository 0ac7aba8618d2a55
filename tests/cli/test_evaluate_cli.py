"""`musicrec evaluate` on hand-written upstream artifacts with hand-computed metrics."""

import datetime as dt
import json
import math
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from musicrec_cli import artifacts as art
from musicrec_cli.app import app
from stages.schema import MODEL, PREDICTIONS, TRACK_IDX, USER_IDX

runner = CliRunner()
IDCG_2 = 1 + 1 / math.log2(3)
QUALITY = {"rows_in": 100, "users": 4, "steps": {"dedupe": {"rows_kept": 90}}, "note": "ok"}


def write_upstream(root: Path) -> None:
    """01_preprocess, 02_split and 05_predict for 5 tracks, 4 users and two models.

    Artists a a b c b; danceability 0, .5, 1, null, .5; train listeners 4, 2, 1, 0, 1 of 4
    users. Test: user 0 -> {3}, user 1 -> {2, 3}, user 3 -> {2}; user 2 has none.
    popularity recommends 0, 2 to everyone; "als+rerank" 3, 2 / 2, 4 / 1, 4 / 4.
    """
    u32 = pl.UInt32
    items = pl.DataFrame(
        {
            TRACK_IDX: pl.Series(range(5), dtype=u32),
            "artist_id": ["a", "a", "b", "c", "b"],
            "danceability": pl.Series([0.0, 0.5, 1.0, None, 0.5], dtype=pl.Float32),
        }
    )
    train = pl.DataFrame(
        {USER_IDX: [0, 1, 2, 3, 0, 1, 0, 3], TRACK_IDX: [0, 0, 0, 0, 1, 1, 2, 4]},
        schema={USER_IDX: u32, TRACK_IDX: u32},
    )
    test = pl.DataFrame(
        {USER_IDX: [0, 1, 1, 3], TRACK_IDX: [3, 2, 3, 2]}, schema={USER_IDX: u32, TRACK_IDX: u32}
    )
    lists = {"popularity": [[0, 2]] * 4, "als+rerank": [[3, 2], [2, 4], [1, 4], [4]]}
    generated_at = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    rows = [
        (f"user{u}", u, r, f"track{t}", t, f"track{t}", 1.0 / r, model, generated_at)
        for model, per_user in lists.items()
        for u, tracks in enumerate(per_user)
        for r, t in enumerate(tracks, start=1)
    ]
    predictions = pl.DataFrame(rows, schema=PREDICTIONS, orient="row")
    for stage, files, summary in (
        ("preprocess", {art.ITEMS: items}, {}),
        ("split", {art.TRAIN: train, art.TEST: test}, {"n_tracks": 5, "n_users": 4}),
        ("predict", {art.PREDICTIONS: predictions}, {}),
    ):
        with art.open_stage(root, stage) as out:
            for name, frame in files.items():
                out.write_parquet(frame, name)
            if stage == "preprocess":
                out.write_json(QUALITY, art.QUALITY_REPORT)
            art.commit_stage(out, {"config": {}, "inputs": {}, "summary": summary})


def invoke(root: Path, *args: str) -> object:
    return runner.invoke(
        app, ["--set", f"paths.artifacts={root}", "--set", "evaluate.k=[1, 2]", *args]
    )


@pytest.fixture
def evaluated(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    write_upstream(tmp_path)
    result = invoke(tmp_path, "evaluate", "--json")
    assert result.exit_code == 0, result.output
    return tmp_path, json.loads(result.stdout)


def test_evaluate_json_hand_computed(evaluated: tuple[Path, dict]) -> None:
    _, got = evaluated
    assert (got["k"], got["n_users_evaluated"], got["n_users_without_test"]) == ([1, 2], 3, 1)
    als, pop = got["models"]["als+rerank"], got["models"]["popularity"]
    assert als == pytest.approx(
        {
            "n_users": 3,
            "n_users_without_recommendations": 0,
            "precision@1": 2 / 3,
            "recall@1": 0.5,
            "ndcg@1": 2 / 3,
            "map@1": 2 / 3,
            "mrr@1": 2 / 3,
            "hit_rate@1": 2 / 3,
            "precision@2": 1 / 3,
            "recall@2": 0.5,
            "ndcg@2": (1 + 1 / IDCG_2) / 3,
            "map@2": 0.5,
            "mrr@2": 2 / 3,
            "hit_rate@2": 2 / 3,
            # user 2 (no test tracks) was recommended track 1: it does not count
            "coverage@1": 0.6,
            "coverage@2": 0.6,
            "artist_diversity@1": 1.0,
            "artist_diversity@2": (1 + 0.5 + 1) / 3,
            "novelty@1": 2.0,
            "novelty@2": 2.0,
            "popularity@1": (0 + 0.25 + 0.25) / 3,
            "popularity@2": (0.125 + 0.25 + 0.25) / 3,
            "audio_distance@1": None,
            "audio_distance@2": 0.5 / math.sqrt(1 / 8),  # only user 1 has two featured tracks
        }
    )
    assert pop["ndcg@2"] == pytest.approx((1 / math.log2(3) / IDCG_2 + 1 / math.log2(3)) / 3)
    assert pop["map@2"] == pytest.approx(0.25)
    assert pop["coverage@2"] == pytest.approx(0.4)
    assert got["baseline"] == "popularity"
    lift = got["lift_over_baseline"]["als+rerank"]
    assert lift["ndcg@2"] == pytest.approx(als["ndcg@2"] / pop["ndcg@2"] - 1)
    assert lift["mrr@2"] == pytest.approx(1.0)
    assert lift["ndcg@1"] is None  # popularity scores 0 at K=1


def test_evaluate_writes_per_user_metrics(evaluated: tuple[Path, dict]) -> None:
    root, _ = evaluated
    per_user = pl.read_parquet(root / "06_evaluate" / art.PER_USER_METRICS)
    assert per_user.select(MODEL, USER_IDX, "ndcg@1", "n_recommended").to_dict(as_series=False) == {
        MODEL: ["als+rerank"] * 3 + ["popularity"] * 3,
        USER_IDX: [0, 1, 3, 0, 1, 3],
        "ndcg@1": [1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        "n_recommended": [2, 2, 1, 2, 2, 2],
    }
    manifest = json.loads((root / "06_evaluate" / art.MANIFEST).read_text())
    assert manifest["summary"]["n_users_evaluated"] == 3


def test_evaluate_table_marks_best_and_shows_lift(tmp_path: Path) -> None:
    write_upstream(tmp_path)
    result = invoke(tmp_path, "evaluate", "--k", "2")
    assert result.exit_code == 0, result.output
    # the tables are the result: stdout (issue 16: `musicrec evaluate > table.txt`)
    assert "Ranking at K=2 (3 test users)" in result.stdout
    assert "als+rerank" in result.stdout
    assert "+58%" in result.stdout  # NDCG@2 lift: 0.5377 / 0.3393 - 1
    assert "Ranking" not in result.stderr


def test_evaluate_rejects_a_table_k_that_is_not_evaluated(tmp_path: Path) -> None:
    write_upstream(tmp_path)
    result = invoke(tmp_path, "evaluate", "--k", "7")
    assert result.exit_code == 2
    assert "7 is not one of the cut-offs [1, 2]" in result.stderr
    assert not (tmp_path / "06_evaluate").exists()


def test_evaluate_without_predictions_names_the_command(tmp_path: Path) -> None:
    write_upstream(tmp_path)
    (tmp_path / "05_predict" / art.MANIFEST).unlink()
    result = invoke(tmp_path, "evaluate")
    assert result.exit_code == 1
    assert "run `musicrec predict` first" in result.stderr


def test_evaluate_rejects_bad_k(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--set", "evaluate.k=[0, 5]", "evaluate"])
    assert result.exit_code == 1
    # console.error renders with markup, so "[evaluate]" itself is swallowed (console.py)
    assert "k = [0, 5]: expected a non-empty list of integers between 1 and" in result.stderr


def test_evaluate_json_holds_the_paired_tests(evaluated: tuple[Path, dict]) -> None:
    _, got = evaluated
    tests = got["significance"]
    assert (tests["alpha"], tests["bootstrap_samples"], tests["seed"]) == (0.05, 1000, 42)
    als = tests["vs_baseline"]["als+rerank"]["ndcg@1"]
    # per-user ndcg@1: als 1, 1, 0 vs popularity 0, 0, 0 (hand-computed above)
    assert als["reference"] == "popularity"
    assert als["n_users"] == 3
    assert als["mean_difference"] == pytest.approx(2 / 3)
    assert 0 <= als["ci_low"] <= 2 / 3 <= als["ci_high"] <= 1
    assert als["p_value"] == pytest.approx(0.5)  # two positive differences: exact p = 2 / 4
    assert als["significant"] is False
    # als+rerank is the best on ndcg@1 and the baseline is the other model: nothing vs best
    assert tests["vs_best"] == {}


def test_evaluate_baseline_option_changes_the_reference(tmp_path: Path) -> None:
    write_upstream(tmp_path)
    result = invoke(tmp_path, "evaluate", "--json", "--baseline", "als+rerank")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["baseline"] == "als+rerank"
    assert set(got["significance"]["vs_baseline"]) == {"popularity"}
    assert "ns" in result.stderr  # 3 users: no difference is significant


def test_evaluate_metric_variants_option(tmp_path: Path) -> None:
    write_upstream(tmp_path)
    result = invoke(tmp_path, "evaluate", "--json", "--metric-variants", "--k", "2")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)["metric_variants"]
    assert set(got) == {"musicrec", "implicit", "lenskit", "recbole", "spark", "trec"}
    # popularity@2 lists 0, 2: user 1 (R = {2, 3}) and user 3 (R = {2}) hit at rank 2; user 0
    # (R = {3}) misses. implicit: 2 hits / (1 + 2 + 1) slots; ours: (0 + 1/2 + 1/2) / 3
    assert got["implicit"]["popularity"]["precision@2"] == pytest.approx(2 / 4)
    assert got["musicrec"]["popularity"]["precision@2"] == pytest.approx(1 / 3)
    # spark also counts user 2 (recommended, no test track) as 0
    assert got["spark"]["popularity"]["precision@2"] == pytest.approx(1 / 4)
    assert "precision@2 as each library defines it" in result.stderr


def test_evaluate_reports_views_and_segments(evaluated: tuple[Path, dict]) -> None:
    root, got = evaluated
    views = got["views"]
    assert "replay" not in views  # this split wrote no test_replay.parquet
    assert views["discovery"]["popularity"]["ndcg@2"] == got["models"]["popularity"]["ndcg@2"]
    # new artists: user 0 -> {c}, user 1 -> {b, c}; user 3's test artist b is known: left out.
    # popularity's lists 0, 2 are artists a, b: user 1 finds b at artist rank 2
    artists = views["new_artists"]["popularity"]
    assert artists["n_users"] == 2
    assert artists["recall@2"] == pytest.approx((0 + 1 / 2) / 2)
    assert artists["artist_coverage@2"] == pytest.approx(2 / 3)
    # every test user has 2-3 training tracks: all in segment 1-4
    segments = got["segments"]
    assert segments["labels"] == ["0", "1-4", "5-19", "20+"]
    assert list(segments["by_model"]["popularity"]) == ["1-4"]
    assert segments["by_model"]["popularity"]["1-4"]["n_users"] == 3
    per_user = pl.read_parquet(root / "06_evaluate" / art.PER_USER_METRICS)
    assert per_user.filter(pl.col(MODEL) == "popularity")["n_train_tracks"].to_list() == [3, 2, 2]
