"""Every endpoint of `musicrec serve` over real HTTP, answers and errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import polars as pl
import pytest

ALPHA = "alpha band"


def ids(payload: dict) -> list[str]:
    return [row["track_id"] for row in payload["tracks"]]


def test_health_names_each_stage_with_its_manifest_fingerprint(client: httpx.Client, band_project):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    stages = {s["stage"]: s for s in body["stages"]}
    assert list(stages) == ["preprocess", "split", "features", "train"]
    for number, stage in enumerate(stages, start=1):
        manifest = band_project / "artifacts" / f"0{number}_{stage}" / "manifest.json"
        assert stages[stage]["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
        assert stages[stage]["created_at"] == json.loads(manifest.read_text())["created_at"]


def test_stats_count_what_is_served(client: httpx.Client, band_project: Path):
    body = client.get("/stats").json()
    train = pl.read_parquet(band_project / "artifacts" / "02_split" / "train.parquet")
    assert body["n_users"] == 20
    assert body["n_tracks"] == 24
    assert body["n_interactions"] == train.height
    assert body["default_model"] == "hybrid"
    assert set(body["models"]) == {"popularity", "als", "bpr", "knn", "content", "hybrid"}


@pytest.mark.parametrize("model", ["hybrid", "als", "knn", "content", "bpr"])
def test_recommendations_stay_in_the_listeners_band(client: httpx.Client, model: str):
    for user, band in (("a3", ALPHA), ("b7", "beta band")):
        body = client.get(f"/users/{user}/recommendations", params={"n": 3, "model": model}).json()
        assert (body["user"], body["model"], body["rerank"]) == (user, model, False)
        assert [r["rank"] for r in body["tracks"]] == [1, 2, 3]
        assert all(t.startswith(band) for t in ids(body)), (model, ids(body))
        scores = [r["score"] for r in body["tracks"]]
        assert scores == sorted(scores, reverse=True)
        # reasons are tracks the user heard, from the same band
        reasons = [b["track_id"] for r in body["tracks"] for b in r["because"]]
        assert reasons
        assert all(t.startswith(band) for t in reasons)


def test_recommendations_match_the_cli(client: httpx.Client, band_project: Path):
    from tests.cli.test_serve import as_json  # noqa: PLC0415

    for model in ("hybrid", "als", "knn"):
        want = as_json(band_project, "recommend", "a3", "-n", "5", "--model", model)
        got = client.get("/users/a3/recommendations", params={"n": 5, "model": model}).json()
        assert ids(got) == ids(want)
        assert [r["score"] for r in got["tracks"]] == pytest.approx(
            [r["score"] for r in want["tracks"]], abs=1e-5
        )


def test_recommendations_never_include_heard_tracks(client: httpx.Client):
    heard = set(ids(client.get("/users/a3/history", params={"n": 100}).json()))
    got = ids(client.get("/users/a3/recommendations", params={"n": 100, "model": "als"}).json())
    assert len(got) == 24 - len(heard)
    assert not heard & set(got)


def test_reranked_recommendations_cap_each_artist(client: httpx.Client):
    plain = client.get("/users/a3/recommendations", params={"model": "als"}).json()
    body = client.get("/users/a3/recommendations", params={"model": "als", "rerank": True}).json()
    assert body["rerank"] is True
    # [predict].max_per_artist = 2, and the catalogue has two artists
    artists = [t["artist"] for t in body["tracks"]]
    assert sorted(artists) == ["Alpha Band", "Alpha Band", "Beta Band", "Beta Band"]
    assert [t["artist"] for t in plain["tracks"]].count("Alpha Band") > 2


def test_history_is_the_users_training_plays_most_played_first(
    client: httpx.Client, band_project: Path
):
    body = client.get("/users/a3/history", params={"n": 100}).json()
    train = pl.read_parquet(band_project / "artifacts" / "02_split" / "train.parquet")
    users = pl.read_parquet(band_project / "artifacts" / "01_preprocess" / "users.parquet")
    mine = train.join(users.filter(pl.col("user_id") == "a3"), on="user_idx")
    assert body["n_tracks"] == mine.height == len(body["tracks"])
    plays = [t["plays"] for t in body["tracks"]]
    assert plays == sorted(plays, reverse=True)
    assert sorted(plays) == sorted(mine["play_count"].cast(pl.Float64).to_list())
    assert client.get("/users/a3/history", params={"n": 2}).json()["tracks"] == body["tracks"][:2]


def test_track_accepts_an_id_or_any_spelling(client: httpx.Client):
    by_id = client.get("/tracks/alpha band - song 1").json()
    assert client.get("/tracks/ALPHA  Band - Song 1").json() == by_id
    assert by_id["track_id"] == "alpha band - song 1"
    assert (by_id["artist"], by_id["title"]) == ("Alpha Band", "Song 1")
    assert by_id["listeners"] > 0


@pytest.mark.parametrize("model", ["als", "knn", "content"])
def test_similar_tracks_come_from_the_seeds_band(client: httpx.Client, model: str):
    body = client.get("/tracks/alpha band - song 1/similar", params={"n": 5, "model": model}).json()
    assert body["track"] == "alpha band - song 1"
    assert len(body["tracks"]) == 5
    assert "alpha band - song 1" not in ids(body)
    assert all(t.startswith(ALPHA) for t in ids(body)), ids(body)


def test_explain_lists_heard_tracks_behind_a_recommendation(client: httpx.Client):
    top = ids(client.get("/users/a3/recommendations", params={"n": 1}).json())[0]
    body = client.get(f"/users/a3/explain/{top}").json()
    assert (body["user"], body["track"], body["heard"]) == ("a3", top, False)
    # the hybrid explains its components, RP3beta (trained for it) among them
    assert set(body["contributions"]) == {"als", "knn", "content", "rp3beta"}
    assert [s["model"] for s in body["hybrid_shares"]] == [
        "als",
        "content",
        "popularity",
        "rp3beta",
    ]
    assert sum(s["share"] for s in body["hybrid_shares"]) == pytest.approx(1.0)
    heard = set(ids(client.get("/users/a3/history", params={"n": 100}).json()))
    for rows in body["contributions"].values():
        assert {r["track_id"] for r in rows} <= heard


def test_liked_tracks_fold_a_new_listener_in(client: httpx.Client):
    liked = ["ALPHA  BAND - song 1", "alpha band - song 2", "alpha band - song 3"]
    body = client.post("/recommendations", json={"liked": liked, "n": 5}).json()
    assert (body["user"], body["liked"], body["model"]) == (None, liked, "hybrid")
    assert len(body["tracks"]) == 5
    assert all(t.startswith(ALPHA) for t in ids(body)), ids(body)
    picked = {"alpha band - song 1", "alpha band - song 2", "alpha band - song 3"}
    assert not picked & set(ids(body))
    for row in body["tracks"]:
        assert row["because"]
        assert {b["track_id"] for b in row["because"]} <= picked


def test_liked_recommendations_match_the_cli(client: httpx.Client, band_project: Path):
    from tests.cli.test_serve import as_json  # noqa: PLC0415

    liked = ["beta band - song 4", "beta band - song 5"]
    for model in ("hybrid", "als", "content"):
        args = [a for t in liked for a in ("--liked", t)]
        want = as_json(band_project, "recommend", *args, "-n", "4", "--model", model)
        got = client.post("/recommendations", json={"liked": liked, "n": 4, "model": model})
        assert ids(got.json()) == ids(want), model


def test_search_finds_tracks_by_words_in_any_order(client: httpx.Client):
    body = client.get("/search/tracks", params={"q": "1 ALPHA song", "n": 10}).json()
    assert set(ids(body)) == {"alpha band - song 1", "alpha band - song 10", "alpha band - song 11"}
    assert client.get("/search/tracks", params={"q": "nothing like it"}).json()["tracks"] == []
    assert len(client.get("/search/tracks", params={"q": "band", "n": 4}).json()["tracks"]) == 4


NOT_FOUND = [
    ("get", "/users/zz9/recommendations", "unknown user 'zz9'"),
    ("get", "/users/a33/history", "Closest: 'a3'"),
    ("get", "/tracks/gamma band - song 1", "unknown track 'gamma band - song 1'"),
    ("get", "/tracks/alpha band - song 99/similar", "Closest: 'alpha band - song 9'"),
    ("get", "/users/a3/explain/nope", "unknown track 'nope'"),
    ("get", "/users/nobody/explain/alpha band - song 1", "unknown user 'nobody'"),
    ("get", "/users/a3/recommendations?model=trending", "model 'trending' is not trained"),
]


@pytest.mark.parametrize(("method", "url", "message"), NOT_FOUND)
def test_unknown_users_and_tracks_are_404_with_a_clear_message(
    client: httpx.Client, method: str, url: str, message: str
):
    response = client.request(method, url)
    assert response.status_code == 404
    assert message in response.json()["detail"]


def test_an_unknown_liked_track_is_404(client: httpx.Client):
    response = client.post("/recommendations", json={"liked": ["alpha band - song 1", "zzz"]})
    assert response.status_code == 404
    assert "unknown track 'zzz'" in response.json()["detail"]


BAD = [
    ("get", "/users/a3/recommendations?n=0", None, "n"),
    ("get", "/users/a3/recommendations?n=many", None, "n"),
    ("get", "/users/a3/recommendations?model=svd", None, "model"),
    ("get", "/users/a3/recommendations?rerank=maybe", None, "rerank"),
    ("get", "/users/a3/history?n=-1", None, "n"),
    ("get", "/tracks/alpha band - song 1/similar?model=hybrid", None, "model"),
    ("get", "/search/tracks", None, "q"),
    ("post", "/recommendations", {"liked": []}, "liked"),
    ("post", "/recommendations", {"liked": ["alpha band - song 1"], "n": 0}, "n"),
    ("post", "/recommendations", {"liked": ["alpha band - song 1"], "model": "bpr"}, "model"),
    ("post", "/recommendations", {"liked": ["alpha band - song 1"], "n": "ten"}, "n"),
    ("post", "/recommendations", {"likes": ["alpha band - song 1"]}, "liked"),
]


@pytest.mark.parametrize(("method", "url", "body", "field"), BAD)
def test_bad_parameters_are_422_naming_the_parameter(
    client: httpx.Client, method: str, url: str, body: dict | None, field: str
):
    response = client.request(method, url, json=body)
    assert response.status_code == 422, response.text
    assert any(field in error["loc"] for error in response.json()["detail"])


def test_a_body_that_is_not_json_is_422(client: httpx.Client):
    response = client.post(
        "/recommendations", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_the_page_is_served_at_the_root(client: httpx.Client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="q"' in response.text
    assert "/recommendations" in response.text
