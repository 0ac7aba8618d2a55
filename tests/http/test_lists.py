"""Answers from 05_predict's lists when predict was built from the artifacts served."""

from __future__ import annotations

from pathlib import Path

import httpx
import polars as pl

from tests.http.conftest import LiveServer, copy_project, run_cli


def predicted(project: Path, user: str, model: str) -> pl.DataFrame:
    path = project / "artifacts" / "05_predict" / "predictions.parquet"
    frame = pl.read_parquet(path).filter((pl.col("user_id") == user) & (pl.col("model") == model))
    return frame.sort("rank")


def test_recommendations_come_from_predict_when_it_matches_the_chain(
    band_project: Path, tmp_path: Path
):
    project = copy_project(band_project, tmp_path / "project")
    run_cli(project, "predict")  # [predict].n = 5, als also re-ranked
    with LiveServer(project) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        assert [s["stage"] for s in http.get("/health").json()["stages"]][-1] == "predict"
        for model, rerank in (("als", False), ("als", True), ("hybrid", False)):
            body = http.get(
                "/users/b2/recommendations", params={"n": 5, "model": model, "rerank": rerank}
            ).json()
            want = predicted(project, "b2", model + "+rerank" * rerank)
            assert body["source"] == "05_predict"
            assert [t["track_id"] for t in body["tracks"]] == want["track_id"].to_list()
            assert [t["score"] for t in body["tracks"]] == want["score"].to_list()
            assert all(t["because"] for t in body["tracks"])
        # deeper than predict went: scored live, and the first five agree
        deeper = http.get("/users/b2/recommendations", params={"n": 6, "model": "als"}).json()
        assert deeper["source"] == "live"
        want = predicted(project, "b2", "als")["track_id"].to_list()
        assert [t["track_id"] for t in deeper["tracks"][:5]] == want


def test_a_predict_stage_from_an_older_train_is_not_used(band_project: Path, tmp_path: Path):
    project = copy_project(band_project, tmp_path / "project")
    run_cli(project, "predict")
    run_cli(project, "--set", "train.seed=11", "train")  # 05_predict now lists the old models
    with LiveServer(project) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        assert "predict" not in [s["stage"] for s in http.get("/health").json()["stages"]]
        body = http.get("/users/b2/recommendations", params={"n": 5, "model": "als"}).json()
        assert body["source"] == "live"
