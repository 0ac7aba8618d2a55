"""Implicit-feedback ALS on Spark (pyspark.ml), returned as the project's `AlsModel`.

Spark and implicit solve the same model with two differences (../shared/SPARK.md):
- confidence: Spark uses 1 + alpha * r, implicit alpha * r; the rating passed is the same
  confidence matrix (`fitting.als_matrix`: by default log1p(plays) with recency), so the two
  differ by 1.
- regularization: Spark scales regParam by each user's (item's) number of ratings (ALS-WR);
  implicit does not. `spark_reg_param` divides by the mean number of ratings per user, so a
  user with an average history gets implicit's penalty.
Spark also solves each least-squares problem exactly where implicit takes 3 CG steps.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import scipy.sparse as sp
from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812

from stages.models.als import AlsModel
from stages.schema import TRACK_IDX, USER_IDX, WEIGHT

SPARK_DEFAULT_BLOCKS = 10  # pyspark.ml's own default for numUserBlocks and numItemBlocks


def spark_reg_param(regularization: float, *, n_pairs: int, n_users: int) -> float:
    """Spark's regParam giving a user with the mean number of pairs implicit's penalty."""
    return regularization / max(n_pairs / max(n_users, 1), 1.0)


def ratings_frame(spark: SparkSession, confidence: sp.csr_matrix) -> DataFrame:
    """Rows (user_idx, track_idx, weight) of a (n_users, n_items) confidence CSR, on Spark."""
    pairs = confidence.tocoo()
    table = pa.table(
        {
            USER_IDX: pa.array(pairs.row.astype(np.int32)),
            TRACK_IDX: pa.array(pairs.col.astype(np.int32)),
            WEIGHT: pa.array(pairs.data.astype(np.float32)),
        }
    )
    return spark.createDataFrame(table)


def _dense(factors: DataFrame, *, n_rows: int, rank: int) -> npt.NDArray[np.float32]:
    """(n_rows, rank) float32 from ALS's (id, features) frame; rows without factors are 0."""
    table = factors.toArrow()
    ids = table.column("id").to_numpy()
    values = pa.concat_arrays(
        [chunk.flatten() for chunk in table.column("features").chunks]
    ).to_numpy(zero_copy_only=False)
    out = np.zeros((n_rows, rank), dtype=np.float32)
    out[ids] = values.reshape(len(ids), rank)
    return out


def fit_als(
    ratings: DataFrame,
    *,
    n_users: int,
    n_items: int,
    factors: int,
    iterations: int,
    regularization: float,
    alpha: float,
    seed: int,
    blocks: int = 0,
) -> AlsModel:
    """Fit ALS with implicit preferences on (user_idx, track_idx, weight) rows.

    Args:
        ratings: One row per pair; `weight` > 0 is the confidence weight.
        n_users: Rows of the user factor matrix (users without pairs get zeros).
        n_items: Rows of the item factor matrix.
        factors: Rank.
        iterations: ALS sweeps.
        regularization: implicit's (unscaled) regularization; see `spark_reg_param`.
        alpha: Confidence scale.
        seed: Spark's random seed (Spark's factors differ from implicit's for the same seed).
        blocks: User and item blocks (0 = Spark's default, the default parallelism).

    Returns:
        AlsModel with (n_users, factors) and (n_items, factors) float32 factors, saved and
        served like implicit's.
    """
    rows = ratings.select(
        F.col(USER_IDX).cast("int"), F.col(TRACK_IDX).cast("int"), F.col(WEIGHT).cast("float")
    )
    n_pairs = rows.count()
    als = ALS(
        rank=factors,
        maxIter=iterations,
        regParam=spark_reg_param(regularization, n_pairs=n_pairs, n_users=n_users),
        alpha=alpha,
        implicitPrefs=True,
        userCol=USER_IDX,
        itemCol=TRACK_IDX,
        ratingCol=WEIGHT,
        seed=seed,
        coldStartStrategy="drop",
        numUserBlocks=blocks or SPARK_DEFAULT_BLOCKS,
        numItemBlocks=blocks or SPARK_DEFAULT_BLOCKS,
    )
    model = als.fit(rows)
    return AlsModel(
        user_factors=_dense(model.userFactors, n_rows=n_users, rank=factors),
        item_factors=_dense(model.itemFactors, n_rows=n_items, rank=factors),
        regularization=regularization,
        alpha=alpha,
    )
