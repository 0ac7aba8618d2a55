"""The pipeline commands: `generate`, one command per stage, `all` and the Makefile's stamps.

Each stage command is a thin wrapper over `run_<stage>(session, ...)`, which `all` calls too
(with keyword defaults), so a stage runs the same way alone and inside `all`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from musicrec_cli import console
from musicrec_cli.artifacts import STAGES
from musicrec_cli.codehash import source_fingerprint
from musicrec_cli.config import ENGINES, SPARK_STAGES, SPLIT_STRATEGIES, table_dict
from musicrec_cli.config_load import tuned_overrides
from musicrec_cli.report import tables as report
from musicrec_cli.runner import evaluate as evaluate_run
from musicrec_cli.runner import features as features_run
from musicrec_cli.runner import generate as generate_run
from musicrec_cli.runner import is_up_to_date
from musicrec_cli.runner import predict as predict_run
from musicrec_cli.runner import preprocess as preprocess_run
from musicrec_cli.runner import split as split_run
from musicrec_cli.runner import train as train_run
from musicrec_cli.session import Session, session
from musicrec_cli.sources import GENERATED, resolve_raw
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


def generate(
    ctx: typer.Context,
    out: Annotated[
        Path,
        typer.Option(
            help="Folder for listens/ and tracks.parquet: new, or one generate wrote before. "
            "preprocess reads it when [paths].raw is the default and data/raw/listens is empty."
        ),
    ] = GENERATED,
    events: Annotated[
        int | None, typer.Option(help="Number of plays (default [generate].events).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default [generate].seed).")] = None,
) -> None:
    """Generate the built-in synthetic dataset: writes OUT/listens/*.parquet, OUT/tracks.parquet.

    OUT belongs to generate (a marker file says so); a folder with other files is refused.
    Zipf-like users and tracks, genre tastes, a year of plays with skips, messy names.
    Deterministic for a seed; written in chunks, so --events 800000000 runs in bounded memory.
    """
    s = session(ctx)
    if events is not None:
        s = s.with_option(f"generate.events={events}", f"--events {events}")
    if seed is not None:
        s = s.with_option(f"generate.seed={seed}", f"--seed {seed}")
    console.summary("generate", s.guard(lambda: generate_run.run_generate(s.config(), out=out)))


def run_preprocess(s: Session) -> None:
    """Run the preprocess stage and print its summary."""
    console.summary("preprocess", s.guard(lambda: preprocess_run.run_preprocess(s.config())))


def run_split(s: Session) -> None:
    """Run the split stage and print its summary."""
    console.summary("split", s.guard(lambda: split_run.run_split(s.config())))


def run_features(s: Session) -> None:
    """Run the features stage and print its summary."""
    console.summary("features", s.guard(lambda: features_run.run_features(s.config())))


def run_train(s: Session) -> None:
    """Run the train stage and print its summary."""
    console.summary("train", s.guard(lambda: train_run.run_train(s.config())))


def run_predict(s: Session, *, users: Path | None = None) -> None:
    """Run the predict stage (for every user, or those in `users`) and print its summary."""
    text = s.guard(lambda: predict_run.run_predict(s.config(), users_file=users))
    console.summary("predict", text)


def run_evaluate(s: Session, *, as_json: bool = False, k: int | None = None) -> None:
    """Run the evaluate stage, print the metrics table (and JSON) and the summary."""
    cfg = s.guard(s.config)
    ks = sorted(set(cfg.evaluate.k))
    if k is not None and k not in ks:
        msg = f"{k} is not one of the cut-offs {ks} (evaluate.k in the config)."
        raise typer.BadParameter(msg, param_hint="--k")
    text, _, content = s.guard(lambda: evaluate_run.run_evaluate(cfg))
    # the tables are the result, unless --json is: then stdout holds the JSON alone (`| jq`)
    _print_metrics(content, k, to_stderr=as_json)
    if as_json:
        console.print_json(json.dumps(content, indent=2, sort_keys=True))
    console.summary("evaluate", text)


def _print_metrics(content: dict[str, Any], k: int | None, *, to_stderr: bool) -> None:
    """Models x metrics at one K: a ranking table and a beyond-accuracy table."""
    tables = report.terminal_tables(content, k=k) + report.variant_tables(content, k=k)
    for title, columns, rows, bold in tables:
        console.table(title, columns, rows, bold=bold, to_stderr=to_stderr)
    console.note(
        report.LEGEND + (f" Grey: lift over {content['baseline']}." if content["baseline"] else "")
    )


# what `all` runs, in order; each takes only the session (every option at its default)
STAGE_RUNS: dict[str, Callable[[Session], None]] = {
    "preprocess": run_preprocess,
    "split": run_split,
    "features": run_features,
    "train": run_train,
    "predict": run_predict,
    "evaluate": run_evaluate,
}


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
    run_split(s)


def features(ctx: typer.Context) -> None:
    """Weight interactions and describe users and tracks: reads 02_split/, writes 03_features/.

    Outputs: features_train.parquet (with confidence weight), features_test.parquet,
    item_features.parquet, user_features.parquet.
    """
    run_features(session(ctx))


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
) -> None:
    """Fit the models in [train].models: reads 03_features/, writes 04_train/.

    Outputs: <model>.npz per model, models.json (settings), metrics.json (training times);
    04_train/tuning/ from `musicrec tune` is kept.
    """
    s = with_engine(session(ctx), engine, spark_master)
    if tuned is not None:
        for override in s.guard(lambda: tuned_overrides(tuned)):
            s = s.with_option(override, f"--tuned {tuned} ({override})")
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
) -> None:
    """Top-N unheard tracks per user and model: reads 04_train/, writes 05_predict/.

    Outputs: predictions.parquet (user_id, user_idx, rank, track_id, track_idx, track_group_id,
    score, model, generated_at), with re-ranked lists as model "<name>+rerank", and
    similar_tracks.parquet (top-K neighbours per track by item-factor cosine). The folder is
    replaced only when complete, so a failed run leaves the previous predictions in place.
    """
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
    run_evaluate(s, as_json=as_json, k=k)


def all_stages(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Rerun stages that are up to date.")
    ] = False,
    engine: Engine = None,
    spark_master: SparkMaster = None,
) -> None:
    """Run the six stages in order, skipping those whose inputs, settings and code are unchanged."""
    s = with_engine(session(ctx), engine, spark_master)
    cfg = s.guard(s.config)
    for stage, run in STAGE_RUNS.items():
        if not force and is_up_to_date(cfg, stage):
            console.note(f"{stage}: up to date, skipped")
            continue
        run(s)


def stamp_config(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Where to write <stage>.json stamps.")],
) -> None:
    """Write each stage's settings and code fingerprint to FOLDER/<stage>.json, where changed.

    The Makefile makes each stage depend on its stamp, so editing one table of musicrec.toml,
    or the code of one stage, reruns that stage and what follows it, and nothing before it.
    """
    s = session(ctx)
    cfg = s.guard(s.config)
    folder.mkdir(parents=True, exist_ok=True)
    for stage in ("generate", *STAGES):
        settings = table_dict(getattr(cfg, stage))
        if stage == "preprocess":
            settings |= {"paths": table_dict(resolve_raw(cfg.paths))}
        stamp = {"config": settings, "source_sha256": source_fingerprint(stage)}
        text = json.dumps(stamp, indent=2, sort_keys=True) + "\n"
        path = folder / f"{stage}.json"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
