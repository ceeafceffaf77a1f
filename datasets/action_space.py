"""What an agent acts over and a store records: `n` discrete actions, or a vector of `A` continuous
actions inside [low, high]. The one action-space type of the project: datasets, models and
pipelines all use `ActionSpace` (no zarr and no torch here, so `models/` may import it).

    ActionSpace.discrete(18)           {"kind": "discrete", "n": 18}
    ActionSpace.continuous(6)          {"kind": "continuous", "shape": [6], "low": [-1.0, ...], "high": [1.0, ...]}
    ActionSpace.from_dict(store.attrs["dreamer_pipeline"]["action_space"])

The dicts are the stores' provenance format and what checkpoints record (`to_dict`); `low` and
`high` may be left out, and default to -1 and 1. Dicts are untrusted (a store, an HDF5 file or a
checkpoint may be damaged or hostile): `from_dict` accepts only the forms above, with counts and
dimensions below the limits here, and finite bounds (stored as float32); anything else is one
`ActionSpaceError` saying what is wrong. The models act in [-1, 1] only (an environment with other
bounds rescales inside its wrapper), so `check_model_bounds` refuses any other bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .store_error import SchemaError

__all__ = ["ActionSpace", "ActionSpaceError", "MAX_ACTION_DIMS", "MAX_DISCRETE_ACTIONS"]

# Limits on what attributes may claim (generous: Atari has 18 actions, the Control Suite at most 38
# action dimensions with dog, 56 with CMU humanoid), so that a hostile or mistyped attribute is one
# clear error rather than a giant allocation.
MAX_DISCRETE_ACTIONS = 1 << 16
MAX_ACTION_DIMS = 256


class ActionSpaceError(SchemaError):
    """An action-space description that is malformed or that the models cannot act in."""


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class ActionSpace:
    """`discrete` (n actions, stored as int32 indices, one-hot to the models) or `continuous`
    (vectors of `dims` float32 components inside [low, high])."""

    kind: str
    n: int | None = None  # discrete; None only in `any_discrete()` (episodes checked without a store)
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @classmethod
    def discrete(cls, n: int) -> "ActionSpace":
        if not _is_int(n) or not 1 <= n <= MAX_DISCRETE_ACTIONS:
            raise ActionSpaceError(f"a discrete action space needs an integer n from 1 to {MAX_DISCRETE_ACTIONS}, "
                                   f"got {n!r}")
        return cls("discrete", int(n))

    @classmethod
    def any_discrete(cls) -> "ActionSpace":
        """Discrete with an unknown count: any non-negative index (episodes checked without a store)."""
        return cls("discrete", None)

    @classmethod
    def continuous(cls, dims: int, low: Any = -1.0, high: Any = 1.0) -> "ActionSpace":
        """`low` and `high`: one number for every dimension, or a list of `dims` numbers."""
        if not _is_int(dims) or not 1 <= dims <= MAX_ACTION_DIMS:
            raise ActionSpaceError(f"a continuous action space needs a size from 1 to {MAX_ACTION_DIMS}, got {dims!r}")
        dims = int(dims)
        low = _bounds([low] * dims if _is_number(low) else low, "low", dims)
        high = _bounds([high] * dims if _is_number(high) else high, "high", dims)
        if any(lo >= hi for lo, hi in zip(low, high)):
            raise ActionSpaceError(f"continuous action_space has low {list(low)} not below high {list(high)} "
                                   "in every dimension")
        return cls("continuous", None, low, high)

    @classmethod
    def from_dict(cls, value: Any) -> "ActionSpace":
        """Parse an `action_space` dict (or anything with a `to_dict()`)."""
        if isinstance(value, ActionSpace):
            return value
        if not isinstance(value, Mapping) and callable(getattr(value, "to_dict", None)):
            value = value.to_dict()
        if not isinstance(value, Mapping):
            raise ActionSpaceError(f"action_space is {_short(value)}, not an object with a 'kind'")
        kind = value.get("kind")
        if kind == "discrete":
            _only_keys(value, {"kind", "n"})
            n = value.get("n")
            if not _is_int(n) or not 1 <= n <= MAX_DISCRETE_ACTIONS:
                raise ActionSpaceError(f"discrete action_space has n={_short(n)}; expected an integer from 1 to "
                                       f"{MAX_DISCRETE_ACTIONS}")
            return cls.discrete(int(n))
        if kind == "continuous":
            _only_keys(value, {"kind", "shape", "low", "high"})
            shape = value.get("shape")
            if not isinstance(shape, (list, tuple)) or len(shape) != 1 or not _is_int(shape[0]) \
                    or not 1 <= shape[0] <= MAX_ACTION_DIMS:
                raise ActionSpaceError(f"continuous action_space has shape {_short(shape)}; expected [A] with A an "
                                       f"integer from 1 to {MAX_ACTION_DIMS}")
            dims = int(shape[0])
            return cls.continuous(dims, value.get("low", [-1.0] * dims), value.get("high", [1.0] * dims))
        raise ActionSpaceError(f"action_space has kind {_short(kind)}; expected 'discrete' or 'continuous'")

    def to_dict(self) -> dict[str, Any]:
        if self.is_discrete:
            return {"kind": "discrete", "n": self.n}
        return {"kind": "continuous", "shape": [len(self.low)], "low": list(self.low), "high": list(self.high)}

    @property
    def is_discrete(self) -> bool:
        return self.kind == "discrete"

    @property
    def dims(self) -> int | None:
        """A, the length of a continuous action vector (None for discrete)."""
        return None if self.is_discrete else len(self.low)

    @property
    def shape(self) -> tuple[int, ...] | None:
        """(A,) for continuous, None for discrete."""
        return None if self.is_discrete else (len(self.low),)

    @property
    def size(self) -> int:
        """Width of the action vector the world model sees: n (one-hot) or A."""
        return self.n if self.is_discrete else len(self.low)

    @property
    def step_shape(self) -> tuple[int, ...]:
        """The stored shape of one step's action: () for an index, (A,) for a vector."""
        return () if self.is_discrete else (len(self.low),)

    @property
    def dtype(self) -> np.dtype:
        """The stored dtype; batches use `batch_dtype` (int64 indices, float32 vectors)."""
        return np.dtype(np.int32) if self.is_discrete else np.dtype(np.float32)

    @property
    def batch_dtype(self) -> np.dtype:
        return np.dtype(np.int64) if self.is_discrete else np.dtype(np.float32)

    def check_model_bounds(self) -> None:
        """The models act in [-1, 1]: any other continuous bounds are an error naming them."""
        if self.is_discrete:
            return
        if any(v != -1.0 for v in self.low) or any(v != 1.0 for v in self.high):
            raise ActionSpaceError(
                f"the agent acts in [-1, 1], but the action space has low {list(self.low)} and high "
                f"{list(self.high)}; rescale the actions inside the environment wrapper")

    def __str__(self) -> str:
        if self.is_discrete:
            return f"discrete({self.n})"
        bounds = ("[-1, 1]" if set(self.low) == {-1.0} and set(self.high) == {1.0}
                  else f"[{list(self.low)}, {list(self.high)}]")
        return f"continuous({len(self.low)}, {bounds})"

    def action_problem(self, action: np.ndarray, first: np.ndarray) -> str | None:
        """What is wrong with stored actions (`first` marks episodes' first steps, which hold the
        placeholder 0); None when they all lie inside the space."""
        action = np.asarray(action)
        if self.is_discrete:
            if action.size and action.min() < 0:
                return "holds negative action indices"
            if self.n is not None and action.size and action.max() >= self.n:
                return f"holds action index {int(action.max())}, but the store's action set has {self.n} actions"
            return None
        bad = ~np.isfinite(action).all(axis=1)
        if bad.any():
            return f"holds {int(bad.sum())} non-finite action vectors (NaN or inf), first at step {int(np.argmax(bad))}"
        low, high = np.asarray(self.low, np.float32), np.asarray(self.high, np.float32)
        outside = ((action < low) | (action > high)).any(axis=1) & ~first
        if outside.any():
            step = int(np.argmax(outside))
            return (f"holds {int(outside.sum())} action vectors outside the bounds [low, high] = "
                    f"[{list(self.low)}, {list(self.high)}], first at step {step}: {action[step].tolist()}")
        return None


def _only_keys(value: Mapping, allowed: set[str]) -> None:
    unknown = sorted(str(key) for key in value if key not in allowed)
    if unknown:
        raise ActionSpaceError(f"{value.get('kind')} action_space has unknown keys {unknown}; "
                               f"allowed: {sorted(allowed)}")


def _bounds(value: Any, name: str, dims: int) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != dims or not all(_is_number(v) for v in value):
        raise ActionSpaceError(f"continuous action_space has {name}={_short(value)}; expected a list of {dims} numbers")
    bounds = tuple(float(np.float32(v)) for v in value)
    if not all(np.isfinite(bounds)):
        raise ActionSpaceError(f"continuous action_space has {name}={_short(value)}; the bounds must be finite numbers")
    return bounds
