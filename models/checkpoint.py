"""Agent checkpoints: one self-describing file, written atomically, loaded without unpickling code.

Format (a dict of tensors and plain containers, `torch.save`d; format version 1):

    format           "dreamer-pipeline/agent"
    format_version   1
    config           the resolved AgentConfig as a plain dict (`to_dict`)
    action_space     ActionSpace.to_dict(): {"kind": "discrete", "n": N} or
                     {"kind": "continuous", "shape": [A], "low": [...], "high": [...]}
                     (absent in checkpoints written before continuous actions: discrete)
    num_actions      int, discrete agents only (what older readers read)
    image_shape      [64, 64, C]
    state            Agent.state_dict(): weights, optimiser states, counters, sampling RNG
    extra            free-form plain metadata from the caller (iteration, provenance, ...)

Loading uses `torch.load(weights_only=True)`, so a shared checkpoint can never run code. Loading
into an agent whose architecture differs (action space, image shape, latent sizes, any network
width) raises `CheckpointError` naming every field that differs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import torch

from dreamer_pipeline.datasets.action_space import ActionSpace, ActionSpaceError
from dreamer_pipeline.datasets.durable import atomic_write  # no zarr, no torch: see docs/architecture.md

from .agent import Agent
from .config import ARCHITECTURE_FIELDS, AgentConfig, actor_distribution
from .config_schema import ConfigError, from_mapping, to_dict
from .networks import IMAGE_SIZE

FORMAT_NAME = "dreamer-pipeline/agent"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, foreign, of another version, or incompatible."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"checkpoint {self.path}: {problem}")


def save_checkpoint(agent: Agent, path: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
    """Write `agent` to `path` atomically and durably (`datasets.durable.atomic_write`: a temporary
    sibling, fsynced, renamed over `path`, the folder fsynced).

    A write that fails (a full disk) is one `CheckpointError`; nothing is left behind and `path`
    is unchanged."""
    path = Path(path)
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": agent.config.to_dict(),
        "action_space": agent.action_space.to_dict(),
        **({"num_actions": agent.action_space.n} if agent.action_space.is_discrete else {}),
        "image_shape": list(agent.image_shape),
        "state": agent.state_dict(),
        "extra": dict(extra or {}),
    }
    try:
        return atomic_write(path, lambda tmp: torch.save(payload, tmp))
    except (OSError, RuntimeError) as error:  # torch reports a failed write as a RuntimeError
        raise CheckpointError(path, f"could not be written ({_write_failure(error, path.parent)})") from None


def _write_failure(error: BaseException, folder: Path) -> str:
    detail = getattr(error, "strerror", None) or " ".join(str(error).split())[:200] or type(error).__name__
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return detail
    return f"{detail}; {free:,} bytes free in {folder}"


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
    for key in ("config", "image_shape", "state"):
        if key not in payload:
            raise CheckpointError(path, f"missing entry {key!r}")
    if "action_space" not in payload and "num_actions" not in payload:
        raise CheckpointError(path, "missing entry 'action_space' (or the older 'num_actions')")
    try:
        checkpoint_action_space(payload)
    except (ActionSpaceError, TypeError, ValueError) as error:
        raise CheckpointError(path, f"its action space is not valid ({error})") from None
    return payload


def checkpoint_action_space(payload: Mapping[str, Any]) -> ActionSpace:
    """The action space a checkpoint's payload records; checkpoints from before continuous actions
    record only `num_actions` and are discrete."""
    if "action_space" in payload:
        return ActionSpace.from_dict(payload["action_space"])
    return ActionSpace.discrete(int(payload["num_actions"]))


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


def _resolved_config_dict(config: Mapping[str, Any] | AgentConfig, action_space: ActionSpace) -> dict[str, Any]:
    """The configuration as a plain dict with every field present (an older checkpoint's missing
    fields take their defaults, which are what it was trained with) and `behaviour.actor_dist`
    resolved for the action space, so that "auto" and what it stands for compare equal."""
    if not isinstance(config, AgentConfig):
        try:
            config = from_mapping(AgentConfig, config)
        except ConfigError:
            return dict(config)  # compared as it is; the differences name what is off
    values = to_dict(config)
    try:
        values["behaviour"]["actor_dist"] = actor_distribution(config.behaviour, action_space.is_discrete)
    except ConfigError:
        pass  # left as written: it differs from any agent that can act in this space
    return values


def architecture_differences(saved: Mapping[str, Any], config: AgentConfig,
                             action_space: ActionSpace | int) -> list[str]:
    """`field: checkpoint X, config Y` for every architecture field that differs. `action_space`
    is the agent's (an int: that many discrete actions)."""
    if isinstance(action_space, int):
        action_space = ActionSpace.discrete(action_space)
    saved_space = checkpoint_action_space(saved)
    current = _resolved_config_dict(config, action_space)
    saved_config = _resolved_config_dict(saved["config"], saved_space)
    differences = []
    if saved_space.is_discrete and action_space.is_discrete:
        if saved_space.n != action_space.n:
            differences.append(f"num_actions: checkpoint {saved_space.n}, agent {action_space.n}")
    elif saved_space != action_space:
        differences.append(f"action_space: checkpoint {saved_space}, agent {action_space}")
    shape = [IMAGE_SIZE, IMAGE_SIZE, config.world_model.image_channels]
    if list(saved["image_shape"]) != shape:
        differences.append(f"image_shape: checkpoint {list(saved['image_shape'])}, agent {shape}")
    for field in ARCHITECTURE_FIELDS:
        old = _flatten(field, _lookup(saved_config, field))
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
    differences = architecture_differences(payload, agent.config, agent.action_space)
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

    `overrides` may change non-architecture fields, e.g. {"runtime": {"mode": "compile"}}.
    Returns (agent, extra)."""
    payload = read_checkpoint(path)
    try:
        config = from_mapping(AgentConfig, payload["config"])
        if overrides:
            from .config_schema import override

            config = override(config, overrides)
    except ConfigError as error:
        raise CheckpointError(path, f"its configuration is not valid here ({error})") from None
    agent = Agent(config, device=device, action_space=checkpoint_action_space(payload))
    return agent, restore_checkpoint(agent, path)
