"""Every sample in ../shared/real-formats through the whole chain with its defaults (issue 17).

`musicrec preprocess --input SAMPLE` (format auto), then split, features, train, predict and
evaluate with no setting changed but the ALS/BPR width (for speed). The counts of rows in,
plays, users, tracks and artists out are pinned: they are the table in docs/preprocess.md.
One person's export is split per user in time and tested on what they played again (the
replay view: with one user no new track is known in train); the Taste Profile folder (play
counts and the CSVs naming its song ids) is split user-random. The chain runs once per sample
(a module fixture) and each test reads its artifacts. Slow: about a minute in all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from musicrec_cli.app import app
from tests.conftest import shared_folder

# sample -> (format --format auto must recognise, rows in, plays, users, tracks, artists)
EXPECTED = {
    "lastfm-1k": ("lastfm1k", 5_000, 4_997, 1, 1_189, 225),
    "spotify-extended": ("spotify", 1_470, 777, 1, 303, 221),
    "spotify-extended-old": ("spotify", 2_080, 1_600, 1, 1_116, 522),
    "spotify-account": ("spotify-account", 11_931, 9_531, 1, 3_222, 1_482),
    "listenbrainz": ("listenbrainz", 15, 8, 1, 5, 5),
    "msd-taste": ("counts", 42_739, 36_457, 1_458, 5_236, 1_748),
}
STAGES = ("split", "features", "train", "predict", "evaluate")


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def chain(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """(sample, artifacts folder) after the whole chain ran on the sample (read in place)."""
    real_formats = shared_folder("real-formats")  # skips, naming the folder, if it is absent
    sample: str = request.param
    art = tmp_path_factory.mktemp(sample) / "art"
    base = ["--set", f"paths.artifacts={art}", "--set", "train.factors=16"]
    code, output = _run(*base, "preprocess", "--input", str(real_formats / sample))
    assert code == 0, f"preprocess: {output}"
    for stage in STAGES:
        code, output = _run(*base, stage)
        assert code == 0, f"{sample} {stage}: {output}"
    return sample, art


def _json(art: Path, path: str) -> Any:
    return json.loads((art / path).read_text())


@pytest.mark.slow
def test_each_sample_preprocesses_to_its_pinned_counts(chain: tuple[str, Path]) -> None:
    sample, art = chain
    fmt, rows, plays, users, tracks, artists = EXPECTED[sample]
    report = _json(art, "01_preprocess/quality_report.json")
    assert report["format"] == fmt
    assert sum(f["rows_read"] for f in report["files"]) == report["rows_in"] == rows
    out = report["output"]
    assert (out["plays"], out["users"], out["tracks"]) == (plays, users, tracks)
    items = pl.read_parquet(art / "01_preprocess" / "items.parquet")
    assert items.height == tracks
    named = items.filter(pl.col("artist_name") != "[unknown artist]")
    assert named["artist_id"].n_unique() == artists
    if sample == "msd-taste":  # the song ids get their names from the CSVs beside them
        files = [Path(f).name for f in report["names_tables"]["files"]]
        assert sorted(files) == ["song_data.csv", "song_df.csv"]
        assert named.height == 4_590
        assert "Björk" in set(named["artist_name"])
    else:
        assert named.height == items.height


@pytest.mark.slow
def test_each_sample_runs_the_whole_chain(chain: tuple[str, Path]) -> None:
    sample, art = chain
    split = _json(art, "02_split/manifest.json")["summary"]
    metrics = _json(art, "06_evaluate/metrics.json")
    assert metrics["n_users_evaluated"] >= 1
    assert set(metrics["models"]) >= {"popularity", "als", "knn"}
    if sample == "msd-taste":
        assert (split["strategy"], split["test_view"]) == ("user-random", "discovery")
        return
    # one person: the last fifth of their plays, tested on the tracks they played again
    assert (split["strategy"], split["test_view"]) == ("user-temporal", "replay")
    assert metrics["test_view"] == "replay"
    test = pl.read_parquet(art / "02_split" / "test.parquet")
    train = pl.read_parquet(art / "02_split" / "train.parquet")
    assert test.height > 0
    assert test.join(train, on=["user_idx", "track_idx"], how="anti").height == 0
    # the lists may hold heard tracks, else no model could score on re-listens
    recs = pl.read_parquet(art / "05_predict" / "predictions.parquet")
    assert recs.join(train, on=["user_idx", "track_idx"], how="semi").height > 0
