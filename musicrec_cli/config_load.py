"""Reading musicrec.toml into a Config: the file, then `--set` overrides, each value checked.

Precedence: dataclass defaults < the config file < repeatable `--set table.key=value`.
Unknown tables or keys and values of the wrong type are errors that name the key; values of the
right type are then checked against `config_rules.RULES`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import tomllib
import typing
from pathlib import Path
from typing import Any

from musicrec_cli.config import DEFAULT_CONFIG, ENGINES, Config, ConfigError, toml_value
from musicrec_cli.config_rules import RULES


def _expected_name(kind: object) -> str:
    names: dict[object, str] = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        dt.datetime: "a TOML date-time such as 2000-01-01T00:00:00Z",
    }
    if typing.get_origin(kind) is tuple:
        item = _expected_name(typing.get_args(kind)[0])
        return f"a list of {item.removeprefix('an ').removeprefix('a ')}s"
    return names.get(kind, str(kind))


def _coerce(value: object, kind: object, key: str, source: str) -> object:
    """Check `value` against the field type; int is accepted for float, a list for a tuple."""
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if isinstance(value, list):
            return tuple(_coerce(v, item, key, source) for v in value)
    elif kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif kind is dt.datetime and isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    elif (
        isinstance(kind, type)
        and isinstance(value, kind)
        and not (kind is int and isinstance(value, bool))
    ):
        return value
    msg = f"{source}: [{key.replace('.', '].', 1)} = {value!r}: expected {_expected_name(kind)}."
    raise ConfigError(msg)


def _unknown(name: str, known: typing.Iterable[str], what: str, source: str) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{source}: unknown {what} {name!r}.{hint} Known: {', '.join(known)}.")


def _build_table(cls: type[Any], table: str, values: dict[str, Any], origin: _Origin) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        source = origin(table, key)
        if key not in names:
            raise _unknown(key, names, f"key in [{table}]", source)
        full = f"{table}.{key}"
        kwargs[key] = _coerce(value, hints[key], full, source)
        check, expected = RULES.get(full, (lambda _: True, ""))
        if not check(kwargs[key]):
            msg = f"{source}: [{table}].{key} = {value!r}: expected {expected}."
            raise ConfigError(msg)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[str, str, object]:
    """Split "table.key=value" into its parts; the value is read as TOML, else as a string.

    The one top-level key, `engine`, comes back with table "".
    """
    name, sep, raw = text.partition("=")
    table, dot, key = name.strip().partition(".")
    top_level = name.strip() == "engine"
    if not sep or not (top_level or (dot and key)):
        msg = f"--set {text!r}: expected table.key=value, e.g. --set train.factors=128."
        raise ConfigError(msg)
    try:
        value: object = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return ("", "engine", value) if top_level else (table, key.strip(), value)


# (table, key) -> where its value came from, for messages: the file, `--set ...` or a flag
_Origin = typing.Callable[[str, str], str]


def load_config(
    path: Path | None = None,
    overrides: typing.Sequence[str] = (),
    *,
    flags: typing.Mapping[str, str] | None = None,
) -> Config:
    """Read the config file (default ./musicrec.toml if present) and apply `--set` overrides.

    `flags` maps an override that a command option produced (e.g. "generate.events=300") to
    that option ("--events 300"), so that an error blames what the user typed.
    """
    source = path or DEFAULT_CONFIG
    data: dict[str, dict[str, Any]] = {}
    if path is not None and not path.is_file():
        msg = f"{path}: config file not found."
        raise ConfigError(msg)
    if source.is_file():
        try:
            data = tomllib.loads(source.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            msg = f"{source}: not valid TOML: {exc}."
            raise ConfigError(msg) from exc
    file_source = str(source) if source.is_file() else "the built-in defaults"
    given: dict[tuple[str, str], str] = {}
    tables = {f.name: f for f in dataclasses.fields(Config) if f.name != "engine"}
    for text in overrides:
        table, key, value = parse_override(text)
        if table:
            data.setdefault(table, {})[key] = value
            given[table, key] = (flags or {}).get(text, f"--set {text}")
        else:
            data[key] = value  # type: ignore[assignment]

    def origin(table: str, key: str) -> str:
        return given.get((table, key), file_source)

    built: dict[str, Any] = {"engine": _engine(data.pop("engine", "polars"), str(source))}
    for table, values in data.items():
        if table not in tables:
            blame = next((g for (t, _), g in given.items() if t == table), file_source)
            raise _unknown(table, tables, "table", blame)
        if not isinstance(values, dict):
            msg = f"{source}: {table!r} must be a table ([{table}]), got {values!r}."
            raise ConfigError(msg)
        cls = typing.get_type_hints(Config)[table]
        built[table] = _build_table(cls, table, values, origin)
    return Config(**built)


def _engine(value: object, source: str) -> str:
    if value not in ENGINES:
        msg = f"{source}: engine = {value!r}: expected one of {list(ENGINES)}."
        raise ConfigError(msg)
    return str(value)


def tuned_overrides(path: Path) -> list[str]:
    """`train.key=value` overrides from the [train] table of a `musicrec tune` result.

    Raises:
        ConfigError: The file cannot be read, is not TOML or has no [train] table.
    """
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("train", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        msg = f"{path}: cannot read the tuned settings: {exc}."
        raise ConfigError(msg) from exc
    if not table:
        msg = f"{path}: no [train] table; expected the <model>_best.toml that `tune` writes."
        raise ConfigError(msg)
    return [f"train.{k}={toml_value(v)}" for k, v in table.items()]
