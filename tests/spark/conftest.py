"""One local[2] SparkSession for every Spark test (JVM start-up takes seconds).

Tests here are marked `spark` and `slow` (tests/conftest.py): `make test` leaves them out,
`pytest -m slow` (CI, `make test-all`) runs them. They are skipped, with the reason in the report
header, where pyspark or Java is missing; under CI (CI=true) a missing runtime fails instead.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicrec_cli.config import SparkConfig

# these modules import pyspark at the top: without pyspark they cannot even be collected, so
# they are left out here (the header says why); under CI the import error fails the run instead
collect_ignore = (
    [
        "test_spark_stages.py",
        "test_spark_preprocess.py",
        "test_spark_kcore.py",
        "test_spark_features.py",
        "test_spark_uri.py",
    ]
    if importlib.util.find_spec("pyspark") is None and os.environ.get("CI") != "true"
    else []
)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from musicrec_cli.spark import spark_session

    cfg = SparkConfig(master="local[2]", shuffle_partitions=4, driver_memory="1g")
    with spark_session(cfg, workdir=Path(tmp_path_factory.mktemp("spark"))) as session:
        yield session
