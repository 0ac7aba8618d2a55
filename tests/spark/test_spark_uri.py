"""URI inputs (hdfs://, s3a://, file://): listed and read by Spark, refused by Polars in one line.

There is no HDFS here: file:// URIs go through the very code path an hdfs:// or s3a:// URI
takes (Spark's file systems list them, Spark's readers read them), and a stub shows that an
hdfs:// URI reaches Spark's listing unchanged without any local file being looked at.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from musicrec_cli import inputs
from musicrec_cli import spark as spark_mod
from musicrec_cli.app import app
from musicrec_cli.inputs import local_spec, uri_scheme
from musicrec_cli.sources import InputError
from tests.conftest import write_config
from tests.spark.test_spark_preprocess import _compare


def _invoke(config: Path, *args: str) -> object:
    return CliRunner().invoke(app, ["--config", str(config), *args])


def test_uri_schemes_are_told_from_local_paths():
    assert uri_scheme("hdfs:///logs/2026/") == "hdfs"
    assert uri_scheme("s3a://bucket/logs/*.parquet") == "s3a"
    assert uri_scheme("file:///tmp/x") == "file"
    for local in ("/tmp/x", "data/raw/listens", "C:\\logs", "logs/a:b.csv", "*.csv"):
        assert uri_scheme(local) is None


def test_the_polars_engine_reads_file_uris_as_paths_and_refuses_other_uris():
    assert local_spec("file:///tmp/my%20logs/") == "/tmp/my logs/"
    assert local_spec("data/raw/listens") == "data/raw/listens"
    with pytest.raises(InputError, match=r"^hdfs:///logs/2026/: hdfs:// inputs are read by the "
                       r"Spark engine only \(--engine spark\)"):  # fmt: skip
        local_spec("hdfs:///logs/2026/")


def test_an_hdfs_input_on_polars_is_one_line_and_no_artifact(tiny_project):
    result = _invoke(tiny_project, "preprocess", "--input", "hdfs:///logs/2026/")
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "hdfs:///logs/2026/: hdfs:// inputs are read by the Spark engine only" in lines[0]
    assert not (tiny_project.parent / "artifacts" / "01_preprocess").exists()


def test_an_hdfs_uri_reaches_spark_unchanged_and_no_local_listing(spark, tmp_path, monkeypatch):
    seen = []

    def listing(session, spec):
        seen.append(spec)
        msg = f"{spec}: stub file system"
        raise InputError(msg)

    def local_listing(spec):
        raise AssertionError(spec)

    monkeypatch.setattr(spark_mod, "list_uri", listing)
    monkeypatch.setattr(inputs, "list_entries", local_listing)
    monkeypatch.setattr("musicrec_cli.runner.preprocess_side.list_entries", local_listing)
    config = write_config(tmp_path)
    uri = "hdfs://namenode:8020/logs/2026/*/part-*.parquet"
    result = _invoke(config, "preprocess", "--engine", "spark", "--input", uri)
    assert seen == [uri]
    assert result.exit_code != 0
    assert "stub file system" in result.output


def test_spark_lists_a_file_uri_like_a_local_folder(spark, tmp_path):
    for rel in ("alice/2025/a.csv", "alice/b c.csv", "bob/a.csv", "_SUCCESS", ".hidden/x.csv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x\n")
    listing = spark_mod.list_uri(spark, (tmp_path).as_uri() + "/")
    assert [e.rel for e in listing.entries] == ["alice/2025/a.csv", "alice/b c.csv", "bob/a.csv"]
    assert listing.root == tmp_path.name
    assert listing.entries[1].uri.endswith("/alice/b%20c.csv")  # as Spark's readers name it
    assert listing.entries[1].shown.endswith("/alice/b c.csv")
    one = spark_mod.list_uri(spark, (tmp_path / "bob" / "a.csv").as_uri())
    assert one.named_file
    assert [e.rel for e in one.entries] == ["a.csv"]
    with pytest.raises(InputError, match="no files found|cannot list"):
        spark_mod.list_uri(spark, (tmp_path / "missing").as_uri())


@pytest.mark.slow
def test_a_file_uri_read_by_spark_equals_polars_on_generated_data(spark, tmp_path):
    config = write_config(tmp_path)
    assert _invoke(config, "generate", "--out", str(tmp_path / "raw")).exit_code == 0
    assert _invoke(config, "preprocess").exit_code == 0
    art = tmp_path / "artifacts"
    polars_dir = shutil.copytree(art / "01_preprocess", tmp_path / "polars")
    uri = (tmp_path / "raw" / "listens").as_uri()
    result = _invoke(config, "preprocess", "--engine", "spark", "--input", uri, "--format",
                     "generate", "--catalog", str(tmp_path / "raw" / "tracks.parquet"))  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((art / "01_preprocess" / "manifest.json").read_text())
    assert manifest["paths"]["raw"] == uri
    assert all(k.startswith("file:") for k in manifest["inputs"] if "listens" in k)
    _compare(polars_dir, art / "01_preprocess", per_file=False)


def _polars_then_spark_by_uri(source: Path, tmp_path: Path) -> Path:
    """Preprocess `source` on Polars by path, then on Spark by its file:// URI; the same outputs.

    Returns the artifacts folder (holding Spark's output).
    """
    config = write_config(tmp_path, preprocess={"min_user_tracks": 1, "min_track_users": 1})
    assert _invoke(config, "preprocess", "--input", str(source)).exit_code == 0
    art = tmp_path / "artifacts"
    polars_dir = shutil.copytree(art / "01_preprocess", tmp_path / "polars")
    result = _invoke(config, "preprocess", "--engine", "spark", "--input", source.as_uri())
    assert result.exit_code == 0, result.output
    _compare(polars_dir, art / "01_preprocess", per_file=False)
    return art


@pytest.mark.slow
def test_a_tsv_file_uri_read_by_spark_equals_polars(spark, real_formats, tmp_path):
    _polars_then_spark_by_uri(real_formats / "lastfm-1k", tmp_path)


@pytest.mark.slow
def test_a_names_table_in_a_uri_folder_is_read_by_spark_as_on_polars(spark, tmp_path):
    from tests.cli.test_real_layouts_side import _taste_folder

    raw = tmp_path / "msd"
    _taste_folder(raw)  # 10000.txt (ids and counts) beside song_data.csv (names)
    art = _polars_then_spark_by_uri(raw, tmp_path)
    report = json.loads((art / "01_preprocess" / "quality_report.json").read_text())
    assert report["rows_in"] == 4  # song_data.csv's rows are names, not plays
    assert report["names_tables"] == {"files": [(raw / "song_data.csv").as_uri()], "ids": 2}
    items = pl.read_parquet(art / "01_preprocess" / "items.parquet")
    assert ("Björk", "Undo") in set(items.select("artist_name", "track_name").rows())
