"""Minari's conventions that the HDF5 export and import follow (minari 0.5.4, `datasets/interop/hdf5.py`).

- **Version.** Exports say `minari_version: "0.5.4"`: minari 0.5.2 lists supported dataset
  versions only up to 0.5.2, and 0.5.3 decodes every uint8 image space as JPEG, so 0.5.4 is the
  first release that loads our raw frames; `pyproject.toml` pins `minari>=0.5.4`.
- **`env_spec`.** The gymnasium `EnvSpec` (JSON) of the environment that made the data, so
  `MinariDataset.recover_environment()` rebuilds it: `ALE/<Game>-v5` with our protocol, namely
  `frameskip=1` and sticky actions in ale-py's env, and gymnasium's `AtariPreprocessing` (4-frame
  skip with max-pooling, 64x64 grayscale, no-op starts) as an additional wrapper. That wrapper
  resizes with OpenCV: recovering the environment needs `opencv-python(-headless)`.
- **`jpeg_encoding`.** Minari >= 0.5.3 reads a missing key as true for image observation spaces
  (uint8 Box, 0..255, at least 32x32). Datasets written by earlier Minari releases, which had no
  JPEG encoding, are read as raw. The observations' layout must agree with the flag.
- **Action sets.** A Discrete action index means an entry of the environment's action set: the
  game's minimal set unless `env_spec` says `full_action_space=True`. The action count alone
  cannot tell (Centipede's minimal set has all 18 actions).
- **Spaces.** Minari serialises gymnasium spaces as JSON (`minari.serialization.serialize_space`):
  `{"type": "Discrete", "dtype": "int64", "start": 0, "n": N}`, and `{"type": "Box", "dtype":
  "float32", "shape": [A], "low": [...], "high": [...]}` for a continuous action space (a store's
  `action_space`) or the uint8 image observations (`image_shape`, bounds 0 and 255 per element).
  A Control Suite store has no `env_spec` (gymnasium has no registered dm_control environment), so
  `recover_environment()` cannot rebuild it; the data loads.
"""

from __future__ import annotations

import io
import json
from typing import Any, Mapping

import numpy as np

from ..schema import IMAGE_SIZE

MINARI_VERSION = "0.5.4"  # the first Minari release that reads our export (see the module doc)
JPEG_DEFAULT_SINCE = (0, 5, 3)  # Minari releases from here on read a missing jpeg_encoding as true


class MinariSpecError(ValueError):
    """Metadata that contradicts the data, or cannot say what the data means."""


# -- env_spec -----------------------------------------------------------------------------------


def action_space_json(space: Any) -> str:
    """Minari's serialisation of a store's action space (`action_space.ActionSpace`): Discrete or Box."""
    if space.is_discrete:
        return json.dumps({"type": "Discrete", "dtype": "int64", "start": 0, "n": int(space.n)})
    return json.dumps({"type": "Box", "dtype": "float32", "shape": [space.dims], "low": list(space.low),
                       "high": list(space.high)})


def observation_space_json(image_shape: tuple[int, ...]) -> str:
    """Minari's serialisation of the uint8 image observations (a Box from 0 to 255)."""
    return json.dumps({"type": "Box", "dtype": "uint8", "shape": list(image_shape),
                       "low": np.zeros(image_shape, int).tolist(), "high": np.full(image_shape, 255).tolist()})


def ale_env_id(rom: str) -> str:
    """ale-py's gymnasium id of a ROM: `ms_pacman` -> `ALE/MsPacman-v5`."""
    return "ALE/" + "".join(word.capitalize() for word in rom.split("_")) + "-v5"


def env_spec_json(attrs: Mapping[str, Any]) -> str | None:
    """The gymnasium EnvSpec (as Minari stores it) of a store's environment; None if unknown.

    `attrs` are a store's provenance: `ale_rom` (or `game`) and `env` (EnvConfig's fields).
    """
    env = attrs.get("env") or {}
    rom = attrs.get("ale_rom") or attrs.get("game")
    if not rom or not env or "sticky_action_probability" not in env:
        return None
    from gymnasium.envs.registration import EnvSpec, WrapperSpec

    action_repeat = int(env.get("action_repeat", 4))
    size = env.get("image_size", IMAGE_SIZE)
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    spec = EnvSpec(
        id=ale_env_id(str(rom)),
        entry_point="ale_py.env:AtariEnv",
        kwargs={
            "game": str(rom), "obs_type": "rgb", "frameskip": 1,
            "repeat_action_probability": float(env["sticky_action_probability"]),
            "full_action_space": bool(env.get("full_action_space", False)),
            "max_num_frames_per_episode": int(env.get("max_episode_steps", 27_000)) * action_repeat,
        },
        additional_wrappers=(
            WrapperSpec(
                name="AtariPreprocessing",
                entry_point="gymnasium.wrappers.atari_preprocessing:AtariPreprocessing",
                kwargs={
                    "noop_max": int(env.get("noop_max", 30)), "frame_skip": action_repeat,
                    "screen_size": size,
                    "terminal_on_life_loss": bool(env.get("life_loss_ends_episode", False)),
                    "grayscale_obs": True, "grayscale_newaxis": True, "scale_obs": False,
                },
            ),
        ),
    )
    return spec.to_json()


def parse_env_spec(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """`metadata["env_spec"]` as a plain dict (id, kwargs, ...), or None when there is none."""
    raw = metadata.get("env_spec")
    if not raw:
        return None
    try:
        spec = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise MinariSpecError(f"env_spec is not valid JSON ({error})") from None
    if not isinstance(spec, dict) or "id" not in spec:
        raise MinariSpecError("env_spec has no environment id")
    return spec


def ale_game_of(spec: Mapping[str, Any] | None) -> str | None:
    """The ALE ROM id an ALE env spec names (`kwargs.game`, else from `ALE/<Name>-v5`), or None."""
    if not spec:
        return None
    kwargs = spec.get("kwargs") or {}
    if kwargs.get("game"):
        return str(kwargs["game"])
    env_id = str(spec.get("id", ""))
    if env_id.startswith("ALE/"):
        name = env_id[4:].rsplit("-v", 1)[0]
        return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
    return None


def full_action_space_of(spec: Mapping[str, Any] | None) -> bool | None:
    """Whether an ALE env spec uses all 18 actions (ALE's default: the minimal set); None if unknown."""
    if not spec:
        return None
    kwargs = spec.get("kwargs") or {}
    if "full_action_space" in kwargs:
        return bool(kwargs["full_action_space"])
    return False if str(spec.get("id", "")).startswith("ALE/") else None


# -- observations ---------------------------------------------------------------------------------


def is_image_space(space: Mapping[str, Any]) -> bool:
    """Minari's test (minari_storage.is_image_space) on a serialised Box space."""
    shape = space.get("shape") or []
    return (
        space.get("type") == "Box" and len(shape) in (2, 3) and shape[0] >= 32 and shape[1] >= 32
        and space.get("dtype") == "uint8" and bool(np.all(np.asarray(space.get("low", 0)) == 0))
        and bool(np.all(np.asarray(space.get("high", 255)) == 255))
    )


def observation_space(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = metadata.get("observation_space")
    if raw is None:
        return None
    try:
        return json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (json.JSONDecodeError, TypeError, ValueError):
        raise MinariSpecError("observation_space is not valid JSON") from None


def jpeg_encoded(metadata: Mapping[str, Any]) -> bool:
    """Whether Minari would decode this dataset's observations as JPEG (see the module doc)."""
    space = observation_space(metadata)
    if space is None or not is_image_space(space):
        return False
    flag = metadata.get("jpeg_encoding")
    if flag is not None:
        return bool(flag)
    return _version(metadata.get("minari_version")) >= JPEG_DEFAULT_SINCE


def _version(text: Any) -> tuple[int, ...]:
    """'0.5.2' -> (0, 5, 2); a missing or odd version counts as current (Minari's own default)."""
    try:
        return tuple(int(part) for part in str(text).split(".")[:3])
    except ValueError:
        return JPEG_DEFAULT_SINCE


def read_observations(dataset, jpeg: bool, where: str) -> np.ndarray:
    """An episode's `observations` HDF5 dataset as uint8 frames, decoding JPEG if `jpeg`."""
    raw = dataset[()]
    # Minari writes JPEG bytes as variable-length uint8 (object), or as (N, bytes) when all are equally long.
    encoded = raw.dtype == object or raw.ndim == 2
    if jpeg and not encoded:
        raise MinariSpecError(f"{where}: metadata says JPEG-encoded (jpeg_encoding, or Minari's default for "
                              f"image spaces), but the observations are raw {raw.dtype} {raw.shape} frames; "
                              "set \"jpeg_encoding\": false in metadata.json if they are raw")
    if not jpeg:
        if raw.dtype == object:
            raise MinariSpecError(f"{where}: observations hold encoded bytes, but jpeg_encoding is false")
        return raw
    from PIL import Image

    frames = []
    for index, item in enumerate(raw):
        try:
            frames.append(np.asarray(Image.open(io.BytesIO(np.asarray(item, np.uint8).tobytes())), dtype=np.uint8))
        except Exception as error:  # noqa: BLE001 - PIL raises several types for bad data
            raise MinariSpecError(f"{where}: observation {index} is not a readable JPEG ({error})") from None
    return np.stack(frames) if frames else np.zeros((0, 0, 0), np.uint8)
