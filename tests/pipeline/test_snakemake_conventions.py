"""Snakemake's conventions: `snakemake --lint` passes, and `--config KEY=VALUE` works for every
key of the schema (Snakemake hands the values over as strings; the schema types them)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from dreamer_pipeline.models.config import AgentConfig
from dreamer_pipeline.pipelines.envs.atari import EnvConfig
from dreamer_pipeline.pipelines.config import PipelineConfig, PretrainConfig, config_from_mapping
from dreamer_pipeline.pipelines.config_overrides import apply_overrides, type_overrides

ROOT = Path(__file__).resolve().parents[2]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_snakemake_lint_passes(tmp_path):
    result = snakemake(tmp_path, "--lint", "--configfile", str(ROOT / "config/debug.yaml"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "good condition" in result.stdout + result.stderr


def test_catalog_metadata_is_there():
    catalog = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())
    assert catalog["usage"]["software-stack-deployment"]["conda"] is True and catalog["usage"]["report"] is True
    assert "--configfile" in catalog["usage"]["mandatory-flags"]["flags"]
    readme = (ROOT / "config/README.md").read_text()
    def row(path):  # env and agent.overrides are documented as sections (EnvConfig, AgentConfig)
        return "env" if path[0] == "env" else "agent.overrides" if path[:2] == ("agent", "overrides") else ".".join(path)

    documented = {row(path) for path, _, _ in LEAVES} | {"pretrain"}
    for key in sorted(documented):  # every key of the schema has a row in config/README.md
        assert f"| `{key}` |" in readme, key
    assert 'min_version("9.0")' in (ROOT / "Snakefile").read_text()


def _leaves(schema: Any, value: Any, prefix: tuple[str, ...]):
    """(key path, declared type, a valid value) for every leaf of a dataclass schema."""
    hints = typing.get_type_hints(type(value))
    for field in dataclasses.fields(value):
        path, current = (*prefix, field.name), getattr(value, field.name)
        declared = hints[field.name]
        if path == ("env",):
            yield from _leaves(EnvConfig, EnvConfig(), path)
        elif path == ("agent", "overrides"):
            yield from _leaves(AgentConfig, AgentConfig(), path)
        elif path == ("pretrain",):
            yield from _leaves(PretrainConfig, PretrainConfig(datasets=["random50k"]), path)
        elif dataclasses.is_dataclass(current):
            yield from _leaves(type(current), current, path)
        else:
            yield path, declared, current


def _text(value: Any) -> str:
    """How a person types `value` on the command line (YAML spelling, lower-case booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}"
    return str(value)


def _nested(path: tuple[str, ...], text: str) -> str:
    """`--config` takes top-level keys only; deeper keys are a YAML flow mapping."""
    inner = text
    for key in reversed(path[1:]):
        inner = "{" + f"{key}: {inner}" + "}"
    return f"{path[0]}={inner}"


LEAVES = list(_leaves(PipelineConfig, PipelineConfig(), ()))


@pytest.mark.parametrize("path, declared, value", LEAVES, ids=[".".join(p) for p, _, _ in LEAVES])
def test_every_key_can_be_overridden_on_the_command_line(path, declared, value):
    from snakemake.cli import parse_config  # exactly what Snakemake hands the Snakefile

    overrides = parse_config([_nested(path, _text(value))])
    typed = type_overrides(overrides)
    leaf = typed
    for key in path:
        leaf = leaf[key]
    expected = list(value) if isinstance(value, tuple) else value
    assert leaf == expected and type(leaf) is type(expected), (path, overrides, leaf)
    if path[0] == "pretrain":
        typed["pretrain"].setdefault("datasets", ["random50k"])
    config_from_mapping(apply_overrides({}, typed))  # the schema accepts it


def test_command_line_spellings():
    from snakemake.cli import parse_config

    typed = type_overrides(parse_config(["interleaved=false", "seeds=[0,1]", "games=pong,breakout", "pretrain=null",
                                         "variant=2024", "frames_budget=2e8", "train={batch_size: 8, prioritize_ends: off}"]))
    assert typed == {"interleaved": False, "seeds": [0, 1], "games": ["pong", "breakout"], "pretrain": None,
                     "variant": "2024", "frames_budget": 200_000_000, "train": {"batch_size": 8, "prioritize_ends": False}}
    with pytest.raises(Exception, match="interleaved"):
        config_from_mapping(type_overrides(parse_config(["interleaved=maybe"])))


def test_config_override_reaches_the_plan(tmp_path):
    """`--config interleaved=true` on the real Snakefile (config/debug.yaml is staged): the staged
    actor-critic rule leaves the plan, and the plan holds the overrides (a dry run writes no
    snapshot: the workflow's onstart does, docs/pipeline.md)."""
    result = snakemake(tmp_path, "-n", "--cores", "2", "train_all", "--quiet", "rules",
                       "--configfile", str(ROOT / "config/debug.yaml"), "--config", "interleaved=true", "seeds=[0,1]")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    rules = set(re.findall(r"^(\w+)\s+\d+$", output, re.M))  # the job table's rule names
    assert "train_agent" in rules and not {"train_world_model", "train_actor_critic"} & rules
    assert not (tmp_path / "results/configs/debug.yaml").exists()
