"""`musicrec report`: a self-contained HTML page with embedded PNGs, on hand-written artifacts."""

import base64
import re
from pathlib import Path

import pytest

from musicrec_cli.report import html as report_html
from musicrec_cli.report import tables as report
from tests.cli.test_evaluate_cli import invoke, write_upstream

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("artifacts")
    write_upstream(root)
    assert invoke(root, "evaluate").exit_code == 0
    out = root / "my_report"
    result = invoke(root, "report", "--out", str(out), "--k", "2")
    assert result.exit_code == 0, result.output
    return out, (out / "index.html").read_text(encoding="utf-8")


def test_report_embeds_every_plot_and_writes_it_beside(built: tuple[Path, str]) -> None:
    out, page = built
    names = [
        "metric_vs_k",
        "popularity",
        "coverage",
        "ndcg_distribution",
        "ndcg_by_segment",
        "preprocess_quality",
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".musicrec-owned", "index.html", *(f"{n}.png" for n in names)]
    )
    embedded = re.findall(r'alt="([a-z_]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [name for name, _ in embedded] == names
    for name, data in embedded:
        png = base64.b64decode(data)
        assert png.startswith(PNG_MAGIC)
        assert png == (out / f"{name}.png").read_bytes()


def test_report_needs_no_server_or_network(built: tuple[Path, str]) -> None:
    _, page = built
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    assert "<script" not in page
    assert "<link" not in page


def test_report_renders_comparison_and_every_quality_key(built: tuple[Path, str]) -> None:
    _, page = built
    assert "<td>als+rerank</td>" in page
    assert "<th>ndcg@2</th>" in page
    assert "<td class=best>0.5377<br><span class=lift>+58% ns</span></td>" in page
    # nested keys added by preprocess are flattened, whatever they are
    for key, value in (("rows_in", "100"), ("steps.dedupe.rows_kept", "90"), ("note", "ok")):
        assert f"<tr><td>{key}</td><td>{value}</td></tr>" in page


@pytest.mark.slow  # over 2 s: a whole pipeline or a live server
def test_report_has_a_home_that_a_rerun_of_evaluate_keeps_16(tmp_path: Path) -> None:
    write_upstream(tmp_path)
    assert invoke(tmp_path, "evaluate").exit_code == 0
    result = invoke(tmp_path, "report")
    assert result.exit_code == 0, result.output
    page = tmp_path / "report" / "index.html"
    before = page.read_bytes()
    # the nightly cron reruns evaluate: the report must survive it
    assert invoke(tmp_path, "evaluate").exit_code == 0
    assert page.read_bytes() == before


def test_report_k_must_have_been_evaluated(built: tuple[Path, str]) -> None:
    root = built[0].parent
    result = invoke(root, "report", "--out", str(root / "other"), "--k", "3")
    assert result.exit_code == 1
    assert "--k 3: metrics were computed at K in [1, 2]" in result.stderr
    assert "--set 'evaluate.k=[1, 2, 3]' evaluate" in result.stderr


def test_report_before_evaluate_names_the_command(tmp_path: Path) -> None:
    write_upstream(tmp_path)
    result = invoke(tmp_path, "report")
    assert result.exit_code == 1
    assert "run `musicrec evaluate` first" in result.stderr


def test_flatten_nested_quality_report() -> None:
    data = {"a": 1, "steps": [{"name": "dedupe", "rows": 5}], "tags": ["x", "y"]}
    assert report_html.flatten(data) == [
        ("a", 1),
        ("steps.0.name", "dedupe"),
        ("steps.0.rows", 5),
        ("tags", ["x", "y"]),
    ]


def test_comparison_marks_lowest_popularity_and_ties() -> None:
    content = {
        "baseline": None,
        "models": {
            "a": {"ndcg@5": 0.2, "popularity@5": 0.3},
            "b": {"ndcg@5": 0.2, "popularity@5": 0.1},
        },
    }
    table = report.compare(content, k=5)
    assert table.metrics == ("ndcg", "popularity")
    assert table.best == {(0, 0), (1, 0), (1, 1)}
    assert table.values == (("0.2000", "0.3000"), ("0.2000", "0.1000"))


def test_quality_plot_shows_rows_kept_per_named_step() -> None:
    from musicrec_cli.report.plots import plot_quality

    steps = [
        {"step": "parse", "rows_in": 10, "rows_out": 9, "dropped": {"bad_timestamp": 1}},
        {"step": "min_counts", "rows_in": 6, "rows_out": 4, "unit": "pairs", "dropped": {}},
    ]
    png = plot_quality({"rows_in": 10, "steps": steps}, [])
    assert png is not None
    assert png.startswith(b"\x89PNG")
    # without steps only the flattened numeric entries are drawn: none here, so no plot
    assert plot_quality({}, [("format", "generate")]) is None


def test_comparison_marks_differences_that_are_not_significant() -> None:
    def test(significant: bool) -> dict:
        return {"reference": "pop", "significant": significant}

    content = {
        "baseline": "pop",
        "models": {
            "als": {"ndcg@5": 0.30, "recall@5": 0.20},
            "knn": {"ndcg@5": 0.29, "recall@5": 0.10},
            "pop": {"ndcg@5": 0.10, "recall@5": 0.05},
        },
        "lift_over_baseline": {
            "als": {"ndcg@5": 2.0, "recall@5": 3.0},
            "knn": {"ndcg@5": 1.9, "recall@5": 1.0},
        },
        "significance": {
            "vs_baseline": {
                "als": {"ndcg@5": test(True), "recall@5": test(True)},
                "knn": {"ndcg@5": test(True), "recall@5": test(False)},
            },
            "vs_best": {"knn": {"ndcg@5": test(False), "recall@5": test(True)}},
        },
    }
    table = report.compare(content, k=5)
    assert table.metrics == ("recall", "ndcg")
    assert table.lifts == (("+300%", "+200%"), ("+100% ns", "+190%"), ("", ""))
    assert table.tied_best == {(1, 1)}  # knn's ndcg is within noise of als's
    html_table = report.comparison_html(table)
    assert "0.2900≈" in html_table
    assert "+100% ns" in html_table


def test_report_shows_the_views_side_by_side(built: tuple[Path, str]) -> None:
    _, page = built
    assert "<h2>discovery and replay at K=" in page
    assert "<th>new artists recall@" in page
