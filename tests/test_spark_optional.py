"""The Spark engine is optional: nothing on the default path imports pyspark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musicrec_cli import spark
from musicrec_cli.app import app
from musicrec_cli.commands import pipeline
from musicrec_cli.config import ConfigError, SparkConfig
from musicrec_cli.session import Session

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # a fresh interpreter that imports every module
def test_the_cli_and_the_polars_stages_import_without_pyspark():
    code = (
        "import sys, pkgutil, importlib\n"
        "sys.modules['pyspark'] = None  # any import of it now fails\n"
        "import musicrec_cli.app, stages\n"
        "for pkg in ('stages', 'stages.models', 'musicrec_cli', 'musicrec_cli.runner'):\n"
        "    m = importlib.import_module(pkg)\n"
        "    for info in pkgutil.iter_modules(m.__path__):\n"
        "        if 'spark' not in info.name and info.name != '__main__':\n"
        "            importlib.import_module(f'{pkg}.{info.name}')\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_spark_engine_without_pyspark_is_one_config_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with (
        pytest.raises(ConfigError, match=r"needs pyspark.*pip install 'musicrec\[spark\]'"),
        spark.spark_session(SparkConfig(), workdir=tmp_path),
    ):
        pass


def test_spark_settings_follow_the_config(tmp_path):
    cfg = SparkConfig(
        master="spark://host:7077",
        shuffle_partitions=64,
        executor_memory="8g",
        conf=("spark.executor.cores=4", "spark.ui.enabled=true"),
    )
    conf = spark.spark_conf(cfg, scratch=tmp_path)
    assert conf["spark.master"] == "spark://host:7077"
    assert conf["spark.sql.shuffle.partitions"] == "64"
    assert conf["spark.executor.memory"] == "8g"
    assert conf["spark.executor.cores"] == "4"
    assert conf["spark.ui.enabled"] == "true"  # extra conf applies last
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert conf["spark.local.dir"] == str(tmp_path)
    # a driver path means nothing on a cluster's executors
    assert "spark.executor.extraJavaOptions" not in conf
    assert "spark.executor.extraJavaOptions" in spark.spark_conf(SparkConfig(), scratch=tmp_path)


def test_engine_and_spark_master_options_override_the_config(tmp_path):
    s = pipeline.with_engine(Session(), "spark", "spark://host:7077")
    cfg = s.config()
    assert (cfg.engine, cfg.spark.master) == ("spark", "spark://host:7077")
    assert pipeline.with_engine(Session(), None, None).config().engine == "polars"


def test_an_unknown_engine_is_a_usage_error(tiny_project):
    result = CliRunner().invoke(app, ["--config", str(tiny_project), "split", "--engine", "flink"])
    assert result.exit_code == 2
    assert "'flink' is not an engine" in " ".join(result.output.split())
