"""The HTML report: one self-contained page of tables, views, plots and data quality.

The page has its CSS inline and its plots as base64 PNG (drawn by `musicrec_cli.report.plots`),
plus the same PNGs beside it, so it opens from disk in any browser.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, scan, stage_dir
from musicrec_cli.report.tables import TIED_BEST, compare, comparison_html, fmt_value, pick_k
from musicrec_cli.runner.evaluate import load_tracks
from stages.schema import MODEL, POPULARITY, RANK, TRACK_IDX, USER_IDX

VIEW_COLUMNS = (
    ("discovery", "ndcg", "new tracks NDCG"),
    ("discovery", "recall", "new tracks recall"),
    ("replay", "ndcg", "with replays NDCG"),
    ("replay", "recall", "with replays recall"),
    ("new_artists", "ndcg", "new artists NDCG"),
    ("new_artists", "recall", "new artists recall"),
    ("new_artists", "artist_coverage", "artist coverage"),
)


def views_html(content: dict[str, Any], *, k: int) -> str:
    """Discovery, replay and new-artist views side by side at cut-off `k` (empty if absent)."""
    found = content.get("views") or {}
    columns = [c for c in VIEW_COLUMNS if c[0] in found]
    if not columns:
        return ""
    head = "".join(f"<th>{html.escape(title)}@{k}</th>" for *_, title in columns)
    rows = []
    for model in content["models"]:
        cells = "".join(
            f"<td>{fmt_value(found[view].get(model, {}).get(f'{metric}@{k}'), metric)}</td>"
            for view, metric, _ in columns
        )
        rows.append(f"<tr><td>{html.escape(model)}</td>{cells}</tr>")
    users = ", ".join(
        f"{view}: {next(iter(found[view].values()))['n_users']:,}" for view in found if found[view]
    )
    return (
        f"<h2>discovery and replay at K={k}</h2><p>Test users per view: {users}. New tracks: "
        "test tracks the user never played in train (what every table above scores); with "
        "replays: every track of the test period; new artists: artists the user never played "
        f"in train, each list counted by its distinct artists.</p><table><tr><th>model</th>"
        f"{head}</tr>{''.join(rows)}</table>"
    )


def flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested JSON as (dotted key, leaf value) pairs, in document order."""
    if isinstance(data, dict):
        return [kv for key, v in data.items() for kv in flatten(v, f"{prefix}{key}.")]
    if isinstance(data, list) and any(isinstance(v, dict | list) for v in data):
        return [kv for i, v in enumerate(data) for kv in flatten(v, f"{prefix}{i}.")]
    return [(prefix.rstrip("."), data)]


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}
td{text-align:right}td:first-child{text-align:left}.best{font-weight:bold;background:#e3f6e3}
.lift{color:#666;font-size:smaller}img{max-width:100%}figcaption{color:#555}"""


def _figure(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _quality_html(pairs: list[tuple[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>"
        f"{html.escape(f'{v:,}' if isinstance(v, int) and not isinstance(v, bool) else str(v))}"
        "</td></tr>"
        for k, v in pairs
    )
    return f"<table><tr><th>key</th><th>value</th></tr>{rows}</table>"


def _load(
    root: Path, k: int | None
) -> tuple[dict[str, Any], int, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """metrics.json, the K shown, per-user NDCG@K, (model, popularity) of top-K slots, tracks."""
    require_stage(root, "evaluate")
    content: dict[str, Any] = art.read_json(root, "evaluate", art.METRICS_JSON)
    k = pick_k(content["k"], k)
    per_user = scan(root, "evaluate", art.PER_USER_METRICS).select(MODEL, f"ndcg@{k}").collect()
    for stage in ("preprocess", "split", "predict"):
        require_stage(root, stage)
    tracks = load_tracks(root, scan(root, "split", art.TRAIN)).select(TRACK_IDX, POPULARITY)
    users = scan(root, "split", art.TEST).select(USER_IDX).unique()
    recs = (
        scan(root, "predict", art.PREDICTIONS)
        .filter(pl.col(RANK) <= k)
        .join(users, on=USER_IDX, how="semi")
        .join(tracks, on=TRACK_IDX, how="left")
        .select(MODEL, POPULARITY)
        .collect()
    )
    return content, k, per_user, recs, tracks.collect()


def build_report(root: Path, out: Path, *, k: int | None = None) -> Path:
    """Write OUT/index.html and its PNGs from the artifacts under `root`; returns the HTML path.

    Reads 06_evaluate (metrics.json, per_user_metrics.parquet), 05_predict, 02_split and
    01_preprocess (items.parquet, quality_report.json). OUT is an existing folder (the caller
    makes it, see musicrec_cli.owned.replacing); files of the same name in it are overwritten.
    """
    # matplotlib costs every musicrec command 0.3 s of start-up: imported only for the report
    from musicrec_cli.report.plots import (  # noqa: PLC0415
        plot_coverage,
        plot_known_tracks,
        plot_metric_vs_k,
        plot_ndcg,
        plot_popularity,
        plot_quality,
        plot_segments,
    )

    content, k, per_user, recs, tracks = _load(root, k)
    quality_path = stage_dir(root, "preprocess") / art.QUALITY_REPORT
    report = json.loads(quality_path.read_text(encoding="utf-8")) if quality_path.is_file() else {}
    quality = (
        flatten(report) if report else [("quality_report.json", "not written by this preprocess")]
    )
    n_tracks = content["n_tracks"]
    figures: list[tuple[str, bytes | None, str]] = [
        ("metric_vs_k", plot_metric_vs_k(content), "Each metric at every K, one line per model."),
        (
            "popularity",
            plot_popularity(recs, tracks, k=k),
            f"Popularity of the tracks in the evaluated users' top-{k} lists vs the catalogue's "
            f"tracks ({int((tracks[POPULARITY] == 0).sum()):,} of {n_tracks:,} catalogue tracks "
            "have no train listener and are not shown).",
        ),
        ("coverage", plot_coverage(content), "Share of the catalogue recommended at each K."),
        ("ndcg_distribution", plot_ndcg(per_user, k=k), f"Per-user NDCG@{k}, log-scale counts."),
        (
            "ndcg_by_segment",
            plot_segments(content, k=k),
            f"NDCG@{k} of each model for users with few and many training tracks (cold start).",
        ),
        (
            "ndcg_by_known_tracks",
            plot_known_tracks(content, k=k),
            f"Held-out users scored from only n of their known tracks: NDCG@{k} per model "
            "(ALS folded in; the hybrid with its weights for that history size).",
        ),
        (
            "preprocess_quality",
            plot_quality(report, quality),
            "Rows kept after each preprocess step and what it dropped (the table below has "
            "every entry of quality_report.json).",
        ),
    ]
    body = []
    for name, png, caption in figures:
        if png is not None:
            (out / f"{name}.png").write_bytes(png)
            body.append(f"<h2>{name.replace('_', ' ')}</h2>{_figure(name, png, caption)}")
    baseline = content.get("baseline")
    intro = (
        f"<p>{content['n_users_evaluated']:,} test users evaluated "
        f"({content['n_users_without_test']:,} users without test tracks left out); "
        f"catalogue of {n_tracks:,} tracks; K = {', '.join(map(str, content['k']))}. "
        f"Bold: best per column (lowest for popularity); {TIED_BEST}: not significantly "
        f"different from the best. "
        + (
            f"Small print: lift over {html.escape(baseline)}, ns where it is not significant "
            f"(paired Wilcoxon signed-rank test, Holm-adjusted, alpha "
            f"{(content.get('significance') or {}).get('alpha', 0.05)}; 95% bootstrap "
            f"intervals in metrics.json under significance)."
            if baseline
            else ""
        )
        + "</p>"
    )
    tables = "".join(
        f"<h2>models at K={each}</h2>{comparison_html(compare(content, k=each))}"
        for each in sorted(content["k"], key=lambda x: (x != k, x))
    )
    page = (
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>musicrec evaluation"
        f"</title><style>{_CSS}</style></head><body><h1>musicrec evaluation</h1>{intro}"
        f"{tables}{views_html(content, k=k)}{''.join(body)}"
        f"<h2>preprocess quality report</h2>{_quality_html(quality)}</body></html>\n"
    )
    (out / "index.html").write_text(page, encoding="utf-8")
    return out / "index.html"
