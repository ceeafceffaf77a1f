"""Tiny synthetic experience stores for tests: valid, deterministic, written through StoreWriter.

`make_store(path, [30, 12, 50])` writes three episodes. Every image carries its store-global step
index in its first two pixels (`step_id(image)` decodes it), so a test can check exactly which
steps a reader returned. The rest of each image is deterministic noise from `seed`.

Synthetic stores are scratch data: they are written with `fsync=False` (the same writer and files,
without the durability syncs that cost about 25 ms per commit). The commit's fsync order is tested
on its own (tests/attacks/test_attacks_store.py); real collectors in the tests keep fsync on.

Flags: episode i ends in a true terminal state unless i % 3 == 2, which ends at a time limit
(is_last without is_terminal). The first step of each episode holds action 0 and reward 0, as the
store requires. `make_store(..., action_dims=A, channels=3)` writes a continuous, RGB store
(format version 2's other kind: float32 actions uniform in [-1, 1], the zero vector on first steps).
Rewards are sparse: about one step in five gets -1 or +1 (and a few 0.5s), so
returns and nonzero counts are non-trivial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from dreamer_pipeline.datasets.store import StoreWriter

ACTION_MEANINGS = [
    "NOOP", "FIRE", "UP", "RIGHT", "LEFT", "DOWN", "UPRIGHT", "UPLEFT", "DOWNRIGHT",
    "DOWNLEFT", "UPFIRE", "RIGHTFIRE", "LEFTFIRE", "DOWNFIRE", "UPRIGHTFIRE", "UPLEFTFIRE",
    "DOWNRIGHTFIRE", "DOWNLEFTFIRE",
]


def provenance(game: str = "pong", num_actions: int = 6, seed: int = 0, **extra) -> dict:
    """Full provenance attributes as a collector would write them."""
    return {
        "game": game,
        "ale_py_version": "0.12.1",
        "env": {
            "sticky_action_probability": 0.25,
            "action_repeat": 4,
            "max_pool_last_two": True,
            "noop_max": 30,
            "image_size": [64, 64],
            "grayscale": True,
            "time_limit": 27000,
            "terminal_on_life_loss": False,
            "full_action_space": num_actions == 18,
        },
        "action_set": {
            "full": num_actions == 18,
            "ids": list(range(num_actions)),
            "meanings": ACTION_MEANINGS[:num_actions],
        },
        "policy": {"kind": "random"},
        "seed": seed,
        "writer_id": f"test-{game}-{seed}",
        **extra,
    }


def synthetic_episode(
    rng: np.random.Generator, length: int, first_step: int, *, terminal: bool, reward_free: bool, num_actions: int,
    action_dims: int | None = None, channels: int = 1,
) -> dict[str, np.ndarray]:
    steps = np.arange(first_step, first_step + length)
    image = rng.integers(0, 256, size=(length, 64, 64, channels), dtype=np.uint8)
    image[:, 0, 0, 0] = steps % 256
    image[:, 0, 1, 0] = (steps // 256) % 256
    if action_dims is None:
        action = rng.integers(0, num_actions, size=length).astype(np.int32)
    else:
        action = rng.uniform(-1.0, 1.0, size=(length, action_dims)).astype(np.float32)
    action[0] = 0
    is_first = np.zeros(length, bool)
    is_first[0] = True
    is_last = np.zeros(length, bool)
    is_last[-1] = True
    is_terminal = np.zeros(length, bool)
    is_terminal[-1] = terminal
    episode = {"image": image, "action": action, "is_first": is_first, "is_last": is_last, "is_terminal": is_terminal}
    if not reward_free:
        reward = rng.choice(np.array([0.0, 1.0, -1.0, 0.5], np.float32), p=[0.8, 0.09, 0.09, 0.02], size=length)
        reward[0] = 0.0
        episode["reward"] = reward.astype(np.float32)
    return episode


def make_store(
    path: str | Path,
    episode_lengths: Sequence[int],
    *,
    reward_free: bool = False,
    seed: int = 0,
    num_actions: int = 6,
    game: str = "pong",
    chunk_steps: int = 64,
    action_dims: int | None = None,
    channels: int = 1,
    **attrs,
) -> Path:
    """Write a valid store with one episode per entry of `episode_lengths`; return its path.
    `action_dims` makes it continuous (no action set; `game` names the task), `channels` 1 or 3."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    meta = provenance(game, num_actions, seed, **attrs)
    space = None
    if action_dims is not None:
        del meta["action_set"]
        space = {"kind": "continuous", "shape": [action_dims], "low": [-1.0] * action_dims,
                 "high": [1.0] * action_dims}
    with StoreWriter.open(
        path, meta, action_space=space, image_shape=[64, 64, channels], reward_free=reward_free,
        chunk_steps=chunk_steps, fsync=False,
    ) as writer:
        step = 0
        for index, length in enumerate(episode_lengths):
            writer.append_episode(
                synthetic_episode(
                    rng, int(length), step, terminal=index % 3 != 2, reward_free=reward_free, num_actions=num_actions,
                    action_dims=action_dims, channels=channels,
                )
            )
            step += int(length)
    return path


def step_id(image: np.ndarray) -> np.ndarray:
    """The store-global step index written into images by `make_store` (works on any leading shape)."""
    image = np.asarray(image)
    return image[..., 0, 0, 0].astype(np.int64) + 256 * image[..., 0, 1, 0].astype(np.int64)


def assert_one_error(result, *needles):
    """A CLI result that failed with exit code 2 and one `error:` line naming each needle, no traceback."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
