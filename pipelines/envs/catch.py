"""Catch: a tiny 64x64 pixel game for the learning test, with the collectors' vector-env interface.

A ball falls from a random column of the top row, one cell per step, and a paddle moves along the
bottom row (actions NOOP, LEFT, RIGHT). When the ball reaches the paddle's row the step's reward
is +1 if the paddle is under it and -1 otherwise; the landed ball stays visible for that step and
the next ball starts `fall` rows up (the top row by default) and at most `fall` columns from the
paddle on the step after, so the paddle can always reach it. An episode is `balls` drops
(`fall + 1` steps each) and ends terminal. `catch-1` is nearly a contextual bandit (one move
decides each ball); the default, a fall of 7 rows, needs the world model to track both objects
for 7 steps of imagination. The board is 8x8 cells of 8x8 pixels, so the smallest agent can
see both objects. A uniform random policy scores well below zero; moving under the ball scores
`balls` every episode. It behaves like `pipelines.envs.atari.VectorAtari` (same `reset`, `step`,
`Step`, `action_set`, hidden SAME_STEP auto-reset), so the real collector, store, sampler and
evaluation run on it unchanged; `registry.vector_env("catch", ...)` returns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dreamer_pipeline.datasets.schema import IMAGE_SHAPE

from .base import Step, checked_actions, environment_seeds

CELLS = 8
CELL = IMAGE_SHAPE[0] // CELLS


@dataclass(frozen=True)
class CatchConfig:
    balls: int = 10  # drops per episode
    fall: int = CELLS - 1  # rows a ball falls before it lands (it appears that far above the paddle)

    def to_dict(self) -> dict[str, Any]:
        return {"balls": self.balls, "fall": self.fall}


class CatchVectorEnv:
    """N Catch games stepped together (see the module docstring)."""

    game = "catch"
    rom_id = "catch"
    action_set = {"full": False, "ids": [0, 1, 2], "meanings": ["NOOP", "LEFT", "RIGHT"]}
    num_actions = 3
    action_space = {"kind": "discrete", "n": 3}
    image_shape = (64, 64, 1)

    def __init__(self, num_envs: int, config: CatchConfig = CatchConfig()):
        if num_envs < 1 or config.balls < 1 or not 1 <= config.fall <= CELLS - 1:
            raise ValueError(f"need at least one environment and one ball, and a fall of 1 to {CELLS - 1} rows; "
                             f"got {num_envs}, {config.balls}, {config.fall}")
        self.num_envs, self.config = num_envs, config
        # the name the pipeline's run layout and eval.json use: "catch" or "catch-N"
        self.game = "catch" if config.fall == CatchConfig.fall else f"catch-{config.fall}"
        self._rng = [np.random.default_rng(0) for _ in range(num_envs)]
        self._ball = np.zeros((num_envs, 2), np.int64)  # (row, column)
        self._paddle = np.zeros(num_envs, np.int64)
        self._drops = np.zeros(num_envs, np.int64)

    def reset(self, seeds: np.ndarray | int) -> np.ndarray:
        seeds = environment_seeds(seeds, self.num_envs)
        for i, seed in enumerate(seeds):
            self._rng[i] = np.random.default_rng(int(seed))
            self._start(i)
        return self._render()

    def step(self, actions: np.ndarray) -> Step:
        actions = checked_actions(actions, self.num_envs, self.num_actions)
        move = np.where(actions == 1, -1, np.where(actions == 2, 1, 0))
        self._paddle = np.clip(self._paddle + move, 0, CELLS - 1)
        landed_before = self._ball[:, 0] == CELLS - 1  # shown on the bottom row last step: a new ball now
        self._ball[:, 0] += 1
        for i in np.flatnonzero(landed_before):
            self._drop(i)
        landed = self._ball[:, 0] == CELLS - 1
        reward = np.where(landed, np.where(self._ball[:, 1] == self._paddle, 1.0, -1.0), 0.0).astype(np.float32)
        self._drops += landed
        terminated = self._drops >= self.config.balls
        image = self._render()
        if not terminated.any():
            return Step(image, reward, terminated, np.zeros(self.num_envs, bool), None)
        last_image = image.copy()
        for i in np.flatnonzero(terminated):
            self._start(i)
        return Step(self._render(), reward, terminated, np.zeros(self.num_envs, bool), last_image)

    def close(self) -> None:
        pass

    def __enter__(self) -> "CatchVectorEnv":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- internals ----
    def _start(self, i: int) -> None:
        self._drops[i] = 0
        self._paddle[i] = self._rng[i].integers(CELLS)
        self._drop(i)

    def _drop(self, i: int) -> None:
        # The ball appears `fall` rows up and at most `fall` columns away: the paddle can always reach it.
        fall = self.config.fall
        low, high = max(0, self._paddle[i] - fall), min(CELLS - 1, self._paddle[i] + fall)
        self._ball[i] = (CELLS - 1 - fall, self._rng[i].integers(low, high + 1))

    def _render(self) -> np.ndarray:
        image = np.zeros((self.num_envs, *IMAGE_SHAPE), np.uint8)
        for i in range(self.num_envs):
            row, column = self._ball[i]
            image[i, row * CELL:(row + 1) * CELL, column * CELL:(column + 1) * CELL] = 255
            paddle = self._paddle[i]
            image[i, (CELLS - 1) * CELL:, paddle * CELL:(paddle + 1) * CELL] = 128
        return image
