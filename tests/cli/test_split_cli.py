import hashlib
import json
import threading
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from musicrec_cli.app import app
from stages.schema import PLAYED_AT, TRACK_IDX, USER_IDX


def run(config: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(config), *args])


@pytest.fixture
def preprocessed(tiny_project: Path) -> Path:
    result = run(tiny_project, "preprocess")
    assert result.exit_code == 0, result.output
    return tiny_project


def _split(config: Path) -> tuple[dict, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    folder = config.parent / "artifacts" / "02_split"
    summary = json.loads((folder / "manifest.json").read_text())["summary"]
    return summary, *(
        pl.read_parquet(folder / f"{name}.parquet") for name in ("train", "test", "test_replay")
    )


@pytest.mark.parametrize("strategy", ["temporal", "user-temporal", "user-random", "held-out-users"])
def test_split_strategy_option_writes_a_leak_free_split(preprocessed: Path, strategy: str):
    result = run(preprocessed, "split", "--strategy", strategy)
    assert result.exit_code == 0, result.output
    summary, train, test, replay = _split(preprocessed)
    assert summary["strategy"] == strategy
    assert test.height == summary["n_test"] > 0
    assert train.join(test, on=[USER_IDX, TRACK_IDX]).height == 0
    assert test.join(replay, on=[USER_IDX, TRACK_IDX], how="anti").height == 0
    if strategy in ("user-random", "held-out-users"):
        assert replay.equals(test)
    if strategy == "held-out-users":
        assert test[USER_IDX].n_unique() <= summary["n_held_out_users"]


def _refresh_manifest(path: Path) -> None:
    manifest_path = path.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["outputs"][path.name]
    stat = path.stat()
    entry |= {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "size": stat.st_size}
    entry["mtime_ns"] = stat.st_mtime_ns
    manifest_path.write_text(json.dumps(manifest))


def test_plays_without_timestamps_split_user_random_and_refuse_temporal(preprocessed: Path):
    plays = preprocessed.parent / "artifacts" / "01_preprocess" / "plays.parquet"
    frame = pl.read_parquet(plays)
    frame.with_columns(pl.lit(None, frame.schema[PLAYED_AT]).alias(PLAYED_AT)).write_parquet(plays)
    _refresh_manifest(plays)  # as preprocess would write it for a count table (issue 17)
    result = run(preprocessed, "split")
    assert result.exit_code == 0, result.output
    assert _split(preprocessed)[0]["strategy"] == "user-random"
    result = run(preprocessed, "split", "--strategy", "temporal")
    assert result.exit_code == 1
    assert "plays.parquet: the plays have no timestamps" in result.output
    assert "Traceback" not in result.output
    assert _split(preprocessed)[0]["strategy"] == "user-random"  # previous split kept


def test_unknown_strategy_is_a_usage_error(preprocessed: Path):
    result = run(preprocessed, "split", "--strategy", "random")
    assert result.exit_code == 2
    assert "is not a strategy" in result.output


def test_held_out_users_evaluate_measures_cold_start(tiny_project: Path):
    result = run(
        tiny_project,
        "--set",
        "split.strategy=held-out-users",
        "--set",
        "split.held_out_share=0.3",
        "all",
    )
    assert result.exit_code == 0, result.output
    folder = tiny_project.parent / "artifacts" / "06_evaluate"
    cold = json.loads((folder / "metrics.json").read_text())["cold_start"]
    assert cold["counts"] == [0, 1, 3, 5, 10]
    assert 0 < cold["n_users"] <= 36  # held-out users with at least 10 known tracks
    assert "als" not in cold["by_known"]["0"]  # nothing to fold in
    for n in ("1", "3", "5", "10"):
        assert {"als", "content", "hybrid", "popularity"} <= set(cold["by_known"][n])
    summary = json.loads((folder / "manifest.json").read_text())["summary"]
    assert summary["cold_start_seconds"] > 0


@pytest.mark.parametrize("strategy", ["temporal", "user-temporal", "user-random", "held-out-users"])
def test_plays_out_of_order_are_split_as_sorted_ones(preprocessed: Path, strategy: str):
    """plays.parquet is sorted (pairs aggregated over its runs); any other order is hashed."""
    assert run(preprocessed, "split", "--strategy", strategy).exit_code == 0
    sorted_run = _split(preprocessed)
    plays = preprocessed.parent / "artifacts" / "01_preprocess" / "plays.parquet"
    pl.read_parquet(plays).sample(fraction=1.0, shuffle=True, seed=3).write_parquet(plays)
    _refresh_manifest(plays)
    result = run(preprocessed, "split", "--strategy", strategy)
    assert result.exit_code == 0, result.output
    for before, after in zip(sorted_run[1:], _split(preprocessed)[1:], strict=True):
        assert after.equals(before)


def test_ranges_are_written_on_a_second_thread_in_order(
    preprocessed: Path, monkeypatch: pytest.MonkeyPatch
):
    """A user range's pairs are written beside the next range's aggregation, one at a time."""
    from musicrec_cli.runner.split_train import TrainSink

    threads: list[str] = []
    write = TrainSink.write

    def recording(self: TrainSink, frame: pl.DataFrame) -> None:
        threads.append(threading.current_thread().name.split("_")[0])
        write(self, frame)

    assert run(preprocessed, "split").exit_code == 0
    one_range = _split(preprocessed)
    monkeypatch.setattr(TrainSink, "write", recording)
    result = run(preprocessed, "--set", "split.plays_per_part=200", "split")
    assert result.exit_code == 0, result.output
    summary, *frames = _split(preprocessed)
    assert summary["n_parts"] > 10
    assert set(threads) == {"musicrec-split"}
    assert len(threads) == summary["n_parts"]
    for before, after in zip(one_range[1:], frames, strict=True):
        assert after.equals(before)


def test_a_failed_range_write_is_raised_as_itself_and_leaves_the_split_as_it_was(
    preprocessed: Path, monkeypatch: pytest.MonkeyPatch
):
    from musicrec_cli.runner.split_train import TrainSink

    class FailedWriteError(RuntimeError):
        pass

    assert run(preprocessed, "split").exit_code == 0
    folder = preprocessed.parent / "artifacts" / "02_split"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    calls = []
    write = TrainSink.write

    def failing(self: TrainSink, frame: pl.DataFrame) -> None:
        calls.append(1)
        if len(calls) == 3:
            msg = "no space left writing train.parquet"
            raise FailedWriteError(msg)
        write(self, frame)

    monkeypatch.setattr(TrainSink, "write", failing)
    threads = threading.active_count()
    result = run(preprocessed, "--set", "split.plays_per_part=200", "split")
    assert isinstance(result.exception, FailedWriteError), result.output
    assert threading.active_count() == threads
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not list(folder.parent.glob(".*partial*"))
