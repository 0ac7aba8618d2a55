"""`create_app`: the FastAPI app of `musicrec serve`, answering from one swappable Snapshot.

Unknown users and tracks, and models known but not trained, answer 404 with one sentence (naming
the closest ids); parameters outside the schema 422 in FastAPI's validation-error form.
`POST /reload` (or SIGHUP, see commands/serve.py) loads a new complete chain of artifacts and
swaps it in at once; requests already running finish on the snapshot they took.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from musicrec_cli.artifacts import ArtifactError
from musicrec_cli.http import answers, schemas
from musicrec_cli.http.snapshot import Snapshot
from stages.lookup import LookupFailedError

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.Error, "description": "Unknown user, track or model"}
}
Count = Annotated[int, Query(ge=1, le=1000, description="How many tracks.")]
UserId = Annotated[str, Path(description="A user_id from the listening log.")]
TrackId = Annotated[str, Path(description='A track_id, or "Artist - Title" in any spelling.')]


class Live:
    """The snapshot being served and the way to replace it; reloads run one at a time."""

    def __init__(self, load: Callable[[], Snapshot]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self.current = load()
        self.reloads = 0

    def reload(self) -> Snapshot:
        """Load a new snapshot and swap it in; on any error the current one stays."""
        with self._lock:
            fresh = self._load()
            self.current = fresh  # one reference assignment: requests see old or new, whole
            self.reloads += 1
            return fresh


def _health(snap: Snapshot) -> schemas.Health:
    return schemas.Health(
        status="ok",
        artifacts=str(snap.root),
        loaded_at=snap.loaded_at,
        stages=[schemas.StageInfo(**dataclasses.asdict(v)) for v in snap.versions],
    )


def create_app(load: Callable[[], Snapshot]) -> FastAPI:
    """The API and page over the snapshot `load()` returns (called now and on every reload)."""
    live = Live(load)
    app = FastAPI(
        title="musicrec",
        summary="Recommendations from the trained artifacts, read-only.",
        version="1",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.live = live

    @app.exception_handler(LookupFailedError)
    async def not_found(_: Request, exc: LookupFailedError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        text = resources.files("musicrec_cli.http").joinpath("page.html").read_text("utf-8")
        return HTMLResponse(text)

    @app.get("/health", response_model=schemas.Health)
    def health() -> schemas.Health:
        """Which artifacts are served: each stage's creation time, version and fingerprint."""
        return _health(live.current)

    @app.get("/stats", response_model=schemas.Stats)
    def stats() -> schemas.Stats:
        """Users, tracks and training interactions served, the models, and reloads so far."""
        snap = live.current
        return schemas.Stats(
            n_users=snap.user_items.shape[0],
            n_tracks=snap.items.height,
            n_interactions=int(snap.user_items.nnz),
            models=list(snap.models),
            default_model=snap.default_model,
            loaded_at=snap.loaded_at,
            reloads=live.reloads,
        )

    @app.post(
        "/reload",
        response_model=schemas.Health,
        responses={409: {"model": schemas.Error, "description": "Artifacts not complete"}},
    )
    def reload() -> schemas.Health | JSONResponse:
        """Load the artifacts again and swap them in; 409 (old ones kept) if not consistent."""
        try:
            return _health(live.reload())
        except ArtifactError as exc:
            return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.get("/search/tracks", response_model=schemas.Found)
    def search_tracks(
        q: Annotated[str, Query(max_length=200, description="Words of artist or title.")],
        n: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> schemas.Found:
        """Tracks whose artist and title contain every word of q, most listened first."""
        return answers.search(live.current, q, n=n)

    @app.get(
        "/users/{user_id:path}/recommendations",
        response_model=schemas.Recommendations,
        responses=NOT_FOUND,
    )
    def recommendations(
        user_id: UserId,
        n: Count = 10,
        model: Annotated[
            schemas.ModelName | None,  # type: ignore[valid-type]
            Query(description="A trained model; default the hybrid."),
        ] = None,
        rerank: Annotated[bool, Query(description="Re-rank for diversity.")] = False,
    ) -> schemas.Recommendations:
        """Top n unheard tracks for a user in the training data."""
        name = None if model is None else str(model)
        return answers.recommend_user(live.current, user_id, n=n, model=name, use_rerank=rerank)

    @app.get("/users/{user_id:path}/history", response_model=schemas.History, responses=NOT_FOUND)
    def history(user_id: UserId, n: Count = 20) -> schemas.History:
        """The user's most played tracks in the training data."""
        return answers.history(live.current, user_id, n=n)

    @app.get(
        "/users/{user_id:path}/explain/{track_id:path}",
        response_model=schemas.Explanation,
        responses=NOT_FOUND,
    )
    def explain(
        user_id: UserId, track_id: TrackId, n: Annotated[int, Query(ge=1, le=100)] = 5
    ) -> schemas.Explanation:
        """Why a track is recommended to a user: the heard tracks behind it, model by model."""
        return answers.explain(live.current, user_id, track_id, n=n)

    @app.get("/tracks/{track_id:path}/similar", response_model=schemas.Similar, responses=NOT_FOUND)
    def similar(
        track_id: TrackId,
        n: Count = 10,
        model: Annotated[
            schemas.SimilarModel,  # type: ignore[valid-type]
            Query(description="A model with track similarity."),
        ] = "als",
    ) -> schemas.Similar:
        """Tracks like this one; other versions of the same recording are never returned."""
        return answers.similar(live.current, track_id, n=n, model=str(model))

    @app.get("/tracks/{track_id:path}", response_model=schemas.TrackInfo, responses=NOT_FOUND)
    def track(track_id: TrackId) -> schemas.TrackInfo:
        """One track: names, group of versions, training listeners."""
        return answers.track_info(live.current, track_id)

    @app.post("/recommendations", response_model=schemas.Recommendations, responses=NOT_FOUND)
    def recommend_liked(body: schemas.Liked) -> schemas.Recommendations:
        """Top n tracks for a listener not in the data, from tracks they like (fold-in)."""
        name = None if body.model is None else str(body.model)
        return answers.recommend_liked(live.current, body.liked, n=body.n, model=name)

    return app
