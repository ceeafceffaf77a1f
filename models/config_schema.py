"""Typed, validated configuration: dataclasses are the schema, YAML mappings only override them.

`from_mapping(Cls, data)` builds a (possibly nested) dataclass from a plain mapping and rejects
unknown keys and ill-typed values with a `ConfigError` that names the full key path, e.g.
`agent.world_model.kl_scale: expected float, got 'high' (str)`. `override(instance, data)`
applies a partial mapping on top of an existing instance (a dataclass with an `upgrade_keys`
static method first maps the renamed keys of older files to today's). `to_dict` is the inverse,
used to write the resolved configuration next to every output.

`coerce(value, tp, where, lax=...)` is the one coercer of a value to a declared type. Strict (files,
checkpoints): a value must already have the type (an int where a float is declared, and a float
without fraction where an int is, excepted). Lax (command-line values, which arrive as strings):
a string is first read as the declared type: `true`/`false` (any YAML spelling) for a bool, `2e8`
for an int, `null`/`none`/`~` for an optional value, `[a, b]` or `a,b` for a list; then the strict
rules apply, so `interleaved=maybe` is the same error in both.

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


_TRUE, _FALSE = {"true", "yes", "on"}, {"false", "no", "off"}  # YAML 1.1's booleans, any case
_NULLS = {"null", "none", "~", ""}


def _read_text(text: str, tp: Any) -> Any:
    """A command-line string as the scalar or list type `tp` declares; unreadable text stays a
    string (the strict rules then name the key and the value)."""
    word = text.strip()
    if tp is bool:
        return True if word.lower() in _TRUE else False if word.lower() in _FALSE else text
    if tp in (int, float):
        try:
            number = float(word)
        except ValueError:
            return text
        if tp is int:
            try:
                return int(word)
            except ValueError:
                return int(number) if number.is_integer() else number  # 2e8; 2.5 stays an error
        return number
    if typing.get_origin(tp) in (list, tuple):  # a YAML list arrives parsed; this is `a,b` or `a`
        return [item.strip() for item in word.split(",") if item.strip()]
    return text


def coerce(value: Any, tp: Any, where: str, lax: bool = False) -> Any:
    """`value` as the declared type `tp`, or one `ConfigError` naming `where` (see the module doc)."""
    return _coerce(value, tp, where, lax)


def _coerce(value: Any, tp: Any, where: str, lax: bool = False) -> Any:
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if lax:
        value = _lax(value, tp, origin)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, tp, where, lax)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: expected one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping of {_type_name(tp)} fields, got {value!r}")
        return override(tp(), value, where, lax)
    if origin in (list, tuple):
        return _coerce_sequence(value, tp, where, lax)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_tp, value_tp = typing.get_args(tp) or (Any, Any)
        return {_coerce(k, key_tp, where): _coerce(v, value_tp, f"{where}.{k}", lax) for k, v in value.items()}
    return _coerce_scalar(value, tp, where)


def _lax(value: Any, tp: Any, origin: Any) -> Any:
    """A command-line value read as `tp` where it arrived as text (or as a number for a string)."""
    if isinstance(value, str) and tp is not str and origin not in (typing.Union, types.UnionType, typing.Literal):
        return _read_text(value, tp)
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # Snakemake reads `variant=2024` as the int 2024
    return value


def _coerce_union(value: Any, tp: Any, where: str, lax: bool) -> Any:
    args = typing.get_args(tp)
    optional = type(None) in args
    if optional and (value is None or (lax and isinstance(value, str) and value.strip().lower() in _NULLS)):
        return None
    for arg in args:
        if arg is not type(None):
            try:
                return _coerce(value, arg, where, lax)
            except ConfigError:
                pass
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _coerce_sequence(value: Any, tp: Any, where: str, lax: bool) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r} ({type(value).__name__})")
    if origin is tuple and args and args[-1] is not Ellipsis:  # a fixed-length tuple
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]", lax) for i, (v, a) in enumerate(zip(value, args)))
    item = args[0] if args else Any
    items = [_coerce(v, item, f"{where}[{i}]", lax) for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _coerce_scalar(value: Any, tp: Any, where: str) -> Any:
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):  # .nan passes every comparison, .inf overflows the plan's arithmetic
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)  # YAML writes 2e8 as a float
    wrong_bool = isinstance(value, bool) and tp in (int, float)
    if isinstance(tp, type) and (wrong_bool or not isinstance(value, tp)):
        expected = {float: "float", int: "int", bool: "true or false", str: "a string"}.get(tp, _type_name(tp))
        raise ConfigError(f"{where}: expected {expected}, got {value!r} ({type(value).__name__})")
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


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, where: str = "", lax: bool = False) -> T:
    """Build `cls` from `data`, with defaults for missing keys. Unknown or ill-typed keys raise."""
    return override(cls(), data or {}, where, lax)


def override(instance: T, data: Mapping[str, Any], where: str = "", lax: bool = False) -> T:
    """A copy of `instance` with the keys in `data` replaced (recursively for nested dataclasses);
    `lax`: the values are command-line strings, read as their declared types first."""
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
            changes[key] = override(current, value, path, lax)
        else:
            changes[key] = _coerce(value, hints[fields[key].name], path, lax)
    result = dataclasses.replace(instance, **changes)
    validate = getattr(result, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError:
            raise  # names its key already
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
