"""`recommend`, `similar`, `explain`: answers from the trained models (reads 01-04, writes none).

Unknown users, tracks and models print one red line and exit 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp
import typer

from musicrec_cli import artifacts as art
from musicrec_cli import console
from musicrec_cli.artifacts import require_stage, stage_dir
from musicrec_cli.lineage import check_chain
from musicrec_cli.runner.train import load_models
from musicrec_cli.session import Session, session
from musicrec_cli.sources import InputError
from stages import lookup, serve
from stages.models import Recommender, UserHistory, registry
from stages.schema import ARTIST_NAME, TRACK_ID, TRACK_IDX, TRACK_NAME, USER_IDX, WEIGHT

T = TypeVar("T")
_SIMILAR = registry.with_capability("similar")


def _run(s: Session, work: Callable[[], T]) -> T:
    """The session's error guard, with lookup failures turned into InputError (one red line)."""

    def checked() -> T:
        try:
            return work()
        except lookup.LookupFailedError as exc:
            raise InputError(str(exc)) from exc

    return s.guard(checked)


@dataclass(frozen=True, slots=True)
class _Served:
    """What every command reads: track names and trained model names; users on demand."""

    root: Path
    items: pl.DataFrame
    specs: dict[str, Any]

    def model(self, name: str) -> Recommender:
        """The trained model `name`, or an InputError listing the trained ones."""
        if name not in self.specs:
            msg = (
                f"model {name!r} is not trained; trained: {', '.join(self.specs)}. "
                f"Add it to train.models in musicrec.toml and run `musicrec train`."
            )
            raise InputError(msg)
        return load_models(self.root, (name,))[name]

    def user_row(self, user_id: str) -> tuple[int, sp.csr_matrix]:
        """user_idx and (1, n_items) CSR of play counts in train (02_split, as predict uses)."""
        users = pl.read_parquet(stage_dir(self.root, "preprocess") / art.USERS)
        u = lookup.find_user(user_id, users)
        return u, art.load_matrix(self.root, "split", art.TRAIN_MATRIX)[[u]]

    def describe(
        self,
        track_idx: Sequence[int] | npt.NDArray[np.int64],
        scores: Sequence[float] | npt.NDArray[np.float32],
    ) -> list[dict[str, Any]]:
        """Rows rank, track_id, artist, title, score for the given tracks."""
        rows = self.items[list(track_idx)]
        return [
            {"rank": r + 1, "track_id": t, "artist": a, "title": n, "score": round(float(s), 6)}
            for r, (t, a, n, s) in enumerate(
                zip(rows[TRACK_ID], rows[ARTIST_NAME], rows[TRACK_NAME], scores, strict=True)
            )
        ]


def _load(s: Session) -> _Served:
    root = s.artifacts
    check_chain(root, ("preprocess", "split", "features", "train"))
    pre = stage_dir(root, "preprocess")
    return _Served(
        root=root,
        items=pl.read_parquet(pre / art.ITEMS).sort(TRACK_IDX),
        specs=art.read_json(root, "train", art.MODELS_JSON),
    )


def _emit(
    payload: dict[str, Any], rows: list[dict[str, Any]], title: str, *, as_json: bool
) -> None:
    if as_json:
        console.print_json(json.dumps(payload, ensure_ascii=False))
        return
    cells = [[str(r["rank"]), r["artist"], r["title"], f"{r['score']:.4f}"] for r in rows]
    console.table(title, ["rank", "artist", "title", "score"], cells, bold=set())


Model = Annotated[str, typer.Option("--model", "-m", help="A trained model (see models.json).")]
Count = Annotated[int, typer.Option("-n", "--n", min=1, max=10_000, help="How many tracks.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON to stdout instead of a table.")]


def recommend(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Argument(help="A user_id from the listening log.")] = None,
    n: Count = 10,
    model: Model = "hybrid",
    liked: Annotated[
        list[str] | None,
        typer.Option(help='A liked track for someone not in the data: "Artist - Title" or id.'),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Recommend unheard tracks to USER, or to a new listener from --liked tracks.

    Reads 01_preprocess, 02_split and 04_train. With --liked, ALS folds the listener in from
    the liked tracks and the hybrid blends that with content ([train].hybrid_liked). One
    version per song, none of a song heard or liked unless [predict].allow_heard_songs.
    """
    if (user is None) == (not liked):
        msg = "give either USER or at least one --liked track, not both"
        raise typer.BadParameter(msg)
    s = session(ctx)

    def work() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        data = _load(s)
        chosen = data.model(model)
        groups = serve.group_codes(data.items)
        if user is not None:
            u, row = data.user_row(user)
            scores = chosen.score(np.asarray([u]), row)[0]
        else:
            liked_idx = lookup.find_tracks(liked or [], data.items)
            row = serve.liked_row(liked_idx, n_items=chosen.n_items)
            scores = serve.liked_scores(chosen, row, name=model)
        p = s.config().predict
        idx, best = serve.rank_tracks(
            scores,
            exclude=row.indices,
            n=n,
            groups=groups,
            drop_excluded_songs=not p.allow_heard_songs,
            one_per_group=p.one_per_group,
        )
        rows = data.describe(idx, best)
        return {"user": user, "liked": liked or [], "model": model, "tracks": rows}, rows

    payload, rows = _run(s, work)
    who = user if user is not None else f"{len(payload['liked'])} liked track(s)"
    _emit(payload, rows, f"Top {len(rows)} for {who} ({model})", as_json=as_json)


def similar(
    ctx: typer.Context,
    track: Annotated[str, typer.Argument(help='A track: "Artist - Title" or its track_id.')],
    n: Count = 10,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help=f"A model with track similarity: {', '.join(_SIMILAR)}.",
        ),
    ] = "als",
    as_json: AsJson = False,
) -> None:
    """List tracks similar to TRACK; other versions of the same song are never returned.

    Reads 01_preprocess and 04_train. ALS and content use cosine similarity of factors or
    standardised audio features; knn the item-item neighbours.
    """
    s = session(ctx)

    def work() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        able = registry.with_capability("similar")
        if model in registry.names() and model not in able:
            msg = f"similar: model {model!r} has no track similarity; use {', '.join(able)}."
            raise InputError(msg)
        data = _load(s)
        chosen = data.model(model)
        seed = lookup.find_tracks([track], data.items)[0]
        scores = serve.similar_scores(chosen, seed, name=model)
        idx, best = serve.rank_tracks(
            scores,
            exclude=np.asarray([seed]),
            n=n,
            groups=serve.group_codes(data.items),
            one_per_group=s.config().predict.one_per_group,
        )
        rows = data.describe(idx, best)
        seed_id = data.items[TRACK_ID][seed]
        return {"track": seed_id, "model": model, "tracks": rows}, rows

    payload, rows = _run(s, work)
    _emit(payload, rows, f"Similar to {payload['track']} ({model})", as_json=as_json)


def _weights_row(root: Path, user_idx: int, n_items: int) -> sp.csr_matrix:
    """The user's 03_features confidence weights, what ALS was fitted on: (1, n_items) CSR."""
    require_stage(root, "features")
    frame = (
        pl.scan_parquet(stage_dir(root, "features") / art.FEATURES_TRAIN)
        .filter(pl.col(USER_IDX) == user_idx)
        .select(TRACK_IDX, WEIGHT)
        .collect()
    )
    cols = frame[TRACK_IDX].to_numpy().astype(np.int64)
    return sp.csr_matrix(
        (frame[WEIGHT].to_numpy(), (np.zeros(len(cols), dtype=np.int64), cols)),
        shape=(1, n_items),
        dtype=np.float32,
    )


def _explain(
    data: _Served, user: str, track: str, n: int, *, one_per_group: bool
) -> dict[str, Any]:
    u, row = data.user_row(user)
    t = lookup.find_tracks([track], data.items)[0]
    loaded = load_models(data.root, serve.explainers(list(data.specs)))
    history = UserHistory(user_idx=u, counts=row, weights=_weights_row(data.root, u, row.shape[1]))
    groups = serve.group_codes(data.items) if one_per_group else None
    found = serve.explain(loaded, history, t, n=n, groups=groups)
    contributions = {
        name: [
            {k: v for k, v in d.items() if k != "score"} | {"value": round(value, 6)}
            for d, (_, value) in zip(
                data.describe([i for i, _ in pairs], [0.0] * len(pairs)), pairs, strict=True
            )
        ]
        for name, pairs in found.contributions.items()
    }
    return {
        "user": user,
        "track": data.items[TRACK_ID][t],
        "heard": bool(t in row.indices),
        "hybrid_shares": [asdict(s) for s in found.shares],
        "contributions": contributions,
    }


def explain(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="A user_id from the listening log.")],
    track: Annotated[str, typer.Argument(help='A track: "Artist - Title" or its track_id.')],
    n: Annotated[int, typer.Option("-n", "--n", min=1, help="Heard tracks to list per model.")] = 5,
    as_json: AsJson = False,
) -> None:
    """Explain why TRACK is recommended to USER: the heard tracks behind it, model by model.

    Reads 01_preprocess, 02_split, 03_features and 04_train. Lists the heard tracks that
    contributed most under ALS (implicit's explain), item kNN (plays x similarity) and content
    (weight x audio-feature cosine), one version per song, and each model's share of the
    hybrid score.
    """
    s = session(ctx)
    payload = _run(
        s,
        lambda: _explain(_load(s), user, track, n, one_per_group=s.config().predict.one_per_group),
    )
    if as_json:
        console.print_json(json.dumps(payload, ensure_ascii=False))
        return
    if payload["hybrid_shares"]:
        cells = [
            [s["model"], f"{s['weight']:.2f}", f"{s['normalised_score']:.3f}", f"{s['share']:.0%}"]
            for s in payload["hybrid_shares"]
        ]
        title = f"Hybrid score of {payload['track']} for {user}"
        console.table(title, ["model", "weight", "normalised score", "share"], cells, bold=set())
    for name, rows in payload["contributions"].items():
        cells = [
            [str(i + 1), r["artist"], r["title"], f"{r['value']:.4f}"] for i, r in enumerate(rows)
        ]
        console.table(
            f"{name}: heard tracks behind it",
            ["#", "artist", "title", "contribution"],
            cells,
            bold=set(),
        )
