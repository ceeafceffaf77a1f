"""Typed, validated configuration: dataclasses are the schema, YAML mappings only override them.

`from_mapping(Cls, data)` builds a (possibly nested) dataclass from a plain mapping and rejects
unknown keys and ill-typed values with a `ConfigError` that names the full key path, e.g.
`agent.world_model.kl_scale: expected float, got 'high' (str)`. `override(instance, data)`
applies a partial mapping on top of an existing instance (a dataclass with an `upgrade_keys`
static method first maps the renamed keys of older files to today's). `to_dict` is the inverse,
used to write the resolved configuration next to every output.

It lives in `models/` because that is the package every other one may import; it holds no nn.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key that does not exist, or a value of the wrong type."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping of {_type_name(tp)} fields, got {value!r}")
        return from_mapping(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r} ({type(value).__name__})")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_tp, value_tp = args if args else (Any, Any)
        return {_coerce(k, key_tp, where): _coerce(v, value_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected float, got {value!r} ({type(value).__name__})")
        if not math.isfinite(value):  # .nan passes every comparison, .inf overflows the plan's arithmetic
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)  # YAML writes 2e8 as a float
            raise ConfigError(f"{where}: expected int, got {value!r} ({type(value).__name__})")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r} ({type(value).__name__})")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r} ({type(value).__name__})")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    return value


def _check_keys(cls: type, data: Mapping[str, Any], where: str) -> dict[str, dataclasses.Field]:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        parts = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), list(fields), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            parts.append(f"{where + '.' if where else ''}{key}{hint}")
        raise ConfigError(f"unknown configuration key(s): {'; '.join(parts)}. Known keys here: {sorted(fields)}")
    return fields


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build `cls` from `data`, with defaults for missing keys. Unknown or ill-typed keys raise."""
    return override(cls(), data or {}, where)


def override(instance: T, data: Mapping[str, Any], where: str = "") -> T:
    """A copy of `instance` with the keys in `data` replaced (recursively for nested dataclasses)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'configuration'}: expected a mapping, got {data!r}")
    cls = type(instance)
    upgrade = getattr(cls, "upgrade_keys", None)
    if callable(upgrade):  # keys of older files, renamed since: mapped to today's
        data = upgrade(data, where)
    fields = _check_keys(cls, data, where)
    hints = typing.get_type_hints(cls)
    changes = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        current = getattr(instance, key)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            changes[key] = override(current, value, path)
        else:
            changes[key] = _coerce(value, hints[fields[key].name], path)
    result = dataclasses.replace(instance, **changes)
    validate = getattr(result, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as error:
            raise ConfigError(f"{where or cls.__name__}: {error}") from None
    return result


def to_dict(instance: Any) -> dict[str, Any]:
    """A plain, YAML/JSON-ready dict of a (nested) dataclass."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return convert(instance)
