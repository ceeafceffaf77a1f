"""What an agent acts over: `n` discrete actions, or a vector of `A` continuous actions in [-1, 1].

    ActionSpace.discrete(18)           {"kind": "discrete", "n": 18}
    ActionSpace.continuous(6)          {"kind": "continuous", "shape": [6], "low": [-1.0, ...], "high": [1.0, ...]}
    ActionSpace.from_dict(store.attrs["dreamer_pipeline"]["action_space"])

The dicts are the stores' provenance format (issue 11's contract); `low` and `high` may be left
out, and default to -1 and 1. The models act in [-1, 1] only (an environment with other bounds
rescales inside its wrapper), so `check_model_bounds` refuses any other bounds. No nn here: any
package may import this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["ActionSpace", "ActionSpaceError"]


class ActionSpaceError(ValueError):
    """An action-space description that is malformed or that the models cannot act in."""


@dataclass(frozen=True)
class ActionSpace:
    kind: str
    """"discrete" or "continuous"."""
    n: int | None = None
    """Discrete only: the number of actions."""
    shape: tuple[int, ...] | None = None
    """Continuous only: (A,)."""
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None

    @classmethod
    def discrete(cls, n: int) -> "ActionSpace":
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ActionSpaceError(f"a discrete action space needs a positive integer n, got {n!r}")
        return cls("discrete", n=n)

    @classmethod
    def continuous(cls, dims: int, low: Any = None, high: Any = None) -> "ActionSpace":
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise ActionSpaceError(f"a continuous action space needs a positive integer size, got {dims!r}")
        low = _bounds("low", low, dims, -1.0)
        high = _bounds("high", high, dims, 1.0)
        crossed = [i for i in range(dims) if not low[i] < high[i]]
        if crossed:
            raise ActionSpaceError(f"continuous action bounds need low < high, not at dimension(s) {crossed}")
        return cls("continuous", shape=(dims,), low=low, high=high)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ActionSpace":
        """The space a provenance dict describes; anything malformed is one `ActionSpaceError`."""
        if not isinstance(data, Mapping):
            raise ActionSpaceError(f"an action space must be a mapping, got {data!r}")
        kind = data.get("kind")
        allowed = {"discrete": {"kind", "n"}, "continuous": {"kind", "shape", "low", "high"}}
        if kind not in allowed:
            raise ActionSpaceError(f"action space kind must be 'discrete' or 'continuous', got {kind!r}")
        unknown = sorted(set(data) - allowed[kind])
        if unknown:
            raise ActionSpaceError(f"unknown key(s) {unknown} in a {kind} action space; allowed: {sorted(allowed[kind])}")
        if kind == "discrete":
            if "n" not in data:
                raise ActionSpaceError("a discrete action space needs 'n'")
            return cls.discrete(data["n"])
        shape = data.get("shape")
        if not isinstance(shape, (list, tuple)) or len(shape) != 1:
            raise ActionSpaceError(f"a continuous action space needs 'shape': [A], got {shape!r}")
        return cls.continuous(shape[0], data.get("low"), data.get("high"))

    def to_dict(self) -> dict[str, Any]:
        if self.is_discrete:
            return {"kind": "discrete", "n": self.n}
        return {"kind": "continuous", "shape": list(self.shape), "low": list(self.low), "high": list(self.high)}

    @property
    def is_discrete(self) -> bool:
        return self.kind == "discrete"

    @property
    def size(self) -> int:
        """Width of the action vector the world model sees: n (one-hot) or A."""
        return self.n if self.is_discrete else self.shape[0]

    def check_model_bounds(self) -> None:
        """The models act in [-1, 1]: any other continuous bounds are an error naming them."""
        if self.is_discrete:
            return
        if any(v != -1.0 for v in self.low) or any(v != 1.0 for v in self.high):
            raise ActionSpaceError(
                f"the agent acts in [-1, 1], but the action space has low {list(self.low)} and high "
                f"{list(self.high)}; rescale the actions inside the environment wrapper")

    def __str__(self) -> str:
        return f"discrete({self.n})" if self.is_discrete else f"continuous({self.shape[0]})"


def _bounds(name: str, value: Any, dims: int, default: float) -> tuple[float, ...]:
    if value is None:
        return (default,) * dims
    if not isinstance(value, (list, tuple)) or len(value) != dims:
        raise ActionSpaceError(f"continuous action bound {name!r} must be a list of {dims} numbers, got {value!r}")
    out = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
            raise ActionSpaceError(f"continuous action bound {name!r} must hold finite numbers, got {value!r}")
        out.append(float(item))
    return tuple(out)
