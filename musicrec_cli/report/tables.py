"""Model comparison: the models x metrics tables, for the terminal and for the HTML report."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from musicrec_cli.artifacts import ArtifactError
from stages.evaluate.ranking import METRICS

# (metric, short header); every metric is "higher is better" except popularity.
TABLE_METRICS = (
    ("precision", "P"),
    ("recall", "R"),
    ("ndcg", "NDCG"),
    ("map", "MAP"),
    ("mrr", "MRR"),
    ("hit_rate", "HR"),
    ("coverage", "Cov"),
    ("artist_diversity", "ArtDiv"),
    ("audio_distance", "AudioDist"),
    ("novelty", "Novelty"),
    ("popularity", "Pop"),
)
LOWER_IS_BETTER = frozenset({"popularity"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """Models x metrics at one K, formatted; `best` holds (row, column) of each column's best."""

    k: int
    metrics: tuple[str, ...]
    models: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]
    lifts: tuple[tuple[str, ...], ...]
    best: frozenset[tuple[int, int]]
    tied_best: frozenset[tuple[int, int]] = frozenset()


def pick_k(ks: list[int], k: int | None) -> int:
    """`k` if given (it must be one of `ks`), else 10 when evaluated, else the smallest K."""
    if k is None:
        return 10 if 10 in ks else min(ks)
    if k not in ks:
        msg = (
            f"--k {k}: metrics were computed at K in {ks}; pick one of them, or rerun "
            f"`musicrec --set 'evaluate.k={sorted({*ks, k})}' evaluate`."
        )
        raise ArtifactError(msg)
    return k


def fmt_value(value: float | None, metric: str) -> str:
    """A metric value as shown: 2 decimals for novelty (bits), 4 for the rest, "-" if unknown."""
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:.2f}" if metric == "novelty" else f"{value:.4f}"


def compare(content: dict[str, Any], *, k: int) -> Comparison:
    """Format metrics.json's models at cut-off `k`, with lifts over its baseline model."""
    models = tuple(content["models"])
    names = tuple(
        m for m, _ in TABLE_METRICS if any(f"{m}@{k}" in row for row in content["models"].values())
    )
    lifts_in = content.get("lift_over_baseline") or {}
    tests = content.get("significance") or {}
    vs_base, vs_best = tests.get("vs_baseline", {}), tests.get("vs_best", {})
    values, lifts, best, tied = [], [], set(), set()
    for j, metric in enumerate(names):
        column = [content["models"][m].get(f"{metric}@{k}") for m in models]
        known = [v for v in column if v is not None and v == v]
        if known:
            target = min(known) if metric in LOWER_IS_BETTER else max(known)
            best |= {(i, j) for i, v in enumerate(column) if v == target}
    for i, model in enumerate(models):
        row = content["models"][model]
        values.append(tuple(fmt_value(row.get(f"{m}@{k}"), m) for m in names))
        lift = lifts_in.get(model, {}) if model != content.get("baseline") else {}
        lifts.append(
            tuple(
                ""
                if lift.get(f"{m}@{k}") is None
                else f"{lift[f'{m}@{k}']:+.0%}" + _not_significant(vs_base, model, f"{m}@{k}")
                for m in names
            )
        )
        tied |= {
            (i, j) for j, m in enumerate(names) if _not_significant(vs_best, model, f"{m}@{k}")
        }
    return Comparison(
        k=k,
        metrics=names,
        models=models,
        values=tuple(values),
        lifts=tuple(lifts),
        best=frozenset(best),
        tied_best=frozenset(tied - best),
    )


def _not_significant(tests: dict[str, Any], model: str, column: str) -> str:
    """NOT_SIGNIFICANT if metrics.json tested `model` on `column` and found no real difference."""
    found = tests.get(model, {}).get(column)
    return NOT_SIGNIFICANT if found is not None and not found["significant"] else ""


NOT_SIGNIFICANT = " ns"
TIED_BEST = "≈"


LEGEND = (
    "P precision, R recall, HR hit rate, Cov catalogue coverage, ArtDiv distinct-artist share, "
    "AudioDist RMS audio-feature distance, Novelty in bits, Pop mean popularity. "
    "Bold: best per column (lowest for Pop); ≈: not significantly different from the best; "
    "ns: lift not significant (paired Wilcoxon, Holm-adjusted; intervals in metrics.json)."
)


def _cell(value: str, lift: str, *, tied: bool) -> str:
    text = value + (TIED_BEST if tied else "")
    return f"{text}\n{lift}" if lift else text


def terminal_tables(
    content: dict[str, Any], *, k: int | None
) -> list[tuple[str, list[str], list[list[str]], set[tuple[int, int]]]]:
    """(title, columns, rows, bold cells) of the ranking and the beyond-accuracy table.

    Each cell holds the value and, on a second line (printed dim), the lift over the baseline.
    """
    table = compare(content, k=pick_k(content["k"], k))
    headers, base = dict(TABLE_METRICS), content.get("baseline")
    n_ranking = sum(m in METRICS for m in table.metrics)
    out = []
    for title, cols in (
        ("Ranking", range(n_ranking)),
        ("Beyond accuracy", range(n_ranking, len(table.metrics))),
    ):
        rows = [
            [
                model + ("\nbaseline" if model == base else ""),
                *(_cell(values[j], lifts[j], tied=(i, j) in table.tied_best) for j in cols),
            ]
            for i, (model, values, lifts) in enumerate(
                zip(table.models, table.values, table.lifts, strict=True)
            )
        ]
        bold = {(r, c - cols.start + 1) for r, c in table.best if c in cols}
        title = f"{title} at K={table.k} ({content['n_users_evaluated']:,} test users)"
        out.append((title, ["model", *(f"{headers[table.metrics[j]]}" for j in cols)], rows, bold))
    return out


def variant_tables(
    content: dict[str, Any], *, k: int | None
) -> list[tuple[str, list[str], list[list[str]], set[tuple[int, int]]]]:
    """One table per ranking metric: models x library definitions (`--metric-variants`)."""
    found = content.get("metric_variants")
    if not found:
        return []
    k = pick_k(content["k"], k)
    names = list(found)
    out: list[tuple[str, list[str], list[list[str]], set[tuple[int, int]]]] = []
    for metric in ("precision", "recall", "ndcg", "map", "mrr"):
        column = f"{metric}@{k}"
        rows = [
            [model, *(fmt_value(found[v][model].get(column), metric) for v in names)]
            for model in content["models"]
        ]
        out.append((f"{column} as each library defines it", ["model", *names], rows, set()))
    return out


def comparison_html(table: Comparison) -> str:
    """The comparison as an HTML table; best values bold, lifts in small print."""
    head = "".join(f"<th>{html.escape(m)}@{table.k}</th>" for m in table.metrics)
    rows = []
    for i, model in enumerate(table.models):
        lifts = [f"<br><span class=lift>{x}</span>" if x else "" for x in table.lifts[i]]
        cells = [
            f"<td{' class=best' if (i, j) in table.best else ''}>{v}"
            f"{TIED_BEST if (i, j) in table.tied_best else ''}{lifts[j]}</td>"
            for j, v in enumerate(table.values[i])
        ]
        rows.append(f"<tr><td>{html.escape(model)}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>model</th>{head}</tr>{''.join(rows)}</table>"
