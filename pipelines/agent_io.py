"""Building, saving and loading agents for the training stages (a thin layer over models.checkpoint).

Every checkpoint the pipeline writes goes through `save_agent`, which writes atomically and
records where the agent stands in the run (`progress`: iteration, frames, updates, stage).
`load_pretrained_world_model` starts a run from a reward-free pretrained world model: every
world-model weight is copied except the reward head, which the pretrained model may not have
(and, if it has one, never learnt rewards); the reward head, actor and critic learn in the loop.
"""

from __future__ import annotations

import os
from typing import Any, Mapping



class AgentLoadError(ValueError):
    """A checkpoint that does not fit the run (other action count, architecture, or format)."""


def cap_torch_threads(device: str, threads: int | None) -> None:
    """Acting jobs (collectors, evaluation) share the machine with training: on the CPU, torch may
    use the job's own threads only (torch would otherwise take every core)."""
    if threads and str(device).startswith("cpu"):
        import torch

        torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))


def model_action_space(space):
    """The `ActionSpace` of an int n (discrete), a store's or a policy's dict, or an `ActionSpace`."""
    from dreamer_pipeline.datasets.action_space import ActionSpace

    if isinstance(space, int):
        return ActionSpace.discrete(space)
    return ActionSpace.from_dict(space)


def check_image_channels(agent_config, image_shape, where: str = "the data") -> None:
    """The agent's `world_model.image_channels` must match the images it will see."""
    channels = int(image_shape[-1])
    if agent_config.world_model.image_channels != channels:
        raise AgentLoadError(
            f"{where} holds {channels}-channel images ({'RGB' if channels == 3 else 'grayscale'}), but the agent "
            f"expects world_model.image_channels = {agent_config.world_model.image_channels}; choose a preset "
            f"for this suite (dmc_vision for the Control Suite) or set agent.overrides.world_model.image_channels")


def build_agent(agent_config, action_space, device: str, seed: int, image_shape=None):
    """A new agent acting in `action_space` (see `model_action_space`) on images of `image_shape`."""
    from dreamer_pipeline.models.agent import Agent

    if image_shape is not None:
        check_image_channels(agent_config, image_shape)

    return Agent(agent_config, device=device, seed=seed, action_space=model_action_space(action_space))


def save_agent(path: str | os.PathLike, agent, *, pipeline_config: Mapping[str, Any], progress: Mapping[str, Any],
               extra: Mapping[str, Any] | None = None) -> None:
    """Atomically write `agent` with the resolved configuration and the run's progress."""
    from dreamer_pipeline.models import checkpoint as ckpt

    ckpt.save_checkpoint(agent, path, extra={"pipeline_config": dict(pipeline_config), "progress": dict(progress), **(extra or {})})


def load_agent(path: str | os.PathLike, agent_config, device: str, action_space=None):
    """An agent from a checkpoint (weights, optimisers, counters); its architecture must match
    `agent_config`, and its action space the data's `action_space` when given."""
    from dreamer_pipeline.models import checkpoint as ckpt

    payload = read_payload(path)
    saved = ckpt.checkpoint_action_space(payload)
    if action_space is not None:
        wanted = model_action_space(action_space)
        if (saved.kind, saved.n, saved.shape) != (wanted.kind, wanted.n, wanted.shape):
            raise AgentLoadError(f"{path}: the agent acts in {saved}, the data in {wanted}")
    # The run's configuration supplies the hyperparameters; the checkpoint must match its architecture.
    agent = build_agent(agent_config, saved, device, seed=0)
    try:
        extra = ckpt.restore_checkpoint(agent, path)
    except ckpt.CheckpointError as error:
        raise AgentLoadError(str(error)) from None
    return agent, extra


def read_payload(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict (weights_only loading: a checkpoint can never run code)."""
    from dreamer_pipeline.models import checkpoint as ckpt

    try:
        return ckpt.read_checkpoint(path)
    except ckpt.CheckpointError as error:
        raise AgentLoadError(str(error)) from None


def load_pretrained_world_model(agent, path: str | os.PathLike) -> list[str]:
    """Copy a pretrained world model's weights into `agent`, except the reward head. Returns the
    names of the parameters left at their initial values."""
    payload = read_payload(path)
    source = payload["state"]["world_model"]
    target = agent.world_model.state_dict()
    kept = {k: v for k, v in source.items() if not k.startswith("reward_head.")}
    mismatched = [k for k, v in kept.items() if k in target and tuple(target[k].shape) != tuple(v.shape)]
    unknown = [k for k in kept if k not in target]
    if mismatched or unknown:
        raise AgentLoadError(
            f"{path}: the pretrained world model does not fit this agent's architecture "
            f"(different shapes: {mismatched[:5]}, unknown: {unknown[:5]}); pretrain with the same agent preset"
        )
    result = agent.world_model.load_state_dict(kept, strict=False)
    return sorted(result.missing_keys)
