"""The stage commands: `preprocess` ... `evaluate`, each options -> session -> `runs.run_<stage>`.

Options that change settings become config overrides blamed on the option (`Session.with_option`),
so a bad value names what the user typed; `--engine` and `--spark-master` are shared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from musicrec_cli.commands.plan import show_plan
from musicrec_cli.commands.runs import (
    run_evaluate,
    run_features,
    run_predict,
    run_preprocess,
    run_split,
    run_train,
)
from musicrec_cli.config import ENGINES, SPARK_STAGES, SPLIT_STRATEGIES
from musicrec_cli.config_load import tuned_overrides
from musicrec_cli.session import Session, session
from stages.preprocess.detect import AUTO
from stages.preprocess.formats import KNOWN_FORMATS

Engine = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help='"polars" (this machine) or "spark" (Apache Spark with the spark.* settings; '
        f"{', '.join(SPARK_STAGES)} only). Default: engine in the config.",
    ),
]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print this stage's plan (peak memory, disk, batches, time; `musicrec plan`) "
        "and exit without running it or writing anything.",
    ),
]
SparkMaster = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        metavar="URL",
        help="Spark master for --engine spark, e.g. spark://host:7077 or yarn "
        "(default: spark.master in the config, local[*]).",
    ),
]


def with_engine(s: Session, engine: str | None, master: str | None) -> Session:
    """The session with --engine and --spark-master as config overrides."""
    if engine is not None and engine not in ENGINES:
        msg = f"{engine!r} is not an engine; expected one of {', '.join(ENGINES)}."
        raise typer.BadParameter(msg, param_hint="--engine")
    extra = [f'engine="{engine}"'] * (engine is not None)
    extra += [f'spark.master="{master}"'] * (master is not None)
    return s.with_overrides(*extra)


def preprocess(
    ctx: typer.Context,
    input_path: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="Your export: a file, folder, glob or zip archive (instead of [paths].raw). "
            "Its format is recognised unless --format is given; the built-in catalog is not "
            "joined unless --catalog names one.",
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help=f"Format of the raw log: auto or one of {', '.join(KNOWN_FORMATS)} "
            "(default: auto with --input, else preprocess.format in the config).",
        ),
    ] = None,
    catalog: Annotated[
        str | None,
        typer.Option("--catalog", help="A track catalog to join (instead of [paths].catalog)."),
    ] = None,
    engine: Engine = None,
    spark_master: SparkMaster = None,
    dry_run: DryRun = False,
) -> None:
    """Clean the raw log and encode ids: reads [paths].raw (or --input), writes 01_preprocess/.

    Outputs: plays.parquet (clean plays), events.parquet (one row per user-track pair),
    items.parquet, users.parquet, id_map_tracks.parquet, id_map_artists.parquet,
    interaction_matrix.npz, quality_report.json (rows read and kept per input file, the user
    ids assigned, the files ignored and why).
    """
    s = with_engine(session(ctx), engine, spark_master)
    if fmt is not None and fmt not in (AUTO, *KNOWN_FORMATS):
        msg = f"{fmt!r} is not a known format; expected auto or one of {', '.join(KNOWN_FORMATS)}."
        raise typer.BadParameter(msg, param_hint="--format")
    extra = []
    if input_path is not None:
        quoted = [json.dumps(v) for v in (input_path, catalog or "")]  # TOML strings
        extra += [f"paths.raw={quoted[0]}", f"paths.catalog={quoted[1]}"]
        fmt = fmt or AUTO
    elif catalog is not None:
        extra.append(f"paths.catalog={json.dumps(catalog)}")
    if fmt is not None:
        extra.append(f"preprocess.format={fmt}")
    for override in extra:  # blamed on the option, not on --set
        s = s.with_option(override, f"--input/--catalog/--format ({override})")
    if dry_run:
        show_plan(s, ("preprocess",))
        return
    run_preprocess(s)


def split(
    ctx: typer.Context,
    strategy: Annotated[
        str | None,
        typer.Option(
            "--strategy",
            help=f"Protocol, one of {', '.join(SPLIT_STRATEGIES)} (default: split.strategy in "
            "the config; auto = temporal, or user-random for plays without timestamps).",
        ),
    ] = None,
    engine: Engine = None,
    spark_master: SparkMaster = None,
    dry_run: DryRun = False,
) -> None:
    """Split plays into train and test by a protocol: reads 01_preprocess/, writes 02_split/.

    temporal: one cut-off in time; user-temporal: each user's last plays; user-random: a seeded
    share of each user's tracks; held-out-users: a seeded share of users, part of whose tracks
    are test (docs/evaluation.md). Outputs: train.parquet, test.parquet (discovery: test pairs
    the user never played in train; known users and tracks only), test_replay.parquet (with
    the re-listens), train_matrix.npz, test_matrix.npz.
    """
    s = with_engine(session(ctx), engine, spark_master)
    if strategy is not None:
        if strategy not in SPLIT_STRATEGIES:
            msg = f"{strategy!r} is not a strategy; expected one of {', '.join(SPLIT_STRATEGIES)}."
            raise typer.BadParameter(msg, param_hint="--strategy")
        s = s.with_option(f"split.strategy={strategy}", f"--strategy {strategy}")
    if dry_run:
        show_plan(s, ("split",))
        return
    run_split(s)


def features(
    ctx: typer.Context,
    engine: Engine = None,
    spark_master: SparkMaster = None,
    dry_run: DryRun = False,
) -> None:
    """Weight interactions and describe users and tracks: reads 02_split/, writes 03_features/.

    Outputs: features_train.parquet (with confidence weight), features_test.parquet,
    item_features.parquet, user_features.parquet.
    """
    s = with_engine(session(ctx), engine, spark_master)
    if dry_run:
        show_plan(s, ("features",))
        return
    run_features(s)


def train(
    ctx: typer.Context,
    tuned: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="A <model>_best.toml from `musicrec tune`: its [train] settings override the "
            "config (like --set).",
        ),
    ] = None,
    engine: Engine = None,
    spark_master: SparkMaster = None,
    dry_run: DryRun = False,
) -> None:
    """Fit the models in [train].models: reads 03_features/, writes 04_train/.

    Outputs: <model>.npz per model, models.json (settings), metrics.json (training times);
    04_train/tuning/ from `musicrec tune` is kept.
    """
    s = with_engine(session(ctx), engine, spark_master)
    if tuned is not None:
        for override in s.guard(lambda: tuned_overrides(tuned)):
            s = s.with_option(override, f"--tuned {tuned} ({override})")
    if dry_run:
        show_plan(s, ("train",))
        return
    run_train(s)


def predict(
    ctx: typer.Context,
    users: Annotated[
        Path | None,
        typer.Option(
            "--users",
            exists=True,
            dir_okay=False,
            readable=True,
            help="Only these users: one user_id per line, or a .parquet/.csv with a user_id "
            "column. Unknown ids are reported and skipped.",
        ),
    ] = None,
    engine: Engine = None,
    spark_master: SparkMaster = None,
    dry_run: DryRun = False,
) -> None:
    """Top-N unheard tracks per user and model: reads 04_train/, writes 05_predict/.

    Outputs: predictions.parquet (user_id, user_idx, rank, track_id, track_idx, track_group_id,
    score, model, generated_at), with re-ranked lists as model "<name>+rerank", and
    similar_tracks.parquet (top-K neighbours per track by item-factor cosine). The folder is
    replaced only when complete, so a failed run leaves the previous predictions in place.
    """
    if dry_run:
        show_plan(session(ctx), ("predict",))
        return
    run_predict(with_engine(session(ctx), engine, spark_master), users=users)


def evaluate(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print metrics.json to stdout (the tables go to stderr).")
    ] = False,
    k: Annotated[
        int | None, typer.Option("--k", help="Cut-off shown in the table (default 10).")
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="Model every other is compared with (default: evaluate.baseline, popularity).",
        ),
    ] = None,
    metric_variants: Annotated[
        bool,
        typer.Option(
            "--metric-variants",
            help="Also compute each ranking metric as implicit, LensKit, RecBole, Spark and "
            "trec_eval define it (metrics.json metric_variants; docs/evaluation.md).",
        ),
    ] = False,
    dry_run: DryRun = False,
) -> None:
    """Score predictions against the test set: reads 05_predict/, 02_split/, writes 06_evaluate/.

    Outputs: metrics.json (per model at each K: precision, recall, NDCG, MAP, MRR, hit rate,
    coverage, artist diversity, audio distance, novelty, popularity; lift over the baseline;
    under "significance", every model vs the baseline and vs the best: paired Wilcoxon p-values,
    Holm-adjusted, and bootstrap 95% intervals of the mean difference) and
    per_user_metrics.parquet. Definitions: docs/evaluation.md.
    """
    s = session(ctx)
    if baseline is not None:
        s = s.with_overrides(f"evaluate.baseline={json.dumps(baseline)}")
    if metric_variants:
        s = s.with_overrides("evaluate.metric_variants=true")
    if dry_run:
        show_plan(s, ("evaluate",), as_json=as_json)
        return
    run_evaluate(s, as_json=as_json, k=k)
