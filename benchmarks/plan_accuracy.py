"""How close `musicrec plan` comes to what the stages measure: default data, 10M and 800M events.

    python benchmarks/plan_accuracy.py                      # runs the default data, reads the rest
    python benchmarks/plan_accuracy.py --table              # the README table from the JSON

Default data (`make all`'s settings, 400K events): every stage runs as its own process (sampled
peak RSS of the process tree, bytes of its folder, wall time; benchmarks/full_scale.py's
measurement); just before each stage, `musicrec plan --json --stage <stage>` is asked, in its
own process, what the stage will need (so it sees the upstream manifests, as `--dry-run` would).
10M and 800M: the recorded runs of benchmarks/full_scale.py (`--ten` and `--full`, with their
settings), planned by `stages.plan` from the counts those runs recorded. Each stage is also
planned from the raw log alone (events, users, tracks: what a plan knows before preprocess).
Writes benchmarks/results/plan_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from full_scale import _measured, _size

from musicrec_cli.config_load import load_config
from musicrec_cli.planning import recorded_counts, settings_of
from stages import plan

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
GIB = 2**30


def _cli(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "musicrec_cli", "--config", str(config), "-q", *args]


def _planned(p: dict[str, Any]) -> dict[str, float]:
    """A stage's plan (`StagePlan` as a dict, or one stage of `plan --json`) in measured units."""
    return {
        "peak_gib": round(p["peak_bytes"] / GIB, 3),
        "disk_bytes": p["disk_bytes"],
        "wall_seconds": p["seconds"],
    }


def _compare(planned: dict[str, float], measured: dict[str, float]) -> dict[str, float]:
    return {
        f"ratio_{key}": round(planned[key] / measured[key], 3)
        for key in ("peak_gib", "disk_bytes", "wall_seconds")
        if measured.get(key)
    }


def run_default(work: Path) -> dict[str, Any]:
    """make all's settings on its data, in `work`: plan, then run, stage by stage."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config = work / "musicrec.toml"
    config.write_text(
        f'[paths]\nraw = "{work / "raw" / "listens"}"\n'
        f'catalog = "{work / "raw" / "tracks.parquet"}"\n'
        f'artifacts = "{work / "artifacts"}"\n'
    )
    subprocess.run(_cli(config, "generate", "--out", str(work / "raw")), check=True, cwd=ROOT)
    before = subprocess.run(
        _cli(config, "plan", "--json"), check=True, cwd=ROOT, capture_output=True, text=True
    )
    from_raw = {s["stage"]: s for s in json.loads(before.stdout)["stages"]}
    stages: dict[str, Any] = {}
    for stage in plan.STAGES:
        asked = subprocess.run(
            _cli(config, "plan", "--json", "--stage", stage),
            check=True,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        planned = json.loads(asked.stdout)["stages"][0]
        measured = _measured(_cli(config, stage), stage)
        folder = work / "artifacts" / f"{plan.STAGES.index(stage) + 1:02d}_{stage}"
        measured = {
            "peak_gib": measured["peak_rss_gib"],
            "disk_bytes": _size(folder),
            "wall_seconds": measured["wall_seconds"],
        }
        row = {
            "planned": _planned(planned),
            "planned_from_raw": _planned(from_raw[stage]),
            "measured": measured,
        }
        stages[stage] = row | _compare(row["planned"], measured)
    return {"source": "this run, make all's settings (musicrec.toml defaults)", "stages": stages}


def recorded(path: Path, extra: list[str]) -> dict[str, Any]:
    """A full_scale.py results file planned from the counts it recorded."""
    run = json.loads(path.read_text())
    st = run["stages"]
    pre, spl = st["preprocess"], st["split"]["summary"]
    raw = {"raw_events": run["sizes"]["events"], "raw_bytes": st["generate"]["bytes_on_disk"]}
    counts = recorded_counts(
        pre["summary"], spl, spellings=pre["rows_out"]["id_map_tracks.parquet"]
    )
    # full_scale.py's config sets predict.n = 100; its --set values follow
    overrides = ["predict.n=100", *run.get("settings", []), *extra]
    settings = settings_of(load_config(None, tuple(overrides)))
    sizes = plan.estimate_sizes(**raw, known=counts)
    guessed = plan.estimate_sizes(**raw, users=run["sizes"]["users"], tracks=run["sizes"]["tracks"])
    stages: dict[str, Any] = {}
    for stage in plan.STAGES:
        m = st[stage]
        measured = {
            "peak_gib": m["peak_rss_gib"],
            "disk_bytes": m["bytes_on_disk"],
            "wall_seconds": m["wall_seconds"],
        }
        row = {
            "planned": _planned(asdict(plan.plan_stage(stage, sizes, settings))),
            "planned_from_raw": _planned(asdict(plan.plan_stage(stage, guessed, settings))),
            "measured": measured,
        }
        stages[stage] = row | _compare(row["planned"], measured)
    return {"source": f"{path.resolve().relative_to(ROOT)}, settings {overrides}", "stages": stages}


def table(results: dict[str, Any]) -> str:
    """Markdown: per data set and stage, planned / measured peak memory and disk."""
    lines = [
        "| data | stage | peak memory: planned / measured (ratio) | disk: planned / measured "
        "(ratio) | time: planned / measured |",
        "|---|---|---:|---:|---:|",
    ]
    for name, data in results["data_sets"].items():
        for stage, row in data["stages"].items():
            p, m = row["planned"], row["measured"]
            lines.append(
                f"| {name} | {stage} | {plan.gib(p['peak_gib'] * GIB)} / "
                f"{plan.gib(m['peak_gib'] * GIB)} ({row['ratio_peak_gib']:.2f}) | "
                f"{plan.gib(p['disk_bytes'])} / {plan.gib(m['disk_bytes'])} "
                f"({row['ratio_disk_bytes']:.2f}) | {plan.duration(p['wall_seconds'])} / "
                f"{plan.duration(m['wall_seconds'])} |"
            )
    return "\n".join(lines)


def main() -> None:
    """Measure the default data, plan the recorded runs, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "plan")
    parser.add_argument("--ten", type=Path, default=RESULTS / "plan_10m_run.json")
    parser.add_argument("--full", type=Path, default=RESULTS / "full_scale.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "plan_accuracy.json")
    parser.add_argument("--table", action="store_true", help="print the README table")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.out.read_text())))
        return
    load = os.getloadavg()
    results = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_average_at_start": [round(x, 2) for x in load],
        "data_sets": {
            "default (400K)": run_default(args.work),
            "10M": recorded(args.ten, []),
            "800M": recorded(args.full, []),
        },
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
