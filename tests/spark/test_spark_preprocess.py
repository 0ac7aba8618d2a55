"""The Spark preprocess gives exactly the Polars preprocess's outputs on the same raw files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import scipy.sparse as sp
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from musicrec_cli.app import app
from stages.preprocess import names
from stages.spark import preprocess as spark_pp
from stages.spark import to_spark_arrow
from tests.conftest import write_config

TABLES = (
    "events.parquet",
    "plays.parquet",
    "items.parquet",
    "users.parquet",
    "id_map_tracks.parquet",
    "id_map_artists.parquet",
)
# spellings that must collapse (or not) the same way on both engines
MESSY = [
    ("Beyoncé", "Halo"),
    ("BEYONCE", "halo"),
    ("beyonce", "Halo (Live)"),
    ("BEYONCÉ feat. Jay-Z", "Crazy in Love"),
    ("Beyoncé", "Crazy In Love - 2003 Remaster"),
    ("Sigur Rós", "Hoppípolla"),
    ("  The  Beatles ", "Let It Be"),
    ("Beatles, The", "Let it be [Remastered 2009]"),
    ("宇多田ヒカル", "First Love"),
    ("Guns N' Roses", "Sweet Child O’ Mine"),
    ("AC/DC", "T.N.T."),
]


def _run(config: Path, *args: str) -> None:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output


def test_name_keys_on_spark_give_canonicalise_of_polars(spark):
    spell = pl.DataFrame(
        {
            "artist_name": [a for a, _ in MESSY],
            "track_name": [t for _, t in MESSY],
            "artist_mbid": [None] * len(MESSY),
            "track_uri": [None] * len(MESSY),
            "n_plays": list(range(1, len(MESSY) + 1)),
        },
        schema_overrides={"artist_mbid": pl.String, "track_uri": pl.String},
    )
    artists, titles = spark_pp.name_keys(spark.createDataFrame(to_spark_arrow(spell)))
    got = names.keyed_spellings(spell.lazy(), artists.lazy(), titles.lazy())
    want = names.canonicalise(spell.lazy())
    order = ["artist_name", "track_name"]
    assert_frame_equal(got.sort(order).collect(), want.sort(order).collect())
    # the messy spellings did collapse: fewer artists, tracks and songs than spellings
    ids = want.collect()
    assert ids["artist_id"].n_unique() < ids["artist_name"].n_unique()
    assert ids["track_group_id"].n_unique() < ids["track_id"].n_unique() < len(MESSY)


def _compare(polars_dir: Path, spark_dir: Path, *, per_file: bool = True) -> None:
    """Every table, the matrix, the report's counts and the summary are equal.

    per_file=False: the inputs were named differently (a path and a URI), so the report's
    unreadable-row examples (which name their file, and which Spark picks) are left out.
    """
    for name in TABLES:
        assert_frame_equal(
            pl.read_parquet(spark_dir / name), pl.read_parquet(polars_dir / name), check_dtypes=True
        )
    for_polars = sp.load_npz(polars_dir / "interaction_matrix.npz")
    for_spark = sp.load_npz(spark_dir / "interaction_matrix.npz")
    assert (for_polars != for_spark).nnz == 0
    reports = [json.loads((d / "quality_report.json").read_text()) for d in (polars_dir, spark_dir)]
    if not per_file:
        for report in reports:
            report["unparseable"].pop("examples")
    for key in ("rows_in", "steps", "canonical", "output", "unparseable"):
        assert reports[1][key] == reports[0][key], key
    summaries = [
        json.loads((d / "manifest.json").read_text())["summary"] for d in (polars_dir, spark_dir)
    ]
    assert summaries[1] == summaries[0]


@pytest.mark.slow
def test_spark_preprocess_equals_polars_on_generated_messy_data(spark, tmp_path):
    config = write_config(tmp_path)
    _run(config, "generate", "--out", str(tmp_path / "raw"))
    _run(config, "preprocess")
    art = tmp_path / "artifacts"
    polars_dir = shutil.copytree(art / "01_preprocess", tmp_path / "polars")
    _run(config, "preprocess", "--engine", "spark")
    assert json.loads((art / "01_preprocess" / "manifest.json").read_text())["engine"] == "spark"
    _compare(polars_dir, art / "01_preprocess")


@pytest.mark.slow
def test_spark_preprocess_equals_polars_on_a_real_lastfm_export(spark, real_formats, tmp_path):
    config = write_config(
        tmp_path,
        paths={"raw": str(real_formats / "lastfm-1k"), "catalog": ""},
        preprocess={"format": "lastfm1k", "min_user_tracks": 1, "min_track_users": 1},
    )
    _run(config, "preprocess")
    art = tmp_path / "artifacts"
    polars_dir = shutil.copytree(art / "01_preprocess", tmp_path / "polars")
    _run(config, "preprocess", "--engine", "spark")
    _compare(polars_dir, art / "01_preprocess")


@pytest.mark.slow
def test_spark_preprocess_equals_polars_on_the_real_taste_profile_counts(
    spark, real_formats, tmp_path
):
    # a count table whose ids share canonical tracks: rows of one pair without a time, which
    # both engines must write in the same order (encode.dedupe_plays' tie-breakers)
    config = write_config(
        tmp_path,
        paths={"raw": str(real_formats / "msd-taste"), "catalog": ""},
        preprocess={"format": "auto"},
    )
    _run(config, "preprocess")
    art = tmp_path / "artifacts"
    polars_dir = shutil.copytree(art / "01_preprocess", tmp_path / "polars")
    _run(config, "preprocess", "--engine", "spark")
    _compare(polars_dir, art / "01_preprocess")
    plays = pl.read_parquet(art / "01_preprocess" / "plays.parquet")
    assert plays.height > plays.select("user_idx", "track_idx").n_unique()  # the tied rows
