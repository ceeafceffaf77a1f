"""The Atari environment protocol of DreamerV2 (Hafner et al. 2021, Atari configuration), on ale-py.

`EnvConfig` holds the paper's settings as defaults. `make_vector_env` builds ale-py's C++
`AtariVectorEnv` with every argument set explicitly, because its defaults are not the paper's: it
clips rewards, stacks 4 frames at 84x84, presses FIRE on reset and has sticky actions off.
`VectorAtari` wraps it for collectors: images come out as `(N, 64, 64, 1)` uint8 (the store's
layout), rewards as raw float32, and the auto-reset is hidden as described in `VectorAtari`.

Game names are the paper's snake_case names (`pipelines/data/atari55.txt`); any other game that
ale-py ships is accepted by its ROM id. `resolve_game` maps both to ale-py's ROM id
(`james_bond` -> `jamesbond`) and raises `UnknownGameError` with close matches otherwise.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from dreamer_pipeline.datasets.schema import IMAGE_SHAPE, IMAGE_SIZE  # the store's (64, 64, 1)

from ..package_data import data_text
from .base import Step, checked_actions, environment_seeds


# The paper's names that differ from ale-py's ROM ids.
_PAPER_TO_ROM = {"james_bond": "jamesbond"}


class UnknownGameError(ValueError):
    """A game name that is neither one of the paper's 55 games nor a ROM that ale-py ships."""


@dataclass(frozen=True)
class EnvConfig:
    """How an Atari game is turned into an environment. Defaults are the paper's protocol.

    Every field is written into each experience store's `env` attribute, and resuming a store
    with different settings is refused, so one store never mixes two protocols.
    """

    sticky_action_probability: float = 0.25
    """With this probability the emulator repeats the previous action on each frame (Machado et
    al. 2018 sticky actions, as in the paper; kept on during evaluation too)."""
    action_repeat: int = 4
    """Frames per agent step ("action repeat 4")."""
    max_pool: bool = True
    """Max-pool each pixel over the last two frames of an agent step (removes Atari flicker)."""
    noop_max: int = 30
    """On reset, a random number of no-op frames ("30 random no-op starts"; 0 turns it off).
    ale-py draws it uniformly from [0, noop_max - 1]; gymnasium's AtariPreprocessing, which the
    published code used, from [1, noop_max]: a shift of one frame, which we accept."""
    image_size: int = IMAGE_SIZE
    """Observations are resized to image_size x image_size (area interpolation). The store's
    format version 1 holds 64x64 images only."""
    grayscale: bool = True
    """Grayscale observations of shape (64, 64, 1). The store's format version 1 holds grayscale."""
    max_episode_steps: int = 27_000
    """Time limit in agent steps (27,000 agent steps = 108,000 frames). Reaching it truncates the
    episode: is_last is set, is_terminal is not. Counted from the first agent step after the
    no-op start."""
    full_action_space: bool = False
    """Use all 18 Atari actions instead of the game's minimal action set (the paper's default)."""
    life_loss_ends_episode: bool = False
    """End the episode when a life is lost. The paper keeps it off: only game over ends it."""
    clip_rewards: bool = False
    """Clip rewards to [-1, 1] in the environment. The paper stores raw rewards (the learner
    squashes them with tanh), so leave this off."""
    fire_reset: bool = False
    """Press FIRE after every reset (a DQN-era trick). The paper does not."""

    def validate(self) -> None:
        if not 0.0 <= self.sticky_action_probability < 1.0:
            raise ValueError(f"sticky_action_probability must be in [0, 1), got {self.sticky_action_probability}")
        if self.action_repeat < 1:
            raise ValueError(f"action_repeat must be at least 1, got {self.action_repeat}")
        if self.noop_max < 0:
            raise ValueError(f"noop_max must be >= 0, got {self.noop_max}")
        if self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be at least 1, got {self.max_episode_steps}")
        if self.image_size != IMAGE_SHAPE[0] or not self.grayscale:
            raise ValueError(
                f"the experience store holds {IMAGE_SHAPE} grayscale images; got image_size={self.image_size}, "
                f"grayscale={self.grayscale}"
            )

    @property
    def max_episode_frames(self) -> int:
        """The time limit in emulator frames, as ale-py counts it."""
        return self.max_episode_steps * self.action_repeat

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Game names


def paper_games() -> list[str]:
    """The paper's 55 games, snake_case, in the paper's order."""
    text = data_text("atari55.txt")
    return [line.strip() for line in text.splitlines() if line.strip()]


def ale_rom_ids() -> list[str]:
    from ale_py import roms

    return list(roms.get_all_rom_ids())


def resolve_game(name: str) -> tuple[str, str]:
    """`(canonical name, ale-py ROM id)` for a game name.

    The canonical name is the paper's snake_case name for its 55 games (`james_bond`), and the
    ROM id for any other game ale-py ships (`adventure`). Case and dashes are forgiven
    (`MsPacman`, `ms-pacman`, `ms_pacman` all work). Raises `UnknownGameError` with close matches.
    """
    paper = paper_games()
    roms = ale_rom_ids()

    def compact(text: str) -> str:
        return text.lower().replace("_", "").replace("-", "").replace(" ", "")

    key = compact(str(name))
    for game in paper:
        if compact(game) == key:
            return game, _PAPER_TO_ROM.get(game, game)
    for rom in roms:
        if compact(rom) == key:
            paper_name = next((g for g, r in _PAPER_TO_ROM.items() if r == rom), rom)
            return paper_name, rom
    known = sorted(set(paper) | set(roms))
    close = difflib.get_close_matches(str(name).lower().replace("-", "_"), known, n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownGameError(
        f"unknown Atari game {name!r}.{hint} Games are the paper's 55 (pipelines/data/atari55.txt) "
        f"or any ROM ale-py {_ale_version()} ships ({len(roms)} of them), in snake_case."
    )


def _ale_version() -> str:
    import ale_py

    return str(ale_py.__version__)


# ---------------------------------------------------------------------------------------------
# Environments


def make_vector_env(
    rom_id: str, num_envs: int, config: EnvConfig, *, num_threads: int | None = None, same_step_reset: bool = True,
    screen: tuple[int, int] | None = None, rgb: bool = False,
):
    """ale-py's `AtariVectorEnv` with the protocol of `config`. Every argument is explicit.

    `same_step_reset=True` uses autoreset mode SAME_STEP: the step that ends an episode returns
    the new episode's first observation and puts the finished episode's last one in
    `info["final_obs"]` (only for the rows that ended). NEXT_STEP (ale-py's default) instead
    returns the last observation, and the following step ignores the action and returns the
    reset observation with reward 0: a step that is not a transition. `VectorAtari` uses
    SAME_STEP, so no vector step is wasted on resets.

    `screen=(height, width)` and `rgb=True` change only the observations (for videos: the full
    210x160 colour screen); the emulator, its seeds and so every transition stay the same.
    """
    from ale_py.vector_env import AtariVectorEnv
    from gymnasium.vector import AutoresetMode

    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    threads = min(num_envs, os.cpu_count() or 1) if num_threads is None else num_threads
    return AtariVectorEnv(
        rom_id,
        num_envs,
        batch_size=0,  # synchronous: every step returns all num_envs rows, in order
        num_threads=threads,
        thread_affinity_offset=-1,
        max_num_frames_per_episode=config.max_episode_frames,
        repeat_action_probability=config.sticky_action_probability,
        full_action_space=config.full_action_space,
        continuous=False,
        continuous_action_threshold=0.5,
        autoreset_mode=AutoresetMode.SAME_STEP if same_step_reset else AutoresetMode.NEXT_STEP,
        img_height=screen[0] if screen else config.image_size,
        img_width=screen[1] if screen else config.image_size,
        grayscale=config.grayscale and not rgb,
        stack_num=1,
        frameskip=config.action_repeat,
        maxpool=config.max_pool,
        noop_max=config.noop_max,
        episodic_life=config.life_loss_ends_episode,
        life_loss_info=False,
        reward_clipping=config.clip_rewards,
        use_fire_reset=config.fire_reset,
    )


def action_set(env, full_action_space: bool) -> dict[str, Any]:
    """The action set of a built vector env, for the store's `action_set` attribute.

    Actions in the store are indices into `ids`; `meanings` are ale-py's names (NOOP, FIRE, ...).
    `full` is how the env was configured, not a guess from the set: Centipede's minimal set holds
    all 18 actions, in order, and is still the minimal set.
    """
    actions = list(env.ale.get_action_set())
    return {
        "full": bool(full_action_space),
        "ids": [int(a.value) for a in actions],
        "meanings": [str(a.name) for a in actions],
    }


class VectorAtari:
    """N Atari games stepped together in C++ threads, with the paper's protocol.

    >>> env = VectorAtari("pong", num_envs=4, config=EnvConfig())
    >>> first_images = env.reset(seeds)          # (4, 64, 64, 1) uint8
    >>> step = env.step(actions)                 # int64 (4,), indices into env.action_set["ids"]

    Auto-reset (SAME_STEP) is hidden: a row whose episode ended gets its last image in
    `step.last_image` and its next episode's first image in `step.image`. The reset is not a
    transition, and no reward or action belongs to it.
    """

    def __init__(self, game: str, num_envs: int, config: EnvConfig = EnvConfig(), *, num_threads: int | None = None):
        config.validate()
        self.game, self.rom_id = resolve_game(game)
        self.config = config
        self.num_envs = num_envs
        self.env = make_vector_env(self.rom_id, num_envs, config, num_threads=num_threads, same_step_reset=True)
        self.action_set = action_set(self.env, config.full_action_space)
        self.num_actions = len(self.action_set["ids"])
        self.action_space = {"kind": "discrete", "n": self.num_actions}  # the store's provenance form
        self.image_shape = IMAGE_SHAPE

    def reset(self, seeds: np.ndarray | int) -> np.ndarray:
        """Reset every environment; `seeds` is one int per environment (or a base seed)."""
        seeds = environment_seeds(seeds, self.num_envs)
        if seeds.min() < 0 or seeds.max() >= 2**31 - 1:  # ale-py takes int32 seeds
            raise ValueError(f"environment seeds must be in [0, 2**31 - 1), got {seeds.tolist()}")
        obs, _ = self.env.reset(seed=seeds)
        return self._images(obs)

    def step(self, actions: np.ndarray) -> Step:
        actions = checked_actions(actions, self.num_envs, self.num_actions)
        obs, reward, terminated, truncated, info = self.env.step(actions.astype(np.int64, copy=False))
        final = info.get("final_obs")
        return Step(
            image=self._images(obs),
            reward=np.asarray(reward, dtype=np.float32),
            terminated=np.asarray(terminated, dtype=bool),
            truncated=np.asarray(truncated, dtype=bool),
            last_image=None if final is None else self._images(final),
        )

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> "VectorAtari":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _images(self, obs: np.ndarray) -> np.ndarray:
        # ale-py returns (N, stack=1, H, W); moving the size-1 axis to the end is a free reshape.
        obs = np.asarray(obs)
        if obs.shape != (self.num_envs, 1, *IMAGE_SHAPE[:2]) or obs.dtype != np.uint8:
            raise RuntimeError(f"ale-py returned observations {obs.dtype} {obs.shape}, expected (N, 1, 64, 64) uint8")
        return obs.reshape(self.num_envs, *IMAGE_SHAPE)
