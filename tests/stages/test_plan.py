import dataclasses
import json
from pathlib import Path

import pytest

from musicrec_cli.config import Config
from musicrec_cli.planning import recorded_counts, settings_of
from stages import plan
from stages.plan_costs import BASE_BYTES

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
GIB = 2**30


def recorded_run(name: str) -> tuple[plan.Sizes, dict]:
    """The counts a full_scale run recorded, as the plan would read them from its manifests."""
    run = json.loads((RESULTS / name).read_text())
    st = run["stages"]
    pre = st["preprocess"]
    known = recorded_counts(
        pre["summary"], st["split"]["summary"], spellings=pre["rows_out"]["id_map_tracks.parquet"]
    )
    sizes = plan.estimate_sizes(
        raw_events=run["sizes"]["events"], raw_bytes=st["generate"]["bytes_on_disk"], known=known
    )
    return sizes, st


def defaults(**changes: object) -> plan.PlanSettings:
    """musicrec.toml's defaults (the one place they are kept), with `changes`, on 2 threads."""
    return dataclasses.replace(settings_of(Config()), threads=2, **changes)


def test_800m_estimates_are_within_1_5x_of_the_recorded_peaks():
    # benchmarks/full_scale.py's settings: n = 100, popularity and ALS, no re-ranking or similar
    sizes, measured = recorded_run("full_scale.json")
    settings = defaults(models=("popularity", "als"), n=100, rerank_models=(), similar_k=0)
    for p in plan.plan_run(sizes, settings):
        peak = measured[p.stage]["peak_rss_gib"] * GIB
        disk = measured[p.stage]["bytes_on_disk"]
        assert 1 / 1.5 <= p.peak_bytes / peak <= 1.5, (p.stage, p.peak_bytes / GIB, peak / GIB)
        assert 1 / 1.5 <= p.disk_bytes / disk <= 1.5, (p.stage, p.disk_bytes, disk)


def test_10m_estimates_are_within_2x_of_the_recorded_peaks():
    # benchmarks/full_scale.py --scale 80 with every model, EASE included (plan_accuracy.py)
    sizes, measured = recorded_run("plan_10m_run.json")
    models = ("popularity", "trending", "als", "bpr", "knn", "rp3beta", "ease", "content")
    settings = defaults(models=(*models, "hybrid"), n=100)
    for p in plan.plan_run(sizes, settings):
        peak = measured[p.stage]["peak_rss_gib"] * GIB
        assert 0.5 <= p.peak_bytes / peak <= 2, (p.stage, p.peak_bytes / GIB, peak / GIB)


def small(**counts: int) -> plan.Sizes:
    base = {"plays": 7000, "pairs": 4000, "users": 100, "tracks": 50, "spellings": 600}
    base |= {"train_pairs": 3000, "test_pairs": 1000, "replay_pairs": 1500}
    return plan.estimate_sizes(raw_events=10_000, raw_bytes=300_000, known=base | counts)


def test_train_memory_is_the_data_the_factors_and_the_als_working_set():
    settings = defaults(models=("als",), factors=10)
    p = plan.plan_stage("train", small(), settings)
    data = 3000 * 8  # float32 CSR
    factors = (100 + 50) * 10 * 4
    working = 3000 * 14
    assert p.peak_bytes == BASE_BYTES["train"] + data + factors + working
    assert p.disk_bytes == factors
    assert dict(p.memory) == {
        "train pairs: CSR of weights": data,
        "als fit working set": working,
        "models' arrays (als)": factors,
    }


def test_ease_is_refused_above_its_memory_plan_with_what_it_would_need():
    settings = defaults(models=("popularity", "ease"), ease_max_gib=16)
    p = plan.plan_stage("train", small(tracks=800_000), settings)
    assert "800,000 tracks" in p.refused
    assert "2.6 TB" in p.refused  # 4 bytes x 800K^2
    fits = plan.plan_stage("train", small(tracks=10_000), settings)
    assert fits.refused == ""
    assert fits.disk_bytes == 4 * 10_000**2 + 4 * 10_000  # EASE's B and popularity


def test_refused_ease_makes_no_predictions():
    settings = defaults(models=("popularity", "ease"), n=10, rerank_models=())
    p = plan.plan_stage("predict", small(tracks=800_000), settings)
    assert p.disk_bytes == 100 * 10 * 1 * 8  # users x n x one list x 8 bytes a row


def test_known_counts_win_and_the_rest_follow_from_the_raw_events():
    sizes = plan.estimate_sizes(
        raw_events=1_000_000, raw_bytes=29_000_000, tracks=2000, known={"pairs": 500_000}
    )
    assert sizes.pairs == 500_000
    assert sizes.train_pairs == round(500_000 * plan.TRAIN_SHARE)
    assert sizes.plays == round(1_000_000 * plan.PLAYS_PER_EVENT)
    assert sizes.spellings == round(2000 * plan.SPELLINGS_PER_TRACK)
    assert sizes.counted == {"pairs", "tracks", "raw_events", "raw_bytes"}


def test_800m_preprocess_disk_and_scratch_are_within_1_5x_of_the_measured_disk_peak():
    # the stage's disk use (outputs + scratch) sampled every 5 s in a run of preprocess alone
    sizes, _ = recorded_run("full_scale.json")
    measured = json.loads((RESULTS / "full_scale.json").read_text())["preprocess_alone_fourteenth"]
    p = plan.plan_stage("preprocess", sizes, defaults())
    planned = p.disk_bytes + p.scratch_bytes
    assert 1 / 1.5 <= planned / measured["disk_peak_bytes"] <= 1.5, planned / GIB


def test_a_log_of_one_batch_and_one_bucket_needs_no_scratch():
    sizes = small(plays=1_000_000)
    assert plan.plan_stage("preprocess", sizes, defaults()).scratch_bytes == 0
    several_batches = plan.plan_stage("preprocess", sizes, defaults(batch_bytes=100_000))
    assert several_batches.scratch_bytes > 0  # the survey's hashed plays


def test_batches_follow_the_settings():
    sizes = small(plays=45_000_000)
    p = plan.plan_stage("preprocess", sizes, defaults(bucket_rows=10_000_000))
    assert "5 bucket(s) of ~9.0M plays" in p.batches
    s = plan.plan_stage("split", sizes, defaults(plays_per_part=20_000_000))
    assert s.batches == ("3 user range(s) of ~15.0M plays",)


def test_problems_name_the_stage_and_what_it_needs():
    plans = plan.plan_run(small(), defaults())
    roomy = plan.Machine(memory_bytes=64 * GIB, available_bytes=64 * GIB, disk_free_bytes=GIB)
    assert plan.problems_for(plans, roomy) == []
    tight = plan.Machine(memory_bytes=300 * 2**20, available_bytes=1, disk_free_bytes=1000)
    problems = plan.problems_for(plans, tight)
    assert any(line.startswith("train: needs about") for line in problems)
    assert any("[train].models" in line for line in problems)
    assert problems[-1].startswith("preprocess: the stages up to it write about")
    low_now = plan.Machine(memory_bytes=64 * GIB, available_bytes=1, disk_free_bytes=GIB)
    cautions = plan.cautions_for(plans, low_now)
    assert len(cautions) == len(plans)
    assert plan.problems_for(plans, low_now) == []


@pytest.mark.parametrize(
    ("n", "text"), [(5e8, "477 MiB"), (3 * GIB, "3.00 GiB"), (2.6e12, "2.6 TB")]
)
def test_gib(n: float, text: str):
    assert plan.gib(n) == text


def test_rp3beta_fit_memory_is_within_1_25x_of_the_measured_fits():
    # benchmarks/rp3beta_scale.py: the fit's own process, peak minus the RSS before the fit
    from stages.plan_models import model_cost

    runs = json.loads((RESULTS / "rp3beta_scale.json").read_text())["sizes"]
    settings = defaults(models=("rp3beta",), rp3beta_neighbours=100)
    checked = 0
    for run in (r for r in runs if r["events"] >= 10_000_000):
        known = {"users": run["users"], "tracks": run["tracks"], "train_pairs": run["pairs"]}
        sizes = plan.estimate_sizes(raw_events=run["events"], raw_bytes=1, known=known)
        measured = (
            run["median"]["rp3beta"]["peak_rss_gib"]
            - run["median"]["rp3beta"]["rss_before_fit_gib"]
        )
        ratio = model_cost("rp3beta", sizes, settings).fit / (measured * GIB)
        assert 1 / 1.25 <= ratio <= 1.25, (run["events"], ratio)
        checked += 1
    assert checked >= 2
