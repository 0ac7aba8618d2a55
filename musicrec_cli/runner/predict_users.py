"""The users a predict run scores: all of them, or those of a --users file (read here)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from musicrec_cli.sources import InputError
from stages import predict
from stages.schema import USER_ID

log = logging.getLogger(__name__)


def read_user_file(path: Path) -> pl.Series:
    """User ids from a .parquet or .csv file with a user_id column, or a text file of one per line.

    A text file may start with a `user_id` header line; blank lines and repeats are ignored.

    Raises:
        InputError: The file cannot be read or has no user_id column.
    """
    try:
        if path.suffix.lower() in (".parquet", ".csv"):
            frame = (
                pl.read_parquet(path)
                if path.suffix.lower() == ".parquet"
                else pl.read_csv(path, infer_schema=False)
            )
            if USER_ID not in frame.columns:
                msg = (
                    f"{path}: no {USER_ID!r} column (found {', '.join(frame.columns)}); "
                    f"expected a {USER_ID} column or a text file with one id per line."
                )
                raise InputError(msg)
            ids = frame[USER_ID].cast(pl.String)
        else:
            # utf-8-sig: a byte-order mark (Windows editors) is not part of the first id
            text = path.read_text(encoding="utf-8-sig")
            lines = [line.strip() for line in text.splitlines()]
            ids = pl.Series(USER_ID, lines[lines[:1] == [USER_ID] :], dtype=pl.String)
    except (OSError, UnicodeDecodeError, pl.exceptions.PolarsError) as exc:
        msg = f"{path}: cannot read the user list: {exc}."
        raise InputError(msg) from exc
    return ids.drop_nulls().filter(ids.drop_nulls() != "").unique(maintain_order=True)


def resolve_users(
    user_ids: pl.Series, user_items: sp.csr_matrix, users_file: Path | None
) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Users to score and the unknown ids of `users_file` (logged; an error if all unknown).

    Args:
        user_ids: The user vocabulary, position = user_idx.
        user_items: (n_users, n_items) CSR of training interactions.
        users_file: The --users file, or None for every user with training interactions.
    """
    requested = None if users_file is None else read_user_file(users_file)
    users, unknown = predict.select_users(user_ids, user_items, requested)
    if unknown:
        log.warning(
            "%d of %d requested user ids are unknown and get no predictions, e.g. %s",
            len(unknown),
            len(unknown) + len(users),
            ", ".join(unknown[:5]),
        )
    if len(users) == 0:
        msg = f"{users_file}: none of its {len(unknown)} user ids is in 01_preprocess/users."
        raise InputError(msg)
    return users, unknown
