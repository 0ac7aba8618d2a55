"""The Spark engine is optional: nothing on the default path imports pyspark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from musicrec_cli import spark
from musicrec_cli.config import ConfigError, SparkConfig

ROOT = Path(__file__).resolve().parent.parent


def test_the_cli_and_the_polars_stages_import_without_pyspark():
    code = (
        "import sys, pkgutil, importlib\n"
        "sys.modules['pyspark'] = None  # any import of it now fails\n"
        "import musicrec_cli.app, stages\n"
        "for pkg in ('stages', 'stages.models', 'musicrec_cli', 'musicrec_cli.runner'):\n"
        "    m = importlib.import_module(pkg)\n"
        "    for info in pkgutil.iter_modules(m.__path__):\n"
        "        if info.name not in ('spark', '__main__'):\n"
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
