"""musicrec.toml loading: precedence, unknown keys, types, validation messages."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from musicrec_cli.config import Config, ConfigError, SplitConfig, engine_of, table_dict
from musicrec_cli.config_load import load_config, parse_override
from stages.split import SplitParams


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "musicrec.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_defaults_then_file_then_set(tmp_path: Path) -> None:
    path = _write(tmp_path, "[train]\nfactors = 8\niterations = 3\n")
    cfg = load_config(path, ["train.iterations=5"])
    assert cfg.train.factors == 8  # file over default (64)
    assert cfg.train.iterations == 5  # --set over file
    assert cfg.train.alpha == Config().train.alpha  # default kept


def test_repo_config_equals_the_defaults() -> None:
    repo = Path(__file__).resolve().parent.parent / "musicrec.toml"
    assert load_config(repo) == Config()


def test_no_file_and_no_path_gives_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config() == Config()


@pytest.mark.parametrize(
    ("text", "overrides", "pattern"),
    [
        ("[train]\nfactor = 8\n", [], r"unknown key in \[train\] 'factor'. Did you mean 'factors'"),
        ("", ["trian.factors=8"], r"unknown table 'trian'. Did you mean 'train'"),
        ("[train]\nfactors = 'eight'\n", [], r"\[train\].factors = 'eight': expected an integer"),
        ("[train]\nfactors = true\n", [], r"factors = True: expected an integer"),
        ("[train]\nmodels = 'als'\n", [], r"models = 'als': expected a list of strings"),
        ("", ['train.models=["als", "svd"]'], r"\[train\].models = \['als', 'svd'\]: expected"),
        ("", ["split.test_fraction=1"], r"test_fraction = 1: expected a number between 0 and 1"),
        ("", ["predict.n=0"], r"\[predict\].n = 0: expected an integer between 1 and 10000"),
        (
            "",
            ["evaluate.k=[]"],
            r"\[evaluate\].k = \[\]: expected a non-empty list of integers between 1 and 10000",
        ),
        ("train = 3\n", [], r"'train' must be a table \(\[train\]\), got 3"),
        ("[train\n", [], r"musicrec.toml: not valid TOML"),
        ("", ["train.factors"], r"--set 'train.factors': expected table.key=value"),
        ("", ["factors=3"], r"--set 'factors=3': expected table.key=value"),
    ],
)
def test_invalid_config_names_key_and_expectation(
    tmp_path: Path, text: str, overrides: list[str], pattern: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=pattern):
        load_config(path, overrides)


def test_messages_are_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "[train\nfactors = 8\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "\n" not in str(info.value).strip()


def test_non_utf8_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "musicrec.toml"
    path.write_bytes(b"[train]\nfactors = 8 # caf\xe9\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml: config file not found"):
        load_config(tmp_path / "nope.toml")


def test_types_are_coerced_where_safe(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "[train]\nalpha = 3\nmodels = ['als']\n[preprocess]\nts_min = 2020-01-01T00:00:00\n",
    )
    cfg = load_config(path)
    assert cfg.train.alpha == 3.0
    assert isinstance(cfg.train.alpha, float)
    assert cfg.train.models == ("als",)
    assert cfg.preprocess.ts_min == dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def test_override_values_are_toml_or_else_strings() -> None:
    assert parse_override("train.factors=128") == ("train", "factors", 128)
    assert parse_override("paths.raw=data/x.csv") == ("paths", "raw", "data/x.csv")
    assert parse_override(" split.test_fraction = 0.25 ") == ("split", "test_fraction", 0.25)


def test_table_dict_is_json_ready() -> None:
    out = table_dict(Config().preprocess)
    assert out["ts_min"] == "2000-01-01T00:00:00+00:00"
    assert table_dict(Config().train)["models"] == list(Config().train.models)
    assert isinstance(table_dict(Config().train)["models"], list)


def test_engine_is_a_top_level_key_overridable_with_set(tmp_path: Path) -> None:
    path = _write(tmp_path, 'engine = "spark"\n[spark]\nmaster = "local[2]"\n')
    cfg = load_config(path)
    assert (cfg.engine, cfg.spark.master) == ("spark", "local[2]")
    assert engine_of(cfg, "train") == "spark"
    assert engine_of(cfg, "features") == "spark"
    assert engine_of(cfg, "evaluate") == "polars"  # no Spark implementation: always Polars
    assert load_config(path, ["engine=polars"]).engine == "polars"
    assert load_config(None, ['engine="spark"']).engine == "spark"


def test_unknown_engine_and_bad_spark_conf_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"engine = 'flink': expected one of \['polars', 'spark'\]"
    ):
        load_config(_write(tmp_path, 'engine = "flink"\n'))
    with pytest.raises(ConfigError, match=r"\[spark\]\.conf = \['spark.executor.cores'\]"):
        load_config(None, ['spark.conf=["spark.executor.cores"]'])


def test_split_params_take_every_split_setting_and_the_resolved_strategy() -> None:
    cfg = SplitConfig(
        strategy="auto",
        test_fraction=0.3,
        test_last_n=4,
        min_user_tracks=7,
        held_out_share=0.25,
        seed=9,
        plays_per_part=10,
    )
    assert SplitParams.of(cfg, "user-random") == SplitParams(
        strategy="user-random",
        test_fraction=0.3,
        test_last_n=4,
        min_user_tracks=7,
        held_out_share=0.25,
        seed=9,
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("generate.users=0", "expected a positive integer."),
        ("train.alpha=0", "expected a positive number."),
        ("train.regularization=-0.1", "expected a number >= 0."),
        ("preprocess.kcore_rounds=0", "expected an integer >= 1."),
        ("features.recency_floor=1.5", "expected a number between 0 and 1."),
        ("split.test_fraction=1", "expected a number between 0 and 1 (exclusive)."),
        (
            "train.hybrid_warm=[0, 0, 0, 0]",
            "expected 4 weights >= 0 for [als, content, popularity,",
        ),
        ("train.hybrid_few_no_audio=[1, 0, 0]", "expected 4 weights >= 0 for [als, content,"),
    ],
)
def test_each_shared_range_refuses_its_boundary(
    override: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no musicrec.toml: the defaults
    with pytest.raises(ConfigError) as caught:
        load_config(None, [override])
    assert expected in str(caught.value)
