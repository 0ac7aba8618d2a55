"""What predict looks up by index: user and track ids, song groups, re-ranking attributes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import stage_dir
from musicrec_cli.config import ConfigError, PredictConfig
from stages import predict, rerank
from stages.models import Recommender
from stages.preprocess.names import ARTIST_KEY
from stages.schema import (
    ARTIST_ID,
    AUDIO_FEATURES,
    TRACK_GROUP_ID,
    TRACK_ID,
    TRACK_IDX,
    USER_ID,
    USER_IDX,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    """Id lookups by index and the re-ranking attributes of every track."""

    user_ids: pl.Series
    track_ids: pl.Series
    group_ids: pl.Series
    items: pl.DataFrame
    listeners: npt.NDArray[np.int64]
    n_train_users: int


def load_catalog(root: Path, user_items: sp.csr_matrix) -> Catalog:
    """01_preprocess's users and items, with each track's listeners in `user_items`."""
    users = pl.read_parquet(stage_dir(root, "preprocess") / art.USERS, columns=[USER_ID, USER_IDX])
    items = pl.read_parquet(stage_dir(root, "preprocess") / art.ITEMS).sort(TRACK_IDX)
    if TRACK_GROUP_ID in items.columns:
        group = pl.col(TRACK_GROUP_ID).cast(pl.String).fill_null(pl.col(TRACK_ID))
    else:
        log.info("items.parquet has no %s column; each track is its own group", TRACK_GROUP_ID)
        group = pl.col(TRACK_ID)
    return Catalog(
        user_ids=users.sort(USER_IDX)[USER_ID],
        track_ids=items[TRACK_ID],
        group_ids=items.select(group.alias(TRACK_GROUP_ID))[TRACK_GROUP_ID],
        items=items,
        listeners=np.bincount(user_items.indices, minlength=user_items.shape[1]).astype(np.int64),
        n_train_users=int((np.diff(user_items.indptr) > 0).sum()),
    )


def codes(column: pl.Series) -> npt.NDArray[np.int64]:
    """Dense 1-based codes of a column's values (null: 0), e.g. a song code per track."""
    return column.rank("dense").fill_null(0).to_numpy().astype(np.int64)


def _audio_vectors(items: pl.DataFrame) -> npt.NDArray[np.float32]:
    z = rerank.audio_matrix(items)
    if z is None:
        msg = (
            f"01_preprocess/{art.ITEMS}: no audio feature columns ({', '.join(AUDIO_FEATURES)}) "
            f'for [predict].mmr_features = "audio"; set it to "factors" or add a catalog.'
        )
        raise ConfigError(msg)
    return predict.unit_rows(z)


def item_attributes(
    catalog: Catalog, model: Recommender, name: str, p: PredictConfig
) -> rerank.ItemAttributes:
    """Group and artist codes, novelty and MMR vectors of every track for re-ranking `model`."""
    artist_col = next((c for c in (ARTIST_ID, ARTIST_KEY) if c in catalog.items.columns), None)
    if p.mmr_features == "audio":
        vectors = _audio_vectors(catalog.items)
    elif predict.is_factorised(model):
        vectors = predict.unit_rows(model.item_factors)
    else:
        msg = (
            f"[predict].rerank_models: model {name!r} has no item factors for "
            f'mmr_features = "factors"; set [predict].mmr_features = "audio" or drop it.'
        )
        raise ConfigError(msg)
    return rerank.ItemAttributes(
        group=codes(catalog.group_ids),
        artist=codes(catalog.items[artist_col]) if artist_col else None,
        novelty=rerank.novelty_scores(catalog.listeners, n_users=catalog.n_train_users),
        vectors=vectors,
    )
