"""The Spark session of a run on the Spark engine (imported only when engine = "spark").

The settings are the ones that made pyspark 4.3 work on a shared machine (../shared/SPARK.md):
no web UI or console progress, UTC session time, microsecond Parquet timestamps (so Spark's
Parquet reads back as Polars' timestamp[us, UTC]), and shuffle/spill files in a folder of the
run's own that is deleted when the run ends (ALS on 4M pairs wrote 7.8 GB there).
URI inputs (hdfs://, s3a://, file://) are listed here through Spark's own file systems
(`list_uri`), so whatever a cluster's Hadoop configuration can read, musicrec can.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from musicrec_cli.artifacts import StageWriter
from musicrec_cli.config import ConfigError, SparkConfig
from musicrec_cli.inputs import HEAD_BYTES, Entry, Listing, Peek
from musicrec_cli.sources import InputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
INSTALL_HINT = "pip install 'musicrec[spark]' (pyspark) and a Java 17+ runtime"


def spark_conf(cfg: SparkConfig, *, scratch: Path) -> dict[str, str]:
    """Spark settings for `cfg`, with shuffle and spill files under `scratch`."""
    tmpdir = f"-Djava.io.tmpdir={scratch}"
    conf = {
        "spark.app.name": cfg.app_name,
        "spark.master": cfg.master,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.local.dir": str(scratch),
        "spark.driver.extraJavaOptions": tmpdir,
        "spark.driver.memory": cfg.driver_memory,
        # the output is renamed into place by musicrec; no _SUCCESS marker files
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    }
    if cfg.master.startswith("local"):
        conf["spark.executor.extraJavaOptions"] = tmpdir
    if cfg.shuffle_partitions:
        conf["spark.sql.shuffle.partitions"] = str(cfg.shuffle_partitions)
    if cfg.executor_memory:
        conf["spark.executor.memory"] = cfg.executor_memory
    for entry in cfg.conf:
        key, _, value = entry.partition("=")
        conf[key.strip()] = value.strip()
    return conf


def _check_runtime() -> None:
    """Raise ConfigError naming what is missing when pyspark or Java cannot be found."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        msg = f'engine = "spark" needs pyspark, which is not installed: {INSTALL_HINT}.'
        raise ConfigError(msg) from exc
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and Path(java_home, "bin", "java").exists()):
        msg = f'engine = "spark" needs Java (no `java` on PATH, no JAVA_HOME): {INSTALL_HINT}.'
        raise ConfigError(msg)


@contextlib.contextmanager
def spark_session(cfg: SparkConfig, *, workdir: Path) -> Iterator[SparkSession]:
    """A Spark session for one command, stopped (and its scratch folder deleted) at the end.

    Args:
        cfg: The [spark] table.
        workdir: Folder under which the run's scratch folder is made when cfg.local_dir is "".
    """
    _check_runtime()
    from pyspark.sql import SparkSession

    running = SparkSession.getActiveSession()
    if running is not None:  # a caller's session (tests, notebooks): used, never stopped here
        yield running
        return
    base = Path(cfg.local_dir) if cfg.local_dir else workdir
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".spark-", dir=base))
    if cfg.master.startswith("local"):
        # the host name may resolve to an odd interface; Python workers use this interpreter
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in spark_conf(cfg, scratch=scratch).items():
        builder = builder.config(key, value)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its INFO lines are not ours
    log.info("starting Spark (%s), scratch %s", cfg.master, scratch)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def write_artifact(
    out: StageWriter, frame: DataFrame, name: str, schema: Mapping[str, pl.DataType]
) -> int:
    """Write a Spark DataFrame as the stage's one Parquet file `name`; returns its row count.

    Spark writes a folder of part files (in the order of the frame's partitions, so a sorted
    frame stays sorted); Polars then streams them into one file in the project's dtypes, so the
    artifact is the same file the Polars engine writes.
    """
    from stages.spark import polars_cast

    parts = out.path(f".{name}.spark")
    with out.writing(name):
        frame.write.mode("overwrite").parquet(str(parts))
    files = sorted(parts.glob("part-*.parquet"))
    scan = pl.scan_parquet(files) if files else pl.LazyFrame(schema=dict(schema))
    rows = out.sink_parquet(polars_cast(scan, schema), name)
    shutil.rmtree(parts)
    return rows


def _java_error(exc: Exception) -> str:
    """The first line of a Java exception's message, without the Java class name."""
    text = str(getattr(exc, "java_exception", exc)).strip().splitlines()[0]
    return text.split(": ", 1)[-1]


def list_uri(spark: SparkSession, spec: str) -> Listing:
    """The files of a URI input (a file, folder or glob) as Spark's file systems list them.

    Nothing is read; names starting with "." or "_" (Spark's _SUCCESS, hidden files) are left
    out below the root. Each entry's `uri` is the file's URI as Spark's readers report it in
    `_metadata.file_path`; `rel` is its path below the root.

    Raises:
        InputError: nothing there, or the file system refuses the listing (one line).
    """
    from py4j.protocol import Py4JJavaError

    session: Any = spark  # the JVM gateway is untyped
    jvm, conf = session._jvm, session._jsc.hadoopConfiguration()
    try:
        path = jvm.org.apache.hadoop.fs.Path(spec)
        fs = path.getFileSystem(conf)
        found = list(fs.globStatus(path) or [])
        files = []
        for status in found:
            if not status.isDirectory():
                files.append(status)
                continue
            walk = fs.listFiles(status.getPath(), True)
            while walk.hasNext():
                files.append(walk.next())
    except Py4JJavaError as exc:
        msg = f"{spec}: cannot list the raw listening log: {_java_error(exc)}"
        raise InputError(msg) from exc
    glob_like = any(ch in spec for ch in "*?[")
    named_file = len(found) == 1 and not found[0].isDirectory() and not glob_like
    if glob_like:
        root = fs.makeQualified(path).toString().split("*")[0].split("?")[0].split("[")[0]
        root = root.rpartition("/")[0]
    elif named_file:
        root = found[0].getPath().getParent().toString()
    else:
        root = found[0].getPath().toString() if found else ""
    entries = []
    for status in files:
        rel = status.getPath().toString().removeprefix(root).lstrip("/")
        if named_file or not any(part[:1] in "._" for part in rel.split("/")):
            uri = status.getPath().toUri().toString()
            entries.append(Entry(path=Path(rel), member=None, rel=rel, uri=uri))
    if not entries:
        msg = f"{spec}: no files found; expected a listening log file, folder or glob."
        raise InputError(msg)
    return Listing(
        entries=sorted(entries, key=lambda e: e.rel),
        root=root.rstrip("/").rpartition("/")[2],
        named_file=named_file,
    )


def uri_peek(spark: SparkSession) -> Peek:
    """`inputs.choose_format`'s peek for URI inputs: Spark reads the first lines or columns."""

    def peek(entry: Entry) -> tuple[str, list[str] | None]:
        uri = entry.uri or str(entry.path)
        if entry.name.lower().endswith(".parquet"):
            return "", spark.read.parquet(uri).columns
        lines = spark.read.text(uri).limit(200).collect()
        return "\n".join(row.value for row in lines)[:HEAD_BYTES], None

    return peek
