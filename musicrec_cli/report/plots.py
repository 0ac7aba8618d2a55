"""The report's plots, drawn with matplotlib's object API (`Figure` on the Agg canvas).

No pyplot: nothing touches matplotlib's global backend or figure state, so plotting works without
a display and leaves nothing open. Each function returns PNG bytes.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from stages.evaluate.ranking import METRICS
from stages.schema import MODEL, POPULARITY

PLOTTED = (*METRICS, "coverage", "artist_diversity", "novelty")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def plot_metric_vs_k(content: dict[str, Any]) -> bytes:
    """One panel per metric, one line per model, K on the x axis."""
    ks = content["k"]
    fig = Figure(figsize=(12, 9))
    for i, metric in enumerate(PLOTTED):
        ax = fig.add_subplot(3, 3, i + 1)
        for model, row in content["models"].items():
            ys = [row.get(f"{metric}@{k}") for k in ks]
            ax.plot(ks, [np.nan if y is None else y for y in ys], marker="o", label=model)
        ax.set(title=metric, xlabel="K", xticks=ks)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize="small")
    fig.tight_layout()
    return _png(fig)


def plot_coverage(content: dict[str, Any]) -> bytes:
    """Grouped bars: catalogue coverage at each K per model."""
    ks, models = content["k"], list(content["models"])
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    width = 0.8 / len(ks)
    for j, k in enumerate(ks):
        heights = [content["models"][m].get(f"coverage@{k}") or 0.0 for m in models]
        ax.bar(np.arange(len(models)) + j * width, heights, width, label=f"K={k}")
    ax.set_xticks(np.arange(len(models)) + width * (len(ks) - 1) / 2, models)
    ax.set(ylabel="share of catalogue recommended", ylim=(0, 1))
    ax.legend()
    return _png(fig)


def plot_popularity(recs: pl.DataFrame, tracks: pl.DataFrame, *, k: int) -> bytes:
    """Density of log10(popularity): each model's top-K slots vs the catalogue's tracks."""
    positive = tracks.filter(pl.col(POPULARITY) > 0)[POPULARITY].to_numpy()
    low = np.log10(positive.min()) if positive.size else -6.0
    bins = np.linspace(low, 0.0, 40)
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    series = [("catalogue", positive)]
    for model in sorted(recs[MODEL].unique()):
        pops = recs.filter((pl.col(MODEL) == model) & (pl.col(POPULARITY) > 0))[POPULARITY]
        series.append((f"{model} top-{k}", pops.to_numpy()))
    for label, values in series:
        if values.size:
            ax.hist(
                np.log10(values), bins=bins.tolist(), density=True, histtype="step", label=label
            )
    ax.set(xlabel="log10(popularity = share of train users who played the track)", ylabel="density")
    ax.legend(fontsize="small")
    return _png(fig)


def plot_ndcg(per_user: pl.DataFrame, *, k: int) -> bytes:
    """Histogram of per-user NDCG@K per model; the legend gives the share of users at 0."""
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    column = f"ndcg@{k}"
    for (model,), part in per_user.group_by(MODEL, maintain_order=True):
        values = part[column].to_numpy()
        zero = float(np.mean(values == 0)) if values.size else 0.0
        label = f"{model} ({zero:.0%} at 0)"
        ax.hist(values, bins=np.linspace(0, 1, 21).tolist(), histtype="step", label=label)
    ax.set(xlabel=column, ylabel="users", yscale="log")
    ax.legend(fontsize="small")
    return _png(fig)


def plot_quality(report: dict[str, Any], pairs: list[tuple[str, Any]]) -> bytes | None:
    """Rows kept per preprocess step when the report lists its steps, else its numeric entries.

    Args:
        report: quality_report.json as read; `steps` is a list of {step, rows_in, rows_out}.
        pairs: The same report flattened to (key, value), for reports without steps.
    """
    steps = report.get("steps")
    if isinstance(steps, list) and steps and all("rows_out" in s for s in steps):
        return _plot_steps(report.get("rows_in"), steps)
    numeric = [
        (k, float(v)) for k, v in pairs if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    numeric = [(k, v) for k, v in numeric if v > 0]
    if not numeric:
        return None
    fig = Figure(figsize=(8, 0.35 * len(numeric) + 1))
    ax = fig.add_subplot()
    ax.barh([k for k, _ in numeric][::-1], [v for _, v in numeric][::-1])
    ax.set(xscale="log", xlabel="count (log scale)")
    return _png(fig)


def _plot_steps(rows_in: object, steps: list[dict[str, Any]]) -> bytes:
    """Bars of rows left after each step, labelled with what the step dropped."""
    labels = ["raw rows"] if isinstance(rows_in, int) else []
    values = [float(rows_in)] if isinstance(rows_in, int) else []
    for step in steps:
        dropped = ", ".join(f"{k} {v:,}" for k, v in step.get("dropped", {}).items() if v)
        unit = f" ({step['unit']})" if "unit" in step else ""
        labels.append(f"{step['step']}{unit}" + (f"\n- {dropped}" if dropped else ""))
        values.append(float(step["rows_out"]))
    fig = Figure(figsize=(8, 0.6 * len(values) + 1))
    ax = fig.add_subplot()
    bars = ax.barh(labels[::-1], values[::-1])
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values[::-1]], padding=3, fontsize="small")
    ax.set(xlabel="rows kept after the step", xlim=(0, max(values) * 1.25))
    fig.tight_layout()
    return _png(fig)


def plot_segments(content: dict[str, Any], *, k: int) -> bytes | None:
    """Grouped bars: NDCG@K per user-activity segment (training tracks), one bar per model.

    Segments without users are left out; the segment labels carry their user counts.
    """
    found = content.get("segments")
    if not found:
        return None
    models = list(found["by_model"])
    labels = [s for s in found["labels"] if any(s in found["by_model"][m] for m in models)]
    counts = [
        max(found["by_model"][m].get(s, {}).get("n_users", 0) for m in models) for s in labels
    ]
    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    width = 0.8 / max(len(models), 1)
    for j, model in enumerate(models):
        rows = found["by_model"][model]
        heights = [rows.get(s, {}).get(f"ndcg@{k}") or 0.0 for s in labels]
        ax.bar(np.arange(len(labels)) + j * width, heights, width, label=model)
    ticks = [f"{s} tracks\n({n:,} users)" for s, n in zip(labels, counts, strict=True)]
    ax.set_xticks(np.arange(len(labels)) + width * (len(models) - 1) / 2, ticks)
    ax.set(ylabel=f"mean NDCG@{k}", xlabel="users by number of training tracks")
    ax.legend(fontsize="small", ncol=2)
    return _png(fig)


def plot_known_tracks(content: dict[str, Any], *, k: int) -> bytes | None:
    """NDCG@K of held-out users given 0, 1, 3, 5, 10 known tracks, one line per model."""
    found = content.get("cold_start")
    if not found or not found["by_known"]:
        return None
    counts = sorted(int(n) for n in found["by_known"])
    models = sorted({m for rows in found["by_known"].values() for m in rows})
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for model in models:
        ys = [found["by_known"][str(n)].get(model, {}).get(f"ndcg@{k}") for n in counts]
        ax.plot(counts, [np.nan if y is None else y for y in ys], marker="o", label=model)
    ax.set(
        xlabel="known tracks given to the model",
        ylabel=f"mean NDCG@{k}",
        xticks=counts,
        title=f"{found['n_users']:,} held-out users",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)
