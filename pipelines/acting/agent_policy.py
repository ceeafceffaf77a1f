"""The trained actor as a collector policy (the Policy protocol of `pipelines.acting.policy`).

    policy = load_agent_policy("results/runs/.../iter0003/actor_critic.pt", mode="sample", device="cpu")
    state = policy.initial_state(num_envs)
    actions, state = policy.act(image, is_first, state)   # uint8 (N, 64, 64, C), bool (N,) -> int64 (N,) or float32 (N, A)

The state carries, per environment row, the RSSM posterior state and the last action (as the
published `Agent.policy`); rows whose `is_first` is set start again from the zero state.
`mode="sample"` samples the actor (training collection), `mode="greedy"` takes its mode (the
paper's evaluation).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamer_pipeline.models.agent import Agent, PolicyState
from dreamer_pipeline.datasets.durable import file_sha256
from dreamer_pipeline.models.checkpoint import load_checkpoint

MODES = ("sample", "greedy")


class AgentPolicy:
    """Acts with `agent`'s encoder, RSSM and actor on batches of environments."""

    def __init__(self, agent: Agent, mode: str = "sample", provenance: dict | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.agent = agent
        self.mode = mode
        self.action_space = agent.action_space.to_dict()
        self.provenance = dict(provenance) if provenance is not None else {"kind": "agent"}

    def seed(self, value: int) -> None:
        """Seed the agent's sampling generator (latent and action samples)."""
        self.agent.generator.manual_seed(int(value))

    def initial_state(self, batch_size: int) -> PolicyState:
        return self.agent.initial_policy_state(batch_size)

    def act(self, image: np.ndarray, is_first: np.ndarray, state: Any) -> tuple[np.ndarray, PolicyState]:
        image = np.asarray(image)
        is_first = np.asarray(is_first, dtype=bool)
        if image.ndim != 4 or len(is_first) != len(image):
            raise ValueError(f"act expects image (N, 64, 64, C) and is_first (N,), got {image.shape} and {is_first.shape}")
        if state is None:
            state = self.initial_state(len(image))
        actions, state = self.agent.policy_step(image, is_first, state, mode=self.mode)
        actions = actions.cpu().numpy()
        return (actions.astype(np.int64) if self.agent.action_space.is_discrete else actions.astype(np.float32)), state

    @property
    def num_actions(self) -> int:
        return self.agent.num_actions  # discrete agents only

    def __repr__(self) -> str:
        return f"AgentPolicy(mode={self.mode!r}, action_space={self.agent.action_space}, provenance={self.provenance})"


def load_agent_policy(checkpoint_path: str | os.PathLike, mode: str = "sample",
                      device: str | torch.device = "cpu") -> AgentPolicy:
    """An AgentPolicy from a `models.checkpoint` file, with provenance
    {"kind": "checkpoint", "path", "sha256", "iteration"} for the store's `policy` attribute.

    The iteration comes from the checkpoint's `extra.progress.iteration` (or `extra.iteration`)
    when the pipeline recorded one, else None."""
    path = Path(checkpoint_path)
    sha256 = file_sha256(path) if path.is_file() else None
    agent, extra = load_checkpoint(path, device=device)  # a missing file is a CheckpointError
    progress = extra.get("progress") if isinstance(extra.get("progress"), dict) else {}
    iteration = progress.get("iteration", extra.get("iteration"))
    provenance = {
        "kind": "checkpoint",
        "path": str(path),
        "sha256": sha256,
        "iteration": int(iteration) if iteration is not None else None,
    }
    return AgentPolicy(agent, mode=mode, provenance=provenance)
