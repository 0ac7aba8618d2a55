"""Time `musicrec preprocess` against DuckDB (and plain Polars) on the same generated files.

Usage: python benchmarks/bench_preprocess.py 1000000 10000000 [--repeats 3] [--workdir DIR]

For each scale: generate raw events with `musicrec generate` (Parquet parts), then run, each in
its own process under /usr/bin/time -v (wall time and peak RSS):
  * duckdb: filter ms_played >= 30 s, group by the raw keys (user_id, track_uri): count,
    sum ms, min/max ts, skips -> Parquet (the first reference, kept: less work than ours);
  * duckdb_canonical: the same aggregation musicrec does, in one SQL: artist and title keys
    computed once per distinct name (NFC, case fold, credits, accents, punctuation, a leading
    "the"), an integer track index per (artist key, title key) joined onto the plays (as
    musicrec does; grouping on the key strings took 4% longer), plays de-duplicated
    on (user, track, instant), then aggregated per (user, track). No k-core, version groups,
    display names, plays file or matrix: still less work than musicrec;
  * polars: the same query with the streaming engine and sink_parquet;
  * musicrec: the whole preprocess stage (parse, names, canonical ids, bots, dedupe, k-core,
    all outputs), once single-pass and once forced to 4 buckets;
  * musicrec_polars_allocator: the same as musicrec with jemalloc as Polars builds it (freed
    pages returned after 0.5 s; musicrec keeps them 10 s, musicrec_cli/__main__.py).
Writes benchmarks/results/preprocess.json with medians and the musicrec/duckdb ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

from musicrec_cli.__main__ import ALLOCATOR_ENV

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

DUCKDB = """
import duckdb, sys
con = duckdb.connect()
con.execute("SET threads TO 2")
if len(sys.argv) > 3:  # where to spill when the groups outgrow memory
    con.execute(f"SET temp_directory = '{sys.argv[3]}'")
con.execute(f'''COPY (
  SELECT user_id, track_uri, count(*) AS play_count, sum(ms_played::BIGINT) AS total_ms,
         min(played_at) AS first_ts, max(played_at) AS last_ts,
         sum(skipped::INTEGER) AS skip_count
  FROM read_parquet('{sys.argv[1]}/*.parquet') WHERE ms_played >= 30000
  GROUP BY user_id, track_uri) TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION zstd)''')
"""

DUCKDB_CANONICAL = r"""
import duckdb, sys
con = duckdb.connect()
con.execute("SET threads TO 2")
if len(sys.argv) > 3:
    con.execute(f"SET temp_directory = '{sys.argv[3]}'")
con.execute(r'''CREATE MACRO fold(s) AS regexp_replace(regexp_replace(lower(nfc_normalize(
    regexp_replace(trim(s), '\s+', ' ', 'g'))),
    '\s*[\(\[]\s*(feat\.?|ft\.?|featuring)\s[^\)\]]*[\)\]]?', '', 'g'),
    '\s+(feat\.?|ft\.?|featuring)\s.*$', '')''')
con.execute(r'''CREATE MACRO squash(s) AS trim(regexp_replace(replace(
    regexp_replace(strip_accents(s), '["''`]', '', 'g'), '&', ' and '),
    '[^[:alnum:]]+', ' ', 'g'))''')
src = f"read_parquet('{sys.argv[1]}/*.parquet')"
con.execute(f'''COPY (
  WITH artists AS (
    SELECT artist_name, regexp_replace(squash(fold(artist_name)), '^(the )+', '') AS artist_key
    FROM (SELECT DISTINCT artist_name FROM {src})),
  titles AS (
    SELECT track_name, squash(fold(track_name)) AS title_key
    FROM (SELECT DISTINCT track_name FROM {src})),
  spellings AS (
    SELECT artist_name, track_name,
           dense_rank() OVER (ORDER BY artist_key, title_key)::INTEGER AS track_idx
    FROM (SELECT DISTINCT artist_name, track_name FROM {src})
    JOIN artists USING (artist_name) JOIN titles USING (track_name)),
  plays AS (
    SELECT user_id, track_idx, played_at,
           max(ms_played) AS ms_played, arg_max(skipped, ms_played) AS skipped
    FROM {src} JOIN spellings USING (artist_name, track_name)
    WHERE ms_played >= 30000
    GROUP BY user_id, track_idx, played_at)
  SELECT user_id, track_idx, count(*) AS play_count, sum(ms_played::BIGINT) AS total_ms,
         min(played_at) AS first_ts, max(played_at) AS last_ts,
         sum(skipped::INTEGER) AS skip_count
  FROM plays GROUP BY user_id, track_idx) TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION zstd)''')
"""

POLARS = """
import polars as pl, sys
(pl.scan_parquet(f"{sys.argv[1]}/*.parquet").filter(pl.col("ms_played") >= 30000)
 .group_by("user_id", "track_uri").agg(
    pl.len().alias("play_count"), pl.col("ms_played").cast(pl.Int64).sum().alias("total_ms"),
    pl.col("played_at").min().alias("first_ts"), pl.col("played_at").max().alias("last_ts"),
    pl.col("skipped").sum().alias("skip_count"))
 .sink_parquet(sys.argv[2], engine="streaming"))
"""


def timed(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB), from /usr/bin/time -v."""
    out = subprocess.run(
        ["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", out.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    cpu = [re.search(rf"{k} time \(seconds\): ([\d.]+)", out.stderr) for k in ("User", "System")]
    if wall is None or rss is None or None in cpu:
        raise RuntimeError(out.stderr[-2000:])
    h, m, s = (float(g) if g else 0.0 for g in wall.groups())
    return {
        "seconds": h * 3600 + m * 60 + s,
        "cpu_seconds": sum(float(c.group(1)) for c in cpu if c is not None),
        "peak_rss_mb": int(rss.group(1)) / 1024,
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}


def bench_scale(
    events: int, work: Path, repeats: int, env: dict[str, str], only: list[str]
) -> dict[str, object]:
    raw = work / f"raw_{events}"
    musicrec = [str(BIN / "musicrec")]
    if not (raw / "listens").is_dir():
        subprocess.run(
            [*musicrec, "--set", f"generate.users={max(3000, events // 300)}",
             "--set", f"generate.tracks={max(4000, events // 100)}",
             "generate", "--out", str(raw), "--events", str(events)],
            check=True, env=env, capture_output=True,
        )  # fmt: skip
    listens = raw / "listens"
    size = sum(f.stat().st_size for f in listens.glob("*.parquet"))
    common = ["--set", f"paths.raw={listens}", "--set", f"paths.catalog={raw / 'tracks.parquet'}"]
    tools = {
        "duckdb": [str(BIN / "python"), "-c", DUCKDB, str(listens), str(work / "duck.parquet")],
        "duckdb_canonical": [
            str(BIN / "python"), "-c", DUCKDB_CANONICAL, str(listens), str(work / "canon.parquet"),
        ],
        "polars": [str(BIN / "python"), "-c", POLARS, str(listens), str(work / "pl.parquet")],
        "musicrec": [*musicrec, *common, "--set", f"paths.artifacts={work / 'a1'}", "preprocess"],
        "musicrec_4_buckets": [
            *musicrec, *common, "--set", "preprocess.buckets=4",
            "--set", f"paths.artifacts={work / 'a4'}", "preprocess",
        ],
        "musicrec_polars_allocator": [
            *musicrec, *common, "--set", f"paths.artifacts={work / 'a5'}", "preprocess",
        ],
    }  # fmt: skip
    # musicrec with Polars' allocator setting: a user's setting wins over musicrec's
    tool_env = {"musicrec_polars_allocator": {ALLOCATOR_ENV: "dirty_decay_ms:500"}}
    tools = {k: v for k, v in tools.items() if not only or k in only}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in tools}
    load_at_start = os.getloadavg()
    for _ in range(repeats):  # interleaved, so that machine noise hits every tool alike
        for name, cmd in tools.items():
            runs[name].append(timed(cmd, env | tool_env.get(name, {})))
    result = {name: median_of(r) for name, r in runs.items()}
    for name, r in runs.items():  # every run, so the spread is on record, not only the median
        result[name] |= {
            "all_seconds": [x["seconds"] for x in r],
            "cpu_us_per_event": round(result[name]["cpu_seconds"] / events * 1e6, 3),
        }
    report = json.loads((work / "a1" / "01_preprocess" / "quality_report.json").read_text())
    ratios = {
        f"ratio_musicrec_vs_{ref}": round(result["musicrec"]["seconds"] / result[ref]["seconds"], 2)
        for ref in ("duckdb", "duckdb_canonical", "musicrec_polars_allocator")
        if ref in result and "musicrec" in result
    }
    if "duckdb_canonical" in result and "musicrec" in result:
        ratios["cpu_ratio_musicrec_vs_duckdb_canonical"] = round(
            result["musicrec"]["cpu_seconds"] / result["duckdb_canonical"]["cpu_seconds"], 2
        )
    canonical = {}
    if "duckdb_canonical" in result:  # its output, to show it is the same aggregation as ours
        out = pl.scan_parquet(work / "canon.parquet")
        n, plays = out.select(pl.len(), pl.col("play_count").sum()).collect().row(0)
        canonical = {"duckdb_canonical_pairs": n, "duckdb_canonical_plays": plays}
    return {
        "events": events,
        "raw_parquet_mb": round(size / 2**20, 1),
        "repeats": repeats,
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "median": result,
        **ratios,
        "pairs": report["output"]["pairs"],
        "plays": report["output"]["plays"],
        # the last musicrec run's phases (quality_report.json): where its CPU goes at this size
        "musicrec_last_run_cpu_seconds_by_phase": report.get("cpu_seconds", {}),
        "musicrec_last_run_peak_rss_mib_by_phase": report.get("peak_rss_mib", {}),
        **canonical,
    }


DOC = ROOT / "docs" / "preprocess.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def markdown(results: list[dict]) -> str:
    """The measured table for docs/preprocess.md."""
    rows = [
        "| events | raw Parquet | pairs | DuckDB raw keys s / MiB | DuckDB canonical s / MiB "
        "| Polars raw keys s / MiB | musicrec s / MiB | musicrec 4 buckets s / MiB "
        "| musicrec / DuckDB raw keys | musicrec / DuckDB canonical |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    tools = ("duckdb", "duckdb_canonical", "polars", "musicrec", "musicrec_4_buckets")
    for r in results:
        m = r["median"]
        cells = [
            f"{m[k]['seconds']:.2f} / {m[k]['peak_rss_mb']:.0f}" if k in m else "-" for k in tools
        ]
        ratios = [
            f"{r[k]}x" if k in r else "-"
            for k in ("ratio_musicrec_vs_duckdb", "ratio_musicrec_vs_duckdb_canonical")
        ]
        rows.append(
            f"| {r['events']:,} | {r['raw_parquet_mb']} MiB | {r['pairs']:,} | "
            + " | ".join(cells + ratios)
            + " |"
        )
    return "\n".join(rows)


def write_doc(results: list[dict]) -> None:
    text = DOC.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        DOC.write_text(f"{head}{START}\n{markdown(results)}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("events", type=int, nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--tools", nargs="*", default=[], help="subset, e.g. duckdb musicrec")
    parser.add_argument("--merge", action="store_true", help="add to the existing results")
    args = parser.parse_args()
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "POLARS_MAX_THREADS": "2"}
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_preprocess_"))
    results = []
    for events in args.events:
        results.append(bench_scale(events, work, args.repeats, env, args.tools))
        print(json.dumps(results[-1]), flush=True)
    out = ROOT / "benchmarks" / "results" / "preprocess.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = json.loads(out.read_text()) if out.is_file() else {}  # earlier runs under their keys
    if args.merge and "scales" in kept:
        old = [r for r in kept["scales"] if r["events"] not in args.events]
        results = sorted(old + results, key=lambda r: r["events"])
    kept.pop("scales", None)
    kept.pop("note", None)  # it described the scales replaced here
    out.write_text(json.dumps({"scales": results, **kept}, indent=2) + "\n")
    write_doc(results)
    print(f"wrote {out} and the table in {DOC}")


if __name__ == "__main__":
    main()
