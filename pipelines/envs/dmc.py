"""The DeepMind Control Suite from pixels, with DreamerV2's published `dmc_vision` protocol, on dm_control.

The protocol (danijar/dreamerv2, `common/envs.py` class `DMC` and the `dmc` configuration):
- action repeat 2, the rewards of the repeated frames summed;
- 64x64 RGB images rendered from the domain's standard camera (camera 0; quadruped's is 2);
- episodes of 1,000 environment frames (500 agent steps) that end in truncation, never in a
  terminal state (the Control Suite's time limit: the published code stores discount 1);
- actions in [-1, 1]^A (every Control Suite task's own bounds).

`VectorDMC` has the interface of `VectorAtari` (`reset`, `step` returning the same `Step`, the
hidden auto-reset, `game`, `num_envs`, `close`, context manager) plus `action_space`, the
store's dict `{"kind": "continuous", "shape": [A], "low": [...], "high": [...]}`. The N
environments are stepped one after the other in this process.

Rendering needs an OpenGL backend without a display. dm_control reads `MUJOCO_GL` when it is
first imported; unless the user has set it, this module sets it to `egl` (Mesa's software
renderer on a machine without a GPU, the GPU where there is one). `osmesa` works too.
Task names are `domain_task` (`walker_walk`); `cup_catch` is accepted for `ball_in_cup_catch`,
the published curves' name.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from dreamer_pipeline.datasets.schema import IMAGE_SIZE

from .base import Step, environment_seeds

os.environ.setdefault("MUJOCO_GL", "egl")  # before dm_control is imported; a user's choice wins

STANDARD_CAMERAS = {"quadruped": 2}  # every other domain: camera 0 (the published choice)
SHORT_DOMAINS = {"ball_in_cup": "cup"}  # the published curves' names (`cup_catch`)
ACTION_ROUNDING = 1e-4
"""Actions at most this far outside [-1, 1] are clipped (float rounding in a policy's squashing);
farther ones are refused."""

_INSTALL_HINT = (
    "pip install 'dreamer-pipeline[dmc]' (dm_control with a matching mujoco), and for headless "
    "rendering the system's EGL (Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri) "
    "or OSMesa (apt-get install libosmesa6 and MUJOCO_GL=osmesa)"
)


class UnknownTaskError(ValueError):
    """A task name that is not one of the Control Suite's `domain_task` names."""


class ControlSuiteUnavailableError(RuntimeError):
    """dm_control is not installed, or it cannot render (no headless OpenGL)."""


@dataclass(frozen=True)
class DMCConfig:
    """How a Control Suite task is turned into an environment. Defaults are the published protocol."""

    action_repeat: int = 2
    """Environment frames per agent step; the step's reward is the sum over them."""
    max_episode_steps: int = 500
    """Episode length in agent steps (500 x 2 = 1,000 frames, the Control Suite's own time limit
    for every benchmark task). Reaching it truncates the episode: never terminal."""
    image_size: int = IMAGE_SIZE
    """Images are rendered at image_size x image_size RGB. The store holds 64x64."""
    camera: int | None = None
    """The camera id; None is the domain's standard camera (quadruped 2, every other domain 0)."""

    def validate(self) -> None:
        if self.action_repeat < 1:
            raise ValueError(f"action_repeat must be at least 1, got {self.action_repeat}")
        if self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be at least 1, got {self.max_episode_steps}")
        if self.image_size != IMAGE_SIZE:
            raise ValueError(f"the experience store holds {IMAGE_SIZE}x{IMAGE_SIZE} images, got image_size={self.image_size}")
        if self.camera is not None and self.camera < 0:
            raise ValueError(f"camera must be a camera id >= 0 or None (the domain's standard camera), got {self.camera}")

    @property
    def max_episode_frames(self) -> int:
        return self.max_episode_steps * self.action_repeat

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _suite():
    """dm_control's suite module, or one clear error saying what to install."""
    try:
        from dm_control import suite
    except ModuleNotFoundError as error:
        raise ControlSuiteUnavailableError(f"the Control Suite needs dm_control ({error}): {_INSTALL_HINT}") from error
    except Exception as error:  # noqa: BLE001 - importing loads the GL backend, which fails in many ways
        # Seen: AttributeError from PyOpenGL when libOSMesa is missing, AttributeError from dm_control
        # against mujoco 4 (MjModel has no flex_vertedge), RuntimeError for an unknown MUJOCO_GL.
        raise ControlSuiteUnavailableError(
            f"dm_control cannot be imported with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} "
            f"({type(error).__name__}: {error}): {_INSTALL_HINT}"
        ) from error
    return suite


def resolve_task(name: str) -> tuple[str, str, str]:
    """`(canonical name, domain, task)` for a `domain_task` name.

    Case and dashes are forgiven (`Walker-Walk`); `cup_catch` and `ball_in_cup_catch` both name
    `("cup_catch", "ball_in_cup", "catch")`. Raises `UnknownTaskError` with close matches.
    """
    suite = _suite()
    key = str(name).strip().lower().replace("-", "_")
    known = {}
    for domain, task in suite.ALL_TASKS:
        canonical = f"{SHORT_DOMAINS.get(domain, domain)}_{task}".lower()
        known[canonical] = (canonical, domain, task)
        known[f"{domain}_{task}".lower()] = (canonical, domain, task)
    if key in known:
        return known[key]
    close = difflib.get_close_matches(key, sorted(known), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownTaskError(
        f"unknown Control Suite task {name!r}.{hint} Tasks are named domain_task (walker_walk, "
        f"cartpole_swingup, cup_catch); dm_control ships {len(suite.ALL_TASKS)} of them."
    )


def checked_continuous_actions(actions: np.ndarray, num_envs: int, action_dim: int) -> np.ndarray:
    """float64 actions of shape (num_envs, action_dim) in [-1, 1], or a ValueError saying what is wrong.

    Values at most `ACTION_ROUNDING` outside [-1, 1] are clipped; farther ones are refused, as are
    non-finite values, integers and the wrong shape.
    """
    actions = np.asarray(actions)
    if actions.shape != (num_envs, action_dim) or actions.dtype.kind != "f":
        raise ValueError(
            f"actions must be floats of shape ({num_envs}, {action_dim}), got {actions.dtype} {actions.shape}"
        )
    if not np.isfinite(actions).all():
        rows = np.flatnonzero(~np.isfinite(actions).all(axis=1)).tolist()
        raise ValueError(f"actions must be finite; rows {rows} are not: {actions[rows].tolist()}")
    outside = np.abs(actions) > 1.0 + ACTION_ROUNDING
    if outside.any():
        rows = np.flatnonzero(outside.any(axis=1)).tolist()
        raise ValueError(f"actions must be in [-1, 1]; rows {rows} are not: {actions[rows].tolist()}")
    return np.clip(actions.astype(np.float64), -1.0, 1.0)


class VectorDMC:
    """N Control Suite environments stepped one after the other, with the published protocol.

    >>> env = VectorDMC("walker_walk", num_envs=4)
    >>> first_images = env.reset(seeds)          # (4, 64, 64, 3) uint8
    >>> step = env.step(actions)                 # float32 (4, 6) in [-1, 1]

    The auto-reset is hidden as in `VectorAtari`: a row whose episode ended gets its last image
    in `step.last_image` and its next episode's first image in `step.image`. The reset is not a
    transition, and no reward or action belongs to it. Each environment's episodes are drawn from
    its own random state, seeded by `reset(seeds)` and carried on over its auto-resets.
    """

    def __init__(self, task: str, num_envs: int, config: DMCConfig = DMCConfig()):
        config.validate()
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.game, self.domain, self.task = resolve_task(task)
        self.config = config
        self.num_envs = num_envs
        self.camera = STANDARD_CAMERAS.get(self.domain, 0) if config.camera is None else config.camera
        self._envs = [self._load(seed) for seed in range(num_envs)]  # reset(seeds) seeds them again
        spec = self._envs[0].action_spec()
        self.action_dim = int(spec.shape[0])
        self._low, self._high = np.asarray(spec.minimum, np.float64), np.asarray(spec.maximum, np.float64)
        if spec.shape != (self.action_dim,) or not (np.isfinite(self._low).all() and np.isfinite(self._high).all()):
            raise ValueError(f"{self.game}: the action spec {spec} is not a bounded vector")
        self._rescale = not ((self._low == -1.0).all() and (self._high == 1.0).all())  # no suite task needs it
        self.image_shape = (self.config.image_size, self.config.image_size, 3)
        self.action_space = {
            "kind": "continuous", "shape": [self.action_dim],
            "low": [-1.0] * self.action_dim, "high": [1.0] * self.action_dim,
        }
        self._steps = np.zeros(num_envs, np.int64)
        self._needs_reset = True
        self._render_first()

    # ---- the vector-env interface ----
    def reset(self, seeds: np.ndarray | int) -> np.ndarray:
        """Reset every environment; `seeds` is one int per environment (or a base seed)."""
        seeds = environment_seeds(seeds, self.num_envs)
        if seeds.min() < 0 or seeds.max() >= 2**32:  # numpy's RandomState, which dm_control's tasks draw from
            raise ValueError(f"environment seeds must be in [0, 2**32), got {seeds.tolist()}")
        if not self._envs:
            raise RuntimeError(f"{self.game}: the environments are closed")
        for env, seed in zip(self._envs, seeds):
            env.task.random.seed(int(seed))  # in place: the same stream as a task built with random=seed
            env.reset()
        self._steps[:] = 0
        self._needs_reset = False
        return np.stack([self._render(i) for i in range(self.num_envs)])

    def step(self, actions: np.ndarray) -> Step:
        if self._needs_reset or not self._envs:
            raise RuntimeError(f"{self.game}: call reset(seeds) before step(), and not after close()")
        actions = checked_continuous_actions(actions, self.num_envs, self.action_dim)
        if self._rescale:
            actions = self._low + (actions + 1.0) / 2.0 * (self._high - self._low)
        n = self.num_envs
        image = np.empty((n, self.config.image_size, self.config.image_size, 3), np.uint8)
        reward = np.zeros(n, np.float32)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        last_image = None
        for i, env in enumerate(self._envs):
            total = 0.0
            for _ in range(self.config.action_repeat):
                time_step = env.step(actions[i])
                total += time_step.reward or 0.0
                if time_step.last():
                    break
            reward[i] = total
            self._steps[i] += 1
            # The time limit is ours (dm_control's is off), so a LAST step here is the task's own end:
            # terminal when its discount is 0 (no benchmark task has one), a truncation otherwise.
            terminated[i] = time_step.last() and time_step.discount == 0
            truncated[i] = not terminated[i] and (time_step.last() or self._steps[i] >= self.config.max_episode_steps)
            image[i] = self._render(i)
            if terminated[i] or truncated[i]:
                if last_image is None:
                    last_image = np.zeros_like(image)
                last_image[i] = image[i]
                env.reset()
                self._steps[i] = 0
                image[i] = self._render(i)
        return Step(image=image, reward=reward, terminated=terminated, truncated=truncated, last_image=last_image)

    def close(self) -> None:
        for env in self._envs:
            env.close()
            env.physics.free()  # the rendering context and its buffers
        self._envs = []

    def __enter__(self) -> "VectorDMC":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- internals ----
    def _load(self, seed: int):
        # time_limit=inf: the episode length is counted here (max_episode_steps), so that a
        # shorter limit (tests) or another action repeat still ends in a truncation.
        return _suite().load(self.domain, self.task, task_kwargs={"random": seed, "time_limit": float("inf")})

    def _render(self, i: int) -> np.ndarray:
        size = self.config.image_size
        return self._envs[i].physics.render(height=size, width=size, camera_id=self.camera)

    def _render_first(self) -> None:
        """Render once now, so that a missing OpenGL fails here with one clear error, not mid-collection."""
        try:
            self._envs[0].reset()
            image = self._render(0)
        except Exception as error:  # the backends fail in many ways (AttributeError, RuntimeError, GL errors)
            raise ControlSuiteUnavailableError(
                f"dm_control cannot render {self.game} with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} "
                f"({type(error).__name__}: {error}): {_INSTALL_HINT}"
            ) from error
        if image.shape != (self.config.image_size, self.config.image_size, 3) or image.dtype != np.uint8:
            raise RuntimeError(f"dm_control rendered {image.dtype} {image.shape}, expected ({IMAGE_SIZE}, {IMAGE_SIZE}, 3) uint8")
