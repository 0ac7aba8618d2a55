"""The committed musicrec.toml and the dataclass defaults must say the same thing."""

import dataclasses
import tomllib
from pathlib import Path

from musicrec_cli.config import Config
from musicrec_cli.config_load import load_config

ROOT = Path(__file__).resolve().parent.parent


def test_musicrec_toml_equals_the_dataclass_defaults():
    assert load_config(ROOT / "musicrec.toml") == Config()


def test_musicrec_toml_lists_every_setting():
    written = tomllib.loads((ROOT / "musicrec.toml").read_text())
    assert written["engine"] == Config().engine
    for table in dataclasses.fields(Config):
        if table.name == "engine":
            continue
        keys = {f.name for f in dataclasses.fields(getattr(Config(), table.name))}
        assert set(written[table.name]) == keys, table.name
