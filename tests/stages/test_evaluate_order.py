"""Evaluate's reductions are bit-identical whatever order the rows arrive in (issue 18).

Polars adds a group's floats in the order its rows arrive; joins, threads and the streaming
engine change that order between runs, so metrics.json differed in the last bit from run to
run. These tests shuffle the inputs and demand the same bits.
"""

import math

import numpy as np
import polars as pl
import pytest

from stages.evaluate.ranking import group_reduce


def _wide_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """Floats over 16 orders of magnitude, whose sum depends on the order of addition."""
    return rng.random(n) * 10.0 ** rng.integers(-8, 8, n)


def _shuffled(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    return frame.sample(fraction=1.0, shuffle=True, seed=seed)


def test_group_reduce_gives_the_same_bits_for_any_row_order(rng: np.random.Generator) -> None:
    n = 100_000
    frame = pl.DataFrame({"g": rng.integers(0, 4, n), "v": _wide_values(rng, n)})
    runs = {
        group_reduce(
            _shuffled(frame, seed).lazy(),
            ("g",),
            sums={"s": pl.col("v")},
            means={"m": pl.col("v")},
            extra=(pl.len().alias("n"),),
        )
        .sort("g")
        .collect()
        .rows()
        .__repr__()
        for seed in range(5)
    }
    assert len(runs) == 1
    got = group_reduce(frame.lazy(), ("g",), sums={"s": pl.col("v")}).sort("g").collect()
    exact = [math.fsum(frame.filter(pl.col("g") == g)["v"]) for g in range(4)]
    assert got["s"].to_list() == pytest.approx(exact, rel=1e-12)


def test_group_reduce_sums_an_empty_group_to_positive_zero() -> None:
    frame = pl.LazyFrame({"g": [1, 1, 2], "v": [1.0, 2.0, 5.0]})
    got = group_reduce(frame, ("g",), sums={"s": pl.col("v").filter(pl.col("v") < 3)})
    values = got.sort("g").collect()["s"].to_list()
    assert values == [3.0, 0.0]
    assert math.copysign(1.0, values[1]) == 1.0  # not -0.0 ("-0.0" in metrics.json)
