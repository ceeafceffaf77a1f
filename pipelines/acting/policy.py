"""The interface between collectors and whatever chooses actions, plus the random prefill policy.

A policy acts on a batch of N environments at once and carries its own recurrent state (for the
agent: the RSSM state and the last action). Collectors call, once per vector step:

    actions, state = policy.act(image, is_first, state)

`is_first[i]` says that row i shows the first image of a new episode, so the policy must reset
that row's state before acting. Actions are int64 indices into the environment's action set
(discrete) or float32 vectors in the environment's bounds (continuous, the Control Suite).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from dreamer_pipeline.datasets.action_space import ActionSpace


@runtime_checkable
class Policy(Protocol):
    """What a collector needs from a policy (docs/architecture.md, "Policy interface").

    action_space: dict          the space it acts in, as the store records it ({"kind": "discrete",
                                "n": N} or {"kind": "continuous", "shape": [A], ...})
    provenance: dict            written into the store's `policy` attribute
    initial_state(batch_size) -> state
    act(image: uint8 (N, 64, 64, C), is_first: bool (N,), state)
        -> (int64 actions (N,) or float32 actions (N, A), state)

    A policy may also define `seed(value: int)`: collectors call it once per run with a seed
    derived from the run's seed and resume count, so that sampling policies are reproducible.
    """

    action_space: dict
    provenance: dict

    def initial_state(self, batch_size: int) -> Any: ...

    def act(self, image: np.ndarray, is_first: np.ndarray, state: Any) -> tuple[np.ndarray, Any]: ...


def action_space_of(policy) -> ActionSpace:
    """A policy's action space; a policy written before the Control Suite declares only `num_actions`."""
    space = getattr(policy, "action_space", None)
    return ActionSpace.from_dict(space) if space is not None else ActionSpace.discrete(policy.num_actions)


def action_space_mismatch(policy_space, env_space) -> str | None:
    """Why a policy acting in `policy_space` cannot act in an environment with `env_space` (each an
    `ActionSpace` or its dict), or None. The bounds are the environment's business (the agent acts
    in [-1, 1], environments rescale)."""
    policy_space, env_space = ActionSpace.from_dict(policy_space), ActionSpace.from_dict(env_space)

    def describe(space: ActionSpace) -> str:
        return f"{space.n} discrete actions" if space.is_discrete else f"continuous actions of shape {list(space.shape)}"

    same = policy_space.kind == env_space.kind and policy_space.step_shape == env_space.step_shape and (
        policy_space.n == env_space.n)
    return None if same else f"the policy acts with {describe(policy_space)}, the environment takes {describe(env_space)}"


class RandomPolicy:
    """Uniform random actions: the paper's prefill policy (50,000 steps before the first update).

    `RandomPolicy(18)` draws action indices; `RandomPolicy({"kind": "continuous", "shape": [A],
    "low": [...], "high": [...]})` draws vectors uniformly in the bounds (the published code's
    random prefill samples the action space uniformly too).
    Deterministic given `seed`: the same seed and the same sequence of calls give the same actions.
    It keeps no state; `initial_state` returns None.
    """

    def __init__(self, action_space: int | dict, seed: int | np.random.SeedSequence | None = 0):
        space = ActionSpace.discrete(action_space) if isinstance(action_space, int) else ActionSpace.from_dict(action_space)
        if not space.is_discrete:
            self._low = np.asarray(space.low, np.float32)
            self._high = np.asarray(space.high, np.float32)
        self.space = space
        self.action_space = space.to_dict()  # the Policy interface's form: what the store records
        self.provenance = {"kind": "random"}
        self._rng = np.random.default_rng(seed)

    @property
    def num_actions(self) -> int:
        return self.space.n

    def initial_state(self, batch_size: int) -> None:
        return None

    def act(self, image: np.ndarray, is_first: np.ndarray, state: Any) -> tuple[np.ndarray, None]:
        if self.space.is_discrete:
            return self._rng.integers(0, self.num_actions, size=len(image), dtype=np.int64), None
        shape = (len(image), len(self._low))
        return self._rng.uniform(self._low, self._high, size=shape).astype(np.float32), None

    def __repr__(self) -> str:
        return f"RandomPolicy(action_space={self.action_space})"
