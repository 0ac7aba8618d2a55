"""The artifacts a server answers from, loaded once into one immutable snapshot.

`load_snapshot` reads 01_preprocess, 02_split, 03_features and 04_train after checking that
they form one chain (each manifest records the fingerprints of the upstream manifests it was
built from). A request takes the current snapshot once and uses only it, so a reload that swaps
in a new snapshot never mixes two runs inside one answer.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from musicrec_cli import artifacts as art
from musicrec_cli import lineage
from musicrec_cli.artifacts import ArtifactError, require_stage, stage_dir
from musicrec_cli.config import PredictConfig
from musicrec_cli.http.lists import Lists, load_lists
from musicrec_cli.runner.train import load_models
from stages import lookup, predict, rerank, serve
from stages.interactions import build_matrix
from stages.models import Recommender
from stages.models.content import ContentModel
from stages.models.hybrid import HybridModel
from stages.schema import (
    ARTIST_ID,
    ARTIST_NAME,
    TRACK_GROUP_ID,
    TRACK_ID,
    TRACK_IDX,
    TRACK_NAME,
    USER_ID,
    USER_IDX,
    WEIGHT,
)

log = logging.getLogger(__name__)

# what the server reads, in pipeline order; each stage's manifest names its upstream ones
CHAIN = ("preprocess", "split", "features", "train")


@dataclass(frozen=True, slots=True, kw_only=True)
class StageVersion:
    """One stage folder as loaded: when and by which musicrec it was made, and its fingerprint."""

    stage: str
    created_at: str
    musicrec_version: str
    git_revision: str | None
    manifest_sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Everything a request reads; never changed after `load_snapshot` returns it.

    items is 01_preprocess/items sorted by track_idx, names the three of its columns answers
    show; users is (user_id, user_idx) sorted by user_id for binary search; user_items the
    (n_users, n_items) CSR of train plays and weights that of their 03_features confidence
    weights (for ALS explanations);
    vectors (n_items, d) unit rows used for "because you liked" reasons (ALS item factors,
    else audio features), None if no model has either. lists are 05_predict's top-N lists when
    that stage was built from exactly these artifacts (versions then ends with it), else None.
    """

    root: Path
    loaded_at: str
    versions: tuple[StageVersion, ...]
    items: pl.DataFrame
    names: pl.DataFrame
    search_text: pl.Series
    users: pl.DataFrame
    user_items: sp.csr_matrix
    weights: sp.csr_matrix
    models: dict[str, Recommender]
    groups: npt.NDArray[np.int64] | None
    popularity: npt.NDArray[np.float32]
    vectors: npt.NDArray[np.float32] | None
    lists: Lists | None = None
    rerank_attrs: dict[str, rerank.ItemAttributes] = field(default_factory=dict)
    rerank_params: rerank.RerankParams = field(default_factory=lambda: rerank.RerankParams(n=10))
    candidates: int = 3
    allow_heard_songs: bool = False

    def model(self, name: str | None) -> tuple[str, Recommender]:
        """The trained model `name` (default: the hybrid, else the first trained one).

        Raises:
            LookupFailedError: `name` is a known model but not among the trained ones.
        """
        name = name or self.default_model
        if name not in self.models:
            msg = (
                f"model {name!r} is not trained in {self.root}; trained: "
                f"{', '.join(self.models)}. Add it to [train].models and run `musicrec train`."
            )
            raise lookup.LookupFailedError(msg)
        return name, self.models[name]

    @property
    def default_model(self) -> str:
        """The model asked when a request names none: the hybrid if trained, else the first."""
        return "hybrid" if "hybrid" in self.models else next(iter(self.models))

    def user_idx(self, user_id: str) -> int:
        """user_idx of `user_id` (binary search); LookupFailedError naming the closest ids."""
        ids = self.users[USER_ID]
        at = int(ids.search_sorted(user_id, side="left"))
        if at < len(ids) and ids[at] == user_id:
            return int(self.users[USER_IDX][at])
        return lookup.find_user(user_id, self.users)  # raises, naming the closest ids

    def track_idx(self, queries: list[str]) -> list[int]:
        """track_idx per track id or "Artist - Title"; LookupFailedError at the first unknown."""
        return lookup.find_tracks(queries, self.items)

    def weights_row(self, user_idx: int) -> sp.csr_matrix:
        """The user's 03_features confidence weights (what ALS was fitted on): (1, n_items) CSR."""
        return self.weights[[user_idx]]


def _version(stage: str, manifest: dict[str, Any], digest: str) -> StageVersion:
    return StageVersion(
        stage=stage,
        created_at=str(manifest.get("created_at", "")),
        musicrec_version=str(manifest.get("musicrec_version", "")),
        git_revision=manifest.get("git_revision"),
        manifest_sha256=digest,
    )


def check_chain(root: Path) -> tuple[StageVersion, ...]:
    """The versions of CHAIN's stages after `lineage.check_chain` found them one run.

    Raises:
        ArtifactError: a stage is missing or incomplete, or was built from an upstream run that
            has since been replaced (naming the command that rebuilds it).
    """
    digests = lineage.check_chain(root, CHAIN)
    return tuple(_version(stage, require_stage(root, stage), digests[stage]) for stage in CHAIN)


def predictions_of(
    root: Path, versions: tuple[StageVersion, ...]
) -> tuple[StageVersion, dict[str, Any]] | None:
    """05_predict's version and manifest if it was built from exactly `versions`, else None."""
    manifest = art.read_manifest(root, "predict")
    if manifest is None:
        return None
    digests = {v.stage: v.manifest_sha256 for v in versions}
    recorded = lineage.recorded_upstream(manifest)
    if any(recorded.get(up) != digests[up] for up in ("preprocess", "split", "train")):
        log.warning(
            "%s was built from other artifacts than those served; answering live",
            stage_dir(root, "predict"),
        )
        return None
    digest = art.sha256_file(stage_dir(root, "predict") / art.MANIFEST)
    return _version("predict", manifest, digest), manifest


def _factors(model: Recommender) -> npt.NDArray[np.float32] | None:
    """The item factors a model ranks by: its own, the hybrid's ALS ones, or None."""
    inner = model.als if isinstance(model, HybridModel) else model
    return inner.item_factors if predict.is_factorised(inner) else None


def _unit_vectors(
    models: dict[str, Recommender],
) -> dict[int, npt.NDArray[np.float32]]:
    """Unit-length rows of every distinct item-factor array, by id of the array."""
    found = (f for f in map(_factors, models.values()) if f is not None)
    return {id(f): predict.unit_rows(f) for f in found}


def _reason_vectors(
    models: dict[str, Recommender], units: dict[int, npt.NDArray[np.float32]]
) -> npt.NDArray[np.float32] | None:
    """Item vectors for reasons: ALS factors (alone or in the hybrid), else audio features."""
    for name in ("als", "hybrid"):
        factors = _factors(models[name]) if name in models else None
        if factors is not None:
            return units[id(factors)]
    hybrid = models.get("hybrid")
    content = hybrid.content if isinstance(hybrid, HybridModel) else models.get("content")
    if isinstance(content, ContentModel) and content.item_vectors.shape[1] > 0:
        return predict.unit_rows(content.item_vectors.astype(np.float32))
    return None


def _rerank_attrs(
    models: dict[str, Recommender],
    units: dict[int, npt.NDArray[np.float32]],
    items: pl.DataFrame,
    user_items: sp.csr_matrix,
) -> dict[str, rerank.ItemAttributes]:
    """Re-ranking attributes per model, as `musicrec predict` builds them.

    MMR compares item factors ([predict].mmr_features = "factors", the default): the model's
    own, or the hybrid's ALS ones; models without factors are re-ranked for novelty, artist cap
    and one version per recording only.
    """
    group = items.select(pl.col(TRACK_GROUP_ID).cast(pl.String).fill_null(pl.col(TRACK_ID)))
    codes = group.to_series().rank("dense").to_numpy().astype(np.int64)
    artist_col = next((c for c in (ARTIST_ID, ARTIST_NAME) if c in items.columns), None)
    artist = items[artist_col].rank("dense").fill_null(0).to_numpy() if artist_col else None
    listeners = np.bincount(user_items.indices, minlength=user_items.shape[1])
    novelty = rerank.novelty_scores(
        listeners.astype(np.int64), n_users=int((np.diff(user_items.indptr) > 0).sum())
    )
    out = {}
    for name, model in models.items():
        factors = _factors(model)
        out[name] = rerank.ItemAttributes(
            group=codes,
            artist=None if artist is None else artist.astype(np.int64),
            novelty=novelty,
            vectors=None if factors is None else units[id(factors)],
        )
    return out


def load_snapshot(root: Path, predict_cfg: PredictConfig) -> Snapshot:
    """Check the chain and load it: id maps, train matrix and every trained model, once.

    Args:
        root: The artifacts folder.
        predict_cfg: Re-ranking settings ([predict]), as `musicrec predict` uses them.

    Raises:
        ArtifactError: the chain is incomplete or inconsistent (see `check_chain`).
    """
    versions = check_chain(root)
    predicted = predictions_of(root, versions)
    pre = stage_dir(root, "preprocess")
    items = pl.read_parquet(pre / art.ITEMS).sort(TRACK_IDX)
    if TRACK_GROUP_ID not in items.columns:
        items = items.with_columns(pl.col(TRACK_ID).alias(TRACK_GROUP_ID))
    users = pl.read_parquet(pre / art.USERS, columns=[USER_ID, USER_IDX]).sort(USER_ID)
    user_items = art.load_matrix(root, "split", art.TRAIN_MATRIX)
    features = pl.read_parquet(
        stage_dir(root, "features") / art.FEATURES_TRAIN, columns=[USER_IDX, TRACK_IDX, WEIGHT]
    )
    weights = build_matrix(
        features, value=WEIGHT, n_users=user_items.shape[0], n_tracks=user_items.shape[1]
    )
    models = load_models(root)
    if user_items.shape[1] != items.height or any(
        m.n_items != items.height for m in models.values()
    ):
        msg = (
            f"{root}: the models, train matrix and items.parquet disagree on the number of tracks."
        )
        raise ArtifactError(msg)
    text = (
        pl.concat_str(
            [pl.col(ARTIST_NAME).fill_null(""), pl.lit(" - "), pl.col(TRACK_NAME).fill_null("")]
        ).str.to_lowercase()
        + " "
        + pl.col(TRACK_ID)
    )
    listeners = np.bincount(user_items.indices, minlength=items.height).astype(np.float32)
    units = _unit_vectors(models)
    p = predict_cfg
    return Snapshot(
        root=root,
        loaded_at=dt.datetime.now(dt.UTC).isoformat(),
        versions=versions if predicted is None else (*versions, predicted[0]),
        items=items,
        names=items.select(TRACK_ID, ARTIST_NAME, TRACK_NAME),
        search_text=items.select(text.alias("text")).to_series(),
        users=users,
        user_items=user_items,
        weights=weights,
        models=models,
        groups=serve.group_codes(items),
        popularity=listeners,
        vectors=_reason_vectors(models, units),
        rerank_attrs=_rerank_attrs(models, units, items, user_items),
        rerank_params=rerank.RerankParams(
            n=10,
            mmr_lambda=p.mmr_lambda,
            novelty_weight=p.novelty_weight,
            max_per_artist=p.max_per_artist,
            one_per_group=p.one_per_group,
        ),
        candidates=p.candidates,
        allow_heard_songs=p.allow_heard_songs,
        lists=None if predicted is None else load_lists(root, predicted[1], user_items.shape[0]),
    )
