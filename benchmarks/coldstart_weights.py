"""Choose the hybrid's weights for listeners with few and with more tracks, on held-out users.

Usage: python benchmarks/coldstart_weights.py --data NAME TUNE SCORED [--data ...]
                                              [--k 10] [--step 0.1] [--out RESULTS.json]

For each dataset NAME, TUNE is an artifacts folder with a held-out-users split (02_split),
03_features and a trained 04_train (popularity, content, als, rp3beta, hybrid, and whatever
else was trained); SCORED is the folder `musicrec evaluate` reports on (another [split].seed).
The held-out users of SCORED are left out here, so the weights are chosen on other users than
those they are judged on. Each remaining held-out user with at least 10 known tracks is given
a seeded sample of n of them (n in COUNTS, the same sample for every model), and every single
model that scores new listeners is scored next to the hybrid with every
[als, content, popularity, rp3beta] weight set of a `step` grid summing to 1, as the hybrid
applies it (`effective_weights`: without audio features content's share is dropped, so only
sets without content are scored there).

The weights depend on the catalogue (stages.models.hybrid.catalogue_weights): datasets with
audio features choose `few` and `warm`, those without `few_no_audio` and `warm_no_audio`.
Per kind and group (few: 0 < n < hybrid_min_tracks; warm: n >= hybrid_min_tracks), ratio =
hybrid NDCG@K / the best single model's NDCG@K at each (dataset, n); the best single model is
the best of `--against` (default: every single model scored, the comparison `evaluate`'s
cold_start shows). The sets whose smallest ratio is largest win (ties: the larger mean ratio),
so the choice is the one with the widest margin at its worst count. Writes the singles, every
set's NDCG and the choices to RESULTS.json (default benchmarks/results/coldstart_weights.json).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from musicrec_cli import artifacts as art
from musicrec_cli.artifacts import require_stage, scan, stage_dir
from musicrec_cli.config import TrainConfig
from musicrec_cli.runner.train import load_models
from stages.evaluate import coldstart
from stages.interactions import build_matrix
from stages.models.hybrid import COMPONENTS, HybridModel, blend, effective_weights
from stages.schema import MODEL, TRACK_IDX, USER_IDX, WEIGHT

COUNTS = (0, 1, 2, 3, 4, 5, 7, 10)
Weights = tuple[float, ...]


def grid(step: float = 0.1, *, has_audio: bool = True) -> list[Weights]:
    """Every (als, content, popularity, rp3beta) on a `step` grid summing to 1 (no content
    share without audio: those sets would rank as the one without it)."""
    n = round(1 / step)
    return [
        tuple(round(v * step, 4) for v in (*w, n - sum(w)))
        for w in itertools.product(range(n + 1), repeat=len(COMPONENTS) - 1)
        if sum(w) <= n and (has_audio or w[1] == 0)
    ]


def label(weights: Weights) -> str:
    """Model name of one grid point, e.g. 'hybrid 0.3/0.4/0.3/0'."""
    return "hybrid " + "/".join(f"{w:.2f}".rstrip("0").rstrip(".") for w in weights)


def grid_scorers(hybrid: HybridModel, sets: list[Weights]) -> dict[str, coldstart.Scorer]:
    """One scorer per weight set; the components are scored once per history sample.

    `known_track_runs` calls every scorer with the same matrix object for one n, so the
    normalised parts of the last matrix seen are kept and only the blend is redone.
    """
    cache: dict[str, Any] = {}
    has_audio = bool(hybrid.content.has_features.any())

    def parts(rows: sp.csr_matrix) -> dict[str, npt.NDArray[np.float32]]:
        if cache.get("rows") is not rows:
            cache["rows"] = rows
            cache["parts"] = hybrid.parts(rows, user_factors=hybrid.als.fold_in(rows))
        found: dict[str, npt.NDArray[np.float32]] = cache["parts"]
        return found

    def scorer(weights: npt.NDArray[np.float32]) -> coldstart.Scorer:
        return lambda rows: blend(parts(rows), np.repeat(weights[None, :], rows.shape[0], axis=0))

    return {label(w): scorer(effective_weights(w, has_audio=has_audio)) for w in sets}


def held_out_users(root: Path) -> npt.NDArray[np.int64]:
    """Sorted user_idx of the users with test tracks in `root`'s split."""
    test = scan(root, "split", art.TEST)
    return np.asarray(test.select(USER_IDX).unique().sort(USER_IDX).collect()[USER_IDX], np.int64)


def score_dataset(tune: Path, scored: Path, *, step: float, k: int) -> dict[str, Any]:
    """NDCG@k per known-track count of the single models and of every grid set, on TUNE's users."""
    same = [(stage_dir(p, "preprocess") / art.USERS).read_bytes() for p in (tune, scored)]
    if same[0] != same[1]:
        msg = f"{tune} and {scored} come from different preprocess runs: user ids differ"
        raise SystemExit(msg)
    shape = require_stage(tune, "split")["summary"]
    known = pl.read_parquet(
        stage_dir(tune, "features") / art.FEATURES_TRAIN, columns=[USER_IDX, TRACK_IDX, WEIGHT]
    )
    history = build_matrix(
        known, value=WEIGHT, n_users=shape["n_users"], n_tracks=shape["n_tracks"]
    )
    users = np.setdiff1d(held_out_users(tune), held_out_users(scored))
    models = load_models(tune)
    hybrid = models.pop("hybrid")
    assert isinstance(hybrid, HybridModel)
    has_audio = bool(hybrid.content.has_features.any())
    sets = grid(step, has_audio=has_audio)
    scorers = coldstart.history_scorers(models) | grid_scorers(hybrid, sets)
    runs = coldstart.known_track_runs(
        history, users, scan(tune, "split", art.TEST), scorers, ks=(k,), counts=COUNTS, seed=42
    )
    metric = f"ndcg@{k}"
    by_known: dict[str, Any] = {}
    for n in COUNTS:
        rows = runs.filter(pl.col(coldstart.KNOWN) == n)
        values = dict(zip(rows[MODEL], rows[metric], strict=True))
        by_known[str(n)] = {
            "n_users": int(rows["n_users"].max() or 0),  # type: ignore[arg-type]
            "singles": {m: v for m, v in values.items() if not m.startswith("hybrid")},
            "grid": {m: v for m, v in values.items() if m.startswith("hybrid")},
        }
    return {
        "tune": str(tune),
        "scored": str(scored),
        "n_users_left_out": int(len(held_out_users(tune)) - len(users)),
        "has_audio": has_audio,
        "min_tracks": hybrid.min_tracks,
        "sets": [list(w) for w in sets],
        "by_known": by_known,
    }


def _best(singles: dict[str, float], against: tuple[str, ...] | None) -> tuple[str, float]:
    """(name, NDCG) of the best single model, among `against` (all if None)."""
    found = {m: v for m, v in singles.items() if against is None or m in against}
    return max(found.items(), key=lambda kv: kv[1])


def choose(
    datasets: dict[str, Any], counts: list[int], against: tuple[str, ...] | None
) -> dict[str, Any]:
    """The set whose worst ratio to the best single model over `counts` is largest."""
    sets = [tuple(w) for w in next(iter(datasets.values()))["sets"]]
    ratios = {
        label(w): [
            data["by_known"][str(n)]["grid"][label(w)]
            / _best(data["by_known"][str(n)]["singles"], against)[1]
            for data in datasets.values()
            for n in counts
        ]
        for w in sets
    }
    ranked = sorted(ratios, key=lambda m: (min(ratios[m]), float(np.mean(ratios[m]))), reverse=True)
    best = ranked[0]
    table = {
        name: {
            str(n): {
                "hybrid": data["by_known"][str(n)]["grid"][best],
                "best_single": _best(data["by_known"][str(n)]["singles"], against),
            }
            for n in counts
        }
        for name, data in datasets.items()
    }
    return {
        "counts": counts,
        "weights": list(next(w for w in sets if label(w) == best)),
        "min_ratio": min(ratios[best]),
        "mean_ratio": float(np.mean(ratios[best])),
        "runners_up": {m: [min(ratios[m]), float(np.mean(ratios[m]))] for m in ranked[1:6]},
        "vs_best": table,
    }


def main() -> None:
    """Score the grid on every dataset and choose each kind's few and warm weights."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", nargs=3, action="append", required=True, metavar=("NAME", "TUNE", "SCORED")
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--against", default="", help="comma-separated; default every single")
    parser.add_argument("--step", type=float, default=0.1)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/coldstart_weights.json")
    )
    args = parser.parse_args()
    start, cpu_start = time.perf_counter(), time.process_time()
    datasets = {
        name: score_dataset(Path(tune), Path(scored), step=args.step, k=args.k)
        for name, tune, scored in args.data
    }
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    min_tracks = {d["min_tracks"] for d in datasets.values()}
    assert len(min_tracks) == 1, "the datasets' hybrids disagree on hybrid_min_tracks"
    cut = min_tracks.pop()
    defaults = TrainConfig()
    against = tuple(args.against.split(",")) if args.against else None
    choice: dict[str, Any] = {}
    for has_audio, suffix in ((True, ""), (False, "_no_audio")):
        kind = {n: d for n, d in datasets.items() if d["has_audio"] is has_audio}
        if kind:
            choice["few" + suffix] = choose(kind, [n for n in COUNTS if 0 < n < cut], against)
            choice["warm" + suffix] = choose(kind, [n for n in COUNTS if n >= cut], against)
    result: dict[str, Any] = {
        "k": args.k,
        "step": args.step,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "load_average": os.getloadavg(),
        "against": list(against) if against else "every single model",
        "defaults_before": {
            h: getattr(defaults, f"hybrid_{h}")
            for h in ("few", "warm", "few_no_audio", "warm_no_audio")
        },
        "choice": choice,
        "datasets": datasets,
    }
    for group, found in choice.items():
        print(group, found["weights"], "min ratio", round(found["min_ratio"], 3))
        for name, rows in found["vs_best"].items():
            for n, row in rows.items():
                print(f"  {name} n={n}: hybrid {row['hybrid']:.4f} vs {row['best_single']}")
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
