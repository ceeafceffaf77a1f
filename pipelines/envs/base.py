"""What every vector environment of the pipeline shares (Atari, the Control Suite, Catch): the step
it returns, and the checks on the actions and seeds it is given. The environments' modules import
this one and never each other (registry.py chooses among them).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Step(NamedTuple):
    """One vector step, rows per environment.

    `image` is each row's next observation: for a row that just ended (`terminated | truncated`)
    it is already the first image of its next episode, and that episode's last image is in
    `last_image`. `reward`, `terminated` and `truncated` belong to the transition just taken.
    """

    image: np.ndarray  # uint8 (N, 64, 64, C)
    reward: np.ndarray  # float32 (N,), raw
    terminated: np.ndarray  # bool (N,): a true terminal state (game over)
    truncated: np.ndarray  # bool (N,): the time limit, not terminal
    last_image: np.ndarray | None  # uint8 (N, 64, 64, C), valid on the rows that ended; None if none did


def checked_actions(actions: np.ndarray, num_envs: int, num_actions: int) -> np.ndarray:
    """One integer action in [0, num_actions) per environment, or a ValueError saying what is wrong."""
    actions = np.asarray(actions)
    if actions.shape != (num_envs,) or actions.dtype.kind not in "iu":
        raise ValueError(f"actions must be integers of shape ({num_envs},), got {actions.dtype} {actions.shape}")
    if actions.size and (actions.min() < 0 or actions.max() >= num_actions):
        raise ValueError(f"actions must be in [0, {num_actions}), got {actions}")
    return actions


def environment_seeds(seeds: np.ndarray | int, num_envs: int) -> np.ndarray:
    """One int64 seed per environment: `seeds` as given, or a base seed counted up."""
    if isinstance(seeds, (int, np.integer)):
        seeds = int(seeds) + np.arange(num_envs)
    seeds = np.asarray(seeds, dtype=np.int64)
    if seeds.shape != (num_envs,):
        raise ValueError(f"need {num_envs} seeds, got shape {seeds.shape}")
    return seeds
