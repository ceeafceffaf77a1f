"""Command-line overrides: one dotted syntax, `KEY=VALUE`, typed by the configuration schema.

`train.batch_size=32`, `agent.preset=small`, `games=[pong]`, `env.sticky_action_probability=0`:
the key is a dotted path through the schema, the value YAML. The same function serves every
place a person overrides a setting on the command line:

- Snakemake's `--config` (`dreamer-pipeline workflow ... --config agent.preset=small`; plain
  `snakemake` refuses a dot in a `--config` key before the Snakefile is read, so there the
  top-level form `--config 'agent={preset: small}'` does the same), through
  `workflow_plan.load_workflow`;
- `dreamer-pipeline check-config FILE --set KEY=VALUE` (`load_config_with_settings(path, settings)`),
  `benchmarks/bench_learning.py --set`, `gpu_learning.py --set` and `bench_reward.py --set` (keys
  under `agent.overrides`), through `apply_settings` / `parse_settings`.

Values are read as Snakemake reads them (every scalar a string: `interleaved=false` is `'false'`,
`seeds=[0,1]` is `['0', '1']`) and then typed by the schema's one coercer in its lax mode
(`models.config_schema.coerce`): `PipelineConfig`'s fields, `env.*` by the suite's environment
settings (`EnvConfig` for Atari and Catch, `DMCConfig` with `suite: dmc`) and `agent.overrides.*`
by `models.config.AgentConfig`. Configuration files stay strict (a quoted `"false"` in YAML is an
error). A key the schema does not know is left as it is, for the schema's check to name.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Iterable, Mapping

from dreamer_pipeline.models.config_schema import ConfigError, coerce

from .config import PipelineConfig, config_from_mapping, read_config_data
from .config_yaml import load_yaml


def parse_setting(text: str, where: str = "--set") -> tuple[str, Any]:
    """`KEY=VALUE` as (dotted key, value with every scalar a string); a ConfigError naming it."""
    key, sep, value = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not all(part.isidentifier() for part in parts):
        raise ConfigError(f"{where} {text!r}: expected KEY=VALUE with a dotted key, e.g. train.batch_size=32")
    return key, load_yaml(value, f"{where} {key}", plain=True)


def parse_settings(settings: Iterable[str], where: str = "--set") -> dict[str, Any]:
    return dict(parse_setting(text, where) for text in settings)


def apply_settings(config: Mapping[str, Any], settings: Iterable[str], where: str = "--set") -> dict[str, Any]:
    """`config` with `KEY=VALUE` strings applied (bench_learning.py's and gpu_learning.py's `--set`)."""
    return apply_overrides(config, parse_settings(settings, where))


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`config` with the command-line `overrides` (dotted keys allowed) typed and applied on top.
    A dotted key that `config` holds as it is (Snakemake merges `--config` into `config`) is
    replaced by the nested one."""
    nested = expand_dotted(overrides)
    base = {key: value for key, value in config.items() if key not in overrides or "." not in str(key)}
    suite = nested.get("suite", base.get("suite", "atari"))
    return _merge(base, type_overrides(nested, suite=suite))


def expand_dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`{"train.batch_size": 8, "train": {"device": "cpu"}}` as `{"train": {"batch_size": 8, "device": "cpu"}}`."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = nested
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--config {key}: {'.'.join(parts[:depth + 1])} is set to a value, not a section")
            node = child
        leaf = parts[-1]
        if isinstance(value, Mapping) and isinstance(node.get(leaf), dict):
            node[leaf] = _merge(node[leaf], expand_dotted(value))
        else:
            node[leaf] = expand_dotted(value) if isinstance(value, Mapping) else value
    return nested


def type_overrides(overrides: Mapping[str, Any], suite: Any = None) -> dict[str, Any]:
    """The overrides (a nested mapping) with every leaf converted to its schema type (module doc)."""
    if suite is None:
        suite = overrides.get("suite", "atari")
    return _walk(PipelineConfig, overrides, "", str(suite).strip())


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    base = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            base[key] = _merge(dict(base[key]), value)
        else:
            base[key] = value
    return base


def _walk(schema: Any, data: Any, where: str, suite: str) -> Any:
    """`data` typed by `schema` (a dataclass): sections recursively, leaves by the one coercer."""
    if not isinstance(data, Mapping):
        return data  # e.g. `train=8`: the schema's check names it
    hints = typing.get_type_hints(schema)
    out = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        tp = _section_type(path, suite) or hints.get(key, Any)
        if _dataclass_of(tp) is not None and isinstance(value, Mapping):
            out[key] = _walk(_dataclass_of(tp), value, path, suite)
        else:
            typed = coerce(value, tp, path, lax=True)
            out[key] = list(typed) if isinstance(typed, tuple) else typed  # plain YAML data, as files hold
    return out


def _section_type(path: str, suite: str) -> Any:
    """The schema of the two sections stored as mappings: `env` (by suite) and `agent.overrides`."""
    if path == "env":
        from .envs.registry import env_config_class

        try:
            return env_config_class(suite)
        except ValueError:
            return None  # an unknown suite: the schema's check names it
    if path == "agent.overrides":
        from dreamer_pipeline.models.config import AgentConfig

        return AgentConfig
    return None


def _dataclass_of(tp: Any) -> Any:
    """The dataclass in `tp` (`PretrainConfig | None` included), or None."""
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def load_config_with_settings(path, settings: Iterable[str] = ()) -> PipelineConfig:
    """A configuration file with command-line `KEY=VALUE` settings on top (the one override syntax).
    Raises `ConfigError` naming the file and the problem."""
    data = read_config_data(path)
    try:
        return config_from_mapping(apply_settings(data, settings) if settings else data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
