"""Every sample in ../shared/real-formats through musicrec with its format's defaults (issue 17).

`musicrec preprocess --input SAMPLE` (format auto) on each; the counts of rows in, users, tracks
and artists out are pinned (they are the table in docs/preprocess.md and the issue's report).
The Taste Profile sample (many users) runs the whole chain; a one-person export stops at split
with the line that says what would work. Slow: about a minute in all.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from musicrec_cli.app import app

# sample -> the format --format auto must recognise
EXPECTED = {
    "lastfm-1k": "lastfm1k",
    "spotify-extended": "spotify",
    "spotify-extended-old": "spotify",
    "spotify-account": "spotify-account",
    "listenbrainz": "listenbrainz",
    "msd-taste/10000.txt": "counts",
}


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.slow
@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_each_real_sample_preprocesses_with_its_defaults(
    real_formats: Path, tmp_path: Path, sample: str
) -> None:
    art = tmp_path / "art"
    code, output = _run(
        "--set", f"paths.artifacts={art}", "preprocess", "--input", str(real_formats / sample)
    )
    assert code == 0, output
    report = json.loads((art / "01_preprocess" / "quality_report.json").read_text())
    assert report["format"] == EXPECTED[sample]
    assert report["output"]["users"] >= 1
    assert sum(f["rows_read"] for f in report["files"]) == report["rows_in"]
    items = pl.read_parquet(art / "01_preprocess" / "items.parquet")
    assert items.height == report["output"]["tracks"] > 0


@pytest.mark.slow
def test_taste_profile_sample_runs_the_whole_chain(real_formats: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    base = ["--set", f"paths.artifacts={art}", "--set", "train.factors=16"]
    code, output = _run(
        *base, "preprocess", "--input", str(real_formats / "msd-taste" / "10000.txt")
    )
    assert code == 0, output
    for stage in ("split", "features", "train", "predict", "evaluate"):
        code, output = _run(*base, stage)
        assert code == 0, f"{stage}: {output}"
    assert (
        "user-random"
        in json.loads((art / "02_split" / "manifest.json").read_text())["summary"]["strategy"]
    )
    metrics = json.loads((art / "06_evaluate" / "metrics.json").read_text())
    assert metrics


@pytest.mark.slow
def test_one_persons_export_says_what_would_work(real_formats: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    code, output = _run(
        "--set", f"paths.artifacts={art}", "preprocess", "--input",
        str(real_formats / "spotify-account"),
    )  # fmt: skip
    assert code == 0, output
    code, output = _run("--set", f"paths.artifacts={art}", "split")
    assert code == 1
    assert "one user's" in output
    assert "more users" in output
