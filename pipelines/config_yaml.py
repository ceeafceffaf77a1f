"""Reading configuration YAML without letting a tiny file cost minutes or gigabytes.

A YAML alias repeats a node without copying it: nine levels of ten aliases are a 1 KB file whose
value is a billion strings once walked, which the schema's coercion then did (31 s and 2.5 GB
through Snakemake; ten levels ended in a MemoryError). A mapping nested 5,000 deep overflowed the
composer's recursion. Configurations need neither, so:

- `load_yaml(text, where)` refuses anchors and aliases and nesting deeper than `MAX_DEPTH`, each
  with one `ConfigError` naming the file and line;
- `check_plain_tree(data, where)` does the same for a mapping that was parsed elsewhere
  (Snakemake's `config`): a container that appears twice is an alias, and the walk never visits a
  container twice, so its cost is the file's size, not the aliases' expansion.
"""

from __future__ import annotations

from typing import Any, Mapping

import yaml

from dreamer_pipeline.models.config_schema import ConfigError

MAX_DEPTH = 32  # the schema nests 5 deep (agent.overrides.world_model.rssm.deter); room for lists of mappings


class _Refusals:
    """Refuse anchors, aliases and deep nesting while composing (mixed into a PyYAML loader)."""

    def __init__(self, stream, where: str):
        super().__init__(stream)
        self.where = where
        self.depth = 0

    def _refuse(self, event, problem: str) -> None:
        line = event.start_mark.line + 1 if event.start_mark is not None else "?"
        raise ConfigError(f"{self.where}, line {line}: {problem}")

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._refuse(event, f"YAML aliases (*{event.anchor}) are not allowed in a configuration; write the value out")
        if getattr(event, "anchor", None) is not None:
            self._refuse(event, f"YAML anchors (&{event.anchor}) are not allowed in a configuration; write the value out")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self._refuse(event, f"nested more than {MAX_DEPTH} levels deep; a configuration needs far fewer")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _StrictLoader(_Refusals, yaml.SafeLoader):
    """PyYAML's safe loader without anchors, aliases or deep nesting."""


class _PlainLoader(_Refusals, yaml.BaseLoader):
    """Every scalar a string, as Snakemake reads a `--config` value (the schema types it)."""


def load_yaml(text: str, where: str, plain: bool = False) -> Any:
    """The value of a YAML document, or one `ConfigError` (invalid YAML, an alias, too deep).
    `plain`: scalars stay strings (command-line values, typed later by the schema)."""
    loader = (_PlainLoader if plain else _StrictLoader)(text, where)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as error:
        raise ConfigError(f"{where} is not valid YAML: {error}") from None
    finally:
        loader.dispose()


def check_plain_tree(data: Any, where: str = "configuration") -> None:
    """Raise `ConfigError` if a container occurs twice in `data` (a YAML alias) or it nests deeper
    than `MAX_DEPTH`. Iterative, and each container is visited once."""
    seen: set[int] = set()
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if not isinstance(value, (Mapping, list, tuple)):
            continue
        if id(value) in seen:
            raise ConfigError(f"{where}: {path or 'the top level'} repeats another value of the configuration (a YAML "
                              "alias); aliases are not allowed in a configuration, write the value out")
        seen.add(id(value))
        if depth >= MAX_DEPTH:
            raise ConfigError(f"{where}: {path} is nested more than {MAX_DEPTH} levels deep; a configuration needs "
                              "far fewer")
        mapping = isinstance(value, Mapping)
        for key, item in (value.items() if mapping else enumerate(value)):
            where_now = (f"{path}.{key}" if path else str(key)) if mapping else f"{path}[{key}]"
            stack.append((item, where_now, depth + 1))
