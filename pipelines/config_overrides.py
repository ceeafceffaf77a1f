"""Snakemake's `--config KEY=VALUE` overrides, typed by the configuration schema.

Snakemake parses a command-line value with `int`, `float`, the literals `True`/`False`, then YAML's
BaseLoader, which leaves every scalar a string: `interleaved=false` arrives as `'false'`,
`seeds=[0,1]` as `['0', '1']`, `train={batch_size: 8}` as `{'batch_size': '8'}`, `variant=2`
as the int 2. `type_overrides(overrides)` turns each leaf into the type the schema declares for
its key: `PipelineConfig`'s fields, `env.*` by `pipelines.envs.atari.EnvConfig` and
`agent.overrides.*` by `models.config.AgentConfig`. Only command-line values are converted;
configuration files stay strict (a quoted `"false"` in YAML is still an error).

Spellings: booleans as YAML writes them (`true`, `False`, `yes`, `off`), `null`/`none`/`~` for
an optional section, lists as `[a, b]` or `a,b`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping


from .config_yaml import load_yaml

_NULLS = {"null", "none", "~", ""}


def type_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The command-line overrides with every leaf converted to its schema type (see module doc)."""
    from .config import PipelineConfig

    return _walk(PipelineConfig, overrides, "")


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`config` (files and command line merged, as Snakemake gives it) with the command-line leaves typed."""
    typed = type_overrides(overrides)
    return _merge(dict(config), typed)


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            base[key] = _merge(dict(base[key]), value)
        else:
            base[key] = value
    return base


def _walk(schema: Any, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        out[key] = _convert(_field_type(schema, key, path), value, path)
    return out


def _field_type(schema: Any, key: str, path: str) -> Any:
    """The declared type of `key` in `schema` (a dataclass), or Any for an unknown key (the schema
    check names it later)."""
    if not dataclasses.is_dataclass(schema):
        return Any
    hints = typing.get_type_hints(schema)
    if key not in hints:
        return Any
    if path == "env":
        from .envs.atari import EnvConfig

        return EnvConfig
    if path == "agent.overrides":
        from dreamer_pipeline.models.config import AgentConfig

        return AgentConfig
    return hints[key]


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, str):
            value = _yaml(value, where)
        return _walk(tp, value, where) if isinstance(value, Mapping) else value
    if origin in (typing.Union, types.UnionType):
        if isinstance(value, str) and value.strip().lower() in _NULLS and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        return _convert(options[0], value, where) if len(options) == 1 else value
    if origin in (list, tuple):
        if isinstance(value, str):
            text = value.strip()
            value = _yaml(text, where) if text.startswith("[") else [item.strip() for item in text.split(",") if item.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        item = args[0] if args else Any
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if isinstance(value, str):
            value = _yaml(value, where)
        return value
    if tp is str:
        return value if isinstance(value, str) or value is None else str(value)
    if not isinstance(value, str):
        return value
    if tp is bool:
        parsed = _yaml(value, where)
        return parsed if isinstance(parsed, bool) else value
    if tp is int:
        try:
            return int(value)
        except ValueError:
            try:
                number = float(value)  # 2e8
            except ValueError:
                return value
            return int(number) if number.is_integer() else value
    if tp is float:
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _yaml(text: str, where: str) -> Any:
    return load_yaml(text, f"--config {where}")
