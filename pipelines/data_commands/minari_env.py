"""What a foreign Minari dataset's actions and environment mean, from its `env_spec` and ale-py.

`datasets/interop/hdf5.py` reads the data; only this side may build an environment, which it does to ask
ale-py for the game's action set (minimal, or all 18 with `full_action_space=True`), so that the
imported store's action indices mean what a run's own stores' indices mean.
"""

from __future__ import annotations

from typing import Any, Mapping

from dreamer_pipeline.datasets.schema import IMAGE_SIZE
from dreamer_pipeline.datasets.interop.minari_spec import ale_game_of, full_action_space_of, parse_env_spec


class ForeignDatasetError(ValueError):
    """A foreign dataset whose environment cannot be identified as an Atari game."""


def ale_identity(metadata: Mapping[str, Any], game: str | None = None) -> dict[str, Any] | None:
    """`{"game", "ale_rom", "action_set", "env_spec"}` of an ALE dataset; None if it names no ALE game.

    `game` overrides the game the env_spec names (for datasets without one).
    """
    from ..envs.atari import EnvConfig, UnknownGameError, VectorAtari

    spec = parse_env_spec(metadata)
    rom = game or ale_game_of(spec)
    if rom is None:
        return None
    full = bool(full_action_space_of(spec))
    try:
        with VectorAtari(rom, 1, EnvConfig(full_action_space=full)) as env:
            return {"game": env.game, "ale_rom": env.rom_id, "action_set": env.action_set, "env_spec": spec}
    except UnknownGameError as error:
        raise ForeignDatasetError(f"the dataset's env_spec names {rom!r}: {error}") from None


def minari_protocol(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """The dataset's environment settings in our EnvConfig's terms, for the store's `env` attribute.

    ALE v5 defaults apply where the spec is silent: frameskip 4 without max-pooling, sticky actions
    0.25, no no-op starts; `max_episode_steps` from the spec (Minari's Atari datasets: 27,000).
    """
    kwargs = dict((spec or {}).get("kwargs") or {})
    frameskip = kwargs.get("frameskip", 4)
    frameskip = int(frameskip) if isinstance(frameskip, (int, float)) else 4  # a (min, max) range: stochastic skip
    max_steps = (spec or {}).get("max_episode_steps") or int(kwargs.get("max_num_frames_per_episode", 108_000)) // frameskip
    return {
        "sticky_action_probability": float(kwargs.get("repeat_action_probability", 0.25)),
        "action_repeat": frameskip,
        "max_pool": False,  # ALE v5's frameskip returns the last frame; AtariPreprocessing would pool
        "noop_max": 0,
        "image_size": IMAGE_SIZE,
        "grayscale": True,
        "max_episode_steps": int(max_steps),
        "full_action_space": bool(kwargs.get("full_action_space", False)),
        "life_loss_ends_episode": False,
        "clip_rewards": False,
        "fire_reset": False,
    }


def foreign_ale_attrs(source) -> dict[str, Any]:
    """`import_minari` keyword arguments for a foreign ALE dataset (`action_set`, `attrs`); {} for
    our own exports (their provenance says everything) and for datasets of no ALE game."""
    from dreamer_pipeline.datasets.interop.hdf5 import read_minari_metadata
    from dreamer_pipeline.datasets.store import ATTRS_KEY

    metadata = read_minari_metadata(source)
    if ATTRS_KEY in metadata:
        return {}
    identity = ale_identity(metadata)
    if identity is None:
        return {}
    return {"action_set": identity["action_set"],
            "attrs": {"game": identity["game"], "ale_rom": identity["ale_rom"], "env": minari_protocol(identity["env_spec"])}}
