"""kNN's NDCG@10 for each choice of the matrix it is fitted on and the one it is scored on.

    .venv/bin/python benchmarks/knn_matrix.py [ARTIFACTS]   (default: artifacts, after `make all`)

Copies 01-03 of ARTIFACTS to a temporary folder and, for fit in {weights, counts} x score in
{weights, counts}, runs train (knn only), predict (no re-ranking) and evaluate there through
the runners, swapping the matrices in by monkeypatching. weights = 03_features `weight`
(log1p(plays) x recency), counts = 02_split play counts. Prints a table and writes
benchmarks/results/knn_matrix.json.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

import scipy.sparse as sp

from musicrec_cli import artifacts as art
from musicrec_cli.config_load import load_config
from musicrec_cli.runner import predict as predict_runner
from musicrec_cli.runner.evaluate import run_evaluate
from musicrec_cli.runner.predict import run_predict
from musicrec_cli.runner.train import load_train_data, run_train
from stages.models import registry
from stages.models.knn import fit_knn

RESULTS = Path(__file__).parent / "results" / "knn_matrix.json"


def main(source: Path) -> None:
    """Run the four variants on a copy of `source`'s 01-03 and report NDCG@10 and recall@10."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for stage in ("01_preprocess", "02_split", "03_features"):
            shutil.copytree(source / stage, root / stage)
        cfg = load_config(
            overrides=[
                f'paths.artifacts="{root}"',
                'train.models=["knn"]',
                "predict.rerank_models=[]",
                "predict.similar_k=0",
            ]
        )
        weights = load_train_data(root).weights
        counts = art.load_matrix(root, "split", art.TRAIN_MATRIX)
        matrices = {"weights": weights, "counts": counts}
        original_spec, original_load = registry.MODELS["knn"], predict_runner.art.load_matrix
        for fit_on in ("weights", "counts"):
            for score_on in ("weights", "counts"):
                registry.MODELS["knn"] = dataclasses.replace(
                    original_spec,
                    fit=lambda _d, p, _f, m=matrices[fit_on]: fit_knn(
                        m, similarity=p.similarity, neighbours=p.neighbours
                    ),
                )

                def load(r: Path, stage: str, name: str, s: str = score_on) -> sp.csr_matrix:
                    if (stage, name) == ("split", art.TRAIN_MATRIX):
                        return matrices[s]
                    return original_load(r, stage, name)

                predict_runner.art.load_matrix = load  # type: ignore[assignment]
                try:
                    run_train(cfg)
                    run_predict(cfg)
                    _, _, metrics = run_evaluate(cfg)
                finally:
                    registry.MODELS["knn"] = original_spec
                    predict_runner.art.load_matrix = original_load  # type: ignore[assignment]
                knn = metrics["models"]["knn"]
                rows.append(
                    {
                        "fit_on": fit_on,
                        "score_on": score_on,
                        "ndcg@10": round(knn["ndcg@10"], 4),
                        "recall@10": round(knn["recall@10"], 4),
                        "users": metrics["n_users_evaluated"],
                    }
                )
                print(rows[-1], flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"source": str(source), "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("artifacts"))
