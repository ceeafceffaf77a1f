"""The interface between collectors and whatever chooses actions, plus the random prefill policy.

A policy acts on a batch of N environments at once and carries its own recurrent state (for the
agent: the RSSM state and the last action). Collectors call, once per vector step:

    actions, state = policy.act(image, is_first, state)

`is_first[i]` says that row i shows the first image of a new episode, so the policy must reset
that row's state before acting. Actions are indices into the environment's action set.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """What a collector needs from a policy (docs/architecture.md, "Policy interface").

    num_actions: int            size of the action set the policy acts over
    provenance: dict            written into the store's `policy` attribute
    initial_state(batch_size) -> state
    act(image: uint8 (N, 64, 64, 1), is_first: bool (N,), state) -> (int64 actions (N,), state)

    A policy may also define `seed(value: int)`: collectors call it once per run with a seed
    derived from the run's seed and resume count, so that sampling policies are reproducible.
    """

    num_actions: int
    provenance: dict

    def initial_state(self, batch_size: int) -> Any: ...

    def act(self, image: np.ndarray, is_first: np.ndarray, state: Any) -> tuple[np.ndarray, Any]: ...


class RandomPolicy:
    """Uniform random actions: the paper's prefill policy (50,000 steps before the first update).

    Deterministic given `seed`: the same seed and the same sequence of calls give the same actions.
    It keeps no state; `initial_state` returns None.
    """

    def __init__(self, num_actions: int, seed: int | np.random.SeedSequence | None = 0):
        if int(num_actions) < 1:
            raise ValueError(f"num_actions must be at least 1, got {num_actions}")
        self.num_actions = int(num_actions)
        self.provenance = {"kind": "random"}
        self._rng = np.random.default_rng(seed)

    def initial_state(self, batch_size: int) -> None:
        return None

    def act(self, image: np.ndarray, is_first: np.ndarray, state: Any) -> tuple[np.ndarray, None]:
        actions = self._rng.integers(0, self.num_actions, size=len(image), dtype=np.int64)
        return actions, None

    def __repr__(self) -> str:
        return f"RandomPolicy(num_actions={self.num_actions})"
