"""The JSON bodies of the HTTP API (pydantic models): what /openapi.json documents."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from stages.models import registry


def _names(name: str, models: tuple[str, ...]) -> type[StrEnum]:
    return StrEnum(name, [(m, m) for m in models])  # type: ignore[return-value]


# every model the registry knows (one not trained in the served artifacts answers 404), and
# those with the capability an endpoint needs
ModelName = _names("ModelName", registry.names())
FoldInModel = _names("FoldInModel", registry.with_capability("fold_in"))
SimilarModel = _names("SimilarModel", registry.with_capability("similar"))


class Track(BaseModel):
    """A track as the catalogue names it."""

    track_id: str
    artist: str | None
    title: str | None


class Reason(Track):
    """A heard or picked track like the recommended one (cosine of item vectors)."""

    similarity: float


class Scored(Track):
    """One recommended or similar track, best first."""

    rank: int
    score: float
    because: list[Reason] = Field(
        default_factory=list, description="Heard or picked tracks most like this one."
    )


class Recommendations(BaseModel):
    """Top tracks for a user in the data, or for a new listener's liked tracks."""

    user: str | None
    liked: list[str]
    model: str
    rerank: bool
    source: Literal["05_predict", "live"] = Field(
        description="05_predict: the list `musicrec predict` wrote; live: scored for this request."
    )
    tracks: list[Scored]


class Liked(BaseModel):
    """A new listener: the tracks they like (track ids or "Artist - Title")."""

    liked: list[str] = Field(min_length=1, max_length=500)
    n: int = Field(10, ge=1, le=1000)
    model: FoldInModel | None = Field(  # type: ignore[valid-type]
        None, description="A trained model; default the hybrid."
    )


class Heard(Track):
    """A track in the user's training history with its play count."""

    plays: float


class History(BaseModel):
    """What the models know the user played (02_split train), most played first."""

    user: str
    n_tracks: int
    tracks: list[Heard]


class TrackInfo(Track):
    """A track with its catalogue group and training listeners."""

    track_group_id: str
    listeners: int


class Similar(BaseModel):
    """Tracks like a seed track; other versions of the seed are never returned."""

    track: str
    model: str
    tracks: list[Scored]


class Share(BaseModel):
    """One component's part in the hybrid score."""

    model: str
    weight: float
    normalised_score: float
    contribution: float
    share: float


class Contribution(Track):
    """A heard track and how much it adds to the score of the explained track."""

    value: float


class Explanation(BaseModel):
    """Why a track is recommended to a user, model by model (as `musicrec explain`)."""

    user: str
    track: str
    heard: bool
    hybrid_shares: list[Share]
    contributions: dict[str, list[Contribution]]


class StageInfo(BaseModel):
    """One loaded stage folder."""

    stage: str
    created_at: str
    musicrec_version: str
    git_revision: str | None
    manifest_sha256: str


class Health(BaseModel):
    """The artifacts being served."""

    status: str
    artifacts: str
    loaded_at: str
    stages: list[StageInfo]


class Stats(BaseModel):
    """Size of what is served and how often it was reloaded."""

    n_users: int
    n_tracks: int
    n_interactions: int
    models: list[str]
    default_model: str
    loaded_at: str
    reloads: int


class Found(BaseModel):
    """Tracks whose name contains every word of the query, most listened first."""

    query: str
    tracks: list[Track]


class Error(BaseModel):
    """What went wrong, in one sentence."""

    detail: str
