"""Agent checkpoints: one self-describing file, written atomically, loaded without unpickling code.

Format (a dict of tensors and plain containers, `torch.save`d; format version 1):

    format           "dreamer-pipeline/agent"
    format_version   1
    config           the resolved AgentConfig as a plain dict (`to_dict`)
    num_actions      int
    image_shape      [64, 64, C]
    state            Agent.state_dict(): weights, optimiser states, counters, sampling RNG
    extra            free-form plain metadata from the caller (iteration, provenance, ...)

Loading uses `torch.load(weights_only=True)`, so a shared checkpoint can never run code. Loading
into an agent whose architecture differs (action count, image shape, latent sizes, any network
width) raises `CheckpointError` naming every field that differs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from .agent import Agent
from .config import ARCHITECTURE_FIELDS, AgentConfig
from .config_schema import ConfigError, from_mapping

FORMAT_NAME = "dreamer-pipeline/agent"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, foreign, of another version, or incompatible."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"checkpoint {self.path}: {problem}")


def save_checkpoint(agent: Agent, path: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
    """Write `agent` to `path` atomically (temporary file in the same folder, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": agent.config.to_dict(),
        "num_actions": agent.num_actions,
        "image_shape": list(agent.image_shape),
        "state": agent.state_dict(),
        "extra": dict(extra or {}),
    }
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's payload, validated for format and version (tensors on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is one clear error
        raise CheckpointError(path, f"not a loadable weights-only checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(path, f"not a {FORMAT_NAME} checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(path, f"format version {payload.get('format_version')!r} is not the supported "
                                    f"version {FORMAT_VERSION}")
    for key in ("config", "num_actions", "image_shape", "state"):
        if key not in payload:
            raise CheckpointError(path, f"missing entry {key!r}")
    return payload


def _lookup(tree: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return "<missing>"
        tree = tree[part]
    return tree


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(f"{prefix}.{key}", item))
        return out
    return {prefix: list(value) if isinstance(value, tuple) else value}


def architecture_differences(saved: Mapping[str, Any], config: AgentConfig, num_actions: int) -> list[str]:
    """`field: checkpoint X, config Y` for every architecture field that differs."""
    current = config.to_dict()
    differences = []
    if int(saved["num_actions"]) != num_actions:
        differences.append(f"num_actions: checkpoint {saved['num_actions']}, agent {num_actions}")
    shape = [64, 64, config.world_model.image_channels]
    if list(saved["image_shape"]) != shape:
        differences.append(f"image_shape: checkpoint {list(saved['image_shape'])}, agent {shape}")
    for field in ARCHITECTURE_FIELDS:
        old = _flatten(field, _lookup(saved["config"], field))
        new = _flatten(field, _lookup(current, field))
        for key in sorted(set(old) | set(new)):
            if old.get(key, "<missing>") != new.get(key, "<missing>"):
                differences.append(f"{key}: checkpoint {old.get(key, '<missing>')!r}, agent {new.get(key, '<missing>')!r}")
    return differences


def restore_checkpoint(agent: Agent, path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint into an existing agent (weights, optimisers, counters, RNG); returns `extra`.

    The agent keeps its own hyperparameters (learning rates, loss scales, runtime); only the
    architecture must agree."""
    payload = read_checkpoint(path)
    differences = architecture_differences(payload, agent.config, agent.num_actions)
    if differences:
        raise CheckpointError(path, "incompatible with this agent: " + "; ".join(differences))
    try:
        agent.load_state_dict(payload["state"])
    except (KeyError, RuntimeError, ValueError) as error:
        raise CheckpointError(path, f"its weights do not fit the agent ({error})") from None
    return dict(payload.get("extra", {}))


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                    overrides: Mapping[str, Any] | None = None) -> tuple[Agent, dict[str, Any]]:
    """Build the agent a checkpoint describes (its own resolved config) and load it.

    `overrides` may change non-architecture fields, e.g. {"runtime": {"compile": True}}.
    Returns (agent, extra)."""
    payload = read_checkpoint(path)
    try:
        config = from_mapping(AgentConfig, payload["config"])
        if overrides:
            from .config_schema import override

            config = override(config, overrides)
    except ConfigError as error:
        raise CheckpointError(path, f"its configuration is not valid here ({error})") from None
    agent = Agent(config, int(payload["num_actions"]), device)
    return agent, restore_checkpoint(agent, path)
