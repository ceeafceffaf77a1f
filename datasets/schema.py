"""What an experience store holds: its action space, its image shape, the arrays they imply, and the
checks on episodes before they are written (format versions 1 and 2; see docs/experience.md).

Format version 2 records in the provenance attributes (the `dreamer_pipeline` attrs dict)

    "action_space": {"kind": "discrete", "n": 18}
                  | {"kind": "continuous", "shape": [A], "low": [A floats], "high": [A floats]}
    "image_shape":  [64, 64, C]      C = 1 (grayscale Atari) or 3 (RGB, the Control Suite)

and holds, time-major over N committed steps:

    image        uint8    (N, 64, 64, C)
    action       int32    (N,)    discrete: an index into the action set; the action that led to image[t]
                 float32  (N, A)  continuous: inside [low, high] (the pipeline's environments use [-1, 1])
    reward       float32  (N,)    raw reward received on arriving at t (absent in reward-free stores)
    is_first     bool     (N,)    first step of an episode: action 0 (the zero vector) and reward 0
    is_last      bool     (N,)    last step of an episode (terminal or truncated)
    is_terminal  bool     (N,)    the episode ended in a true terminal state (not a time limit)

Format version 1 (written before continuous control) has no `action_space` or `image_shape`
attributes: it reads as discrete with n = len(action_set["ids"]) and image shape (64, 64, 1),
which is exactly the version-2 layout of such a store.

Attributes are untrusted (a store or an HDF5 file may be damaged or hostile): `ActionSpace.from_dict`
(datasets/action_space.py) and `image_shape_from` accept only the forms above, with counts and dimensions below the limits
here, and finite bounds; anything else is one `SchemaError` saying what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .action_space import MAX_DISCRETE_ACTIONS, ActionSpace
from .store_error import SchemaError

FORMAT_NAME = "dreamer-pipeline/experience"
FORMAT_VERSION = 2  # what this code writes
READABLE_VERSIONS = (1, 2)
ATTRS_KEY = "dreamer_pipeline"
IMAGE_SIZE = 64
IMAGE_CHANNELS = (1, 3)
IMAGE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)  # Atari's (and every version-1 store's)
FLAG_KEYS = ("is_first", "is_last", "is_terminal")


class EpisodeError(ValueError):
    """An episode that does not fit the store's schema (`validate_episode`); nothing was written."""


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def image_shape_from(value: Any) -> tuple[int, int, int]:
    """Parse an `image_shape` attribute: [64, 64, C] with C in {1, 3}."""
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(_is_int(v) for v in value) \
            or tuple(value[:2]) != (IMAGE_SIZE, IMAGE_SIZE) or value[2] not in IMAGE_CHANNELS:
        raise SchemaError(f"image_shape is {_short(value)}; expected [{IMAGE_SIZE}, {IMAGE_SIZE}, C] with C in "
                          f"{list(IMAGE_CHANNELS)} (grayscale or RGB)")
    return (IMAGE_SIZE, IMAGE_SIZE, int(value[2]))


@dataclass(frozen=True)
class StoreSchema:
    """The arrays of a store with this action space and image shape, and the episode checks."""

    action_space: ActionSpace
    image_shape: tuple[int, int, int] = IMAGE_SHAPE

    def arrays(self, reward_free: bool) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """name -> (dtype, per-step shape), in the store's array order."""
        schema = {
            "image": (np.dtype(np.uint8), tuple(self.image_shape)),
            "action": (self.action_space.dtype, self.action_space.step_shape),
            "reward": (np.dtype(np.float32), ()),
            **{key: (np.dtype(bool), ()) for key in FLAG_KEYS},
        }
        if reward_free:
            del schema["reward"]
        return schema

    def attributes(self) -> dict[str, Any]:
        """The version-2 attributes that record this schema."""
        return {"action_space": self.action_space.to_dict(), "image_shape": list(self.image_shape)}

    def validate_episode(self, episode: Mapping[str, np.ndarray], reward_free: bool) -> int:
        """Check one episode's arrays; return its length (`EpisodeError` says what is wrong)."""
        arrays = self.arrays(reward_free)
        missing = [k for k in arrays if k not in episode]
        if missing:
            raise EpisodeError(f"episode is missing arrays {missing}")
        length = len(episode["is_first"])
        if length < 1:
            raise EpisodeError("episode is empty")
        for key, (dtype, shape) in arrays.items():
            value = np.asarray(episode[key])
            if value.shape != (length, *shape):
                raise EpisodeError(f"episode array {key!r} has shape {value.shape}, expected {(length, *shape)}")
            if value.dtype != dtype:
                raise EpisodeError(f"episode array {key!r} has dtype {value.dtype}, expected {dtype}")
        first, last = np.asarray(episode["is_first"]), np.asarray(episode["is_last"])
        if not first[0] or first[1:].any():
            raise EpisodeError("is_first must be set on the first step only")
        if not last[-1] or last[:-1].any():
            raise EpisodeError("is_last must be set on the last step only")
        if np.asarray(episode["is_terminal"])[:-1].any():
            raise EpisodeError("is_terminal can only be set on the last step")
        action = np.asarray(episode["action"])
        if np.any(action[0] != 0) or (not reward_free and episode["reward"][0] != 0):
            raise EpisodeError("the first step of an episode must hold action 0 and reward 0")
        problem = self.action_space.action_problem(action, first)
        if problem:
            raise EpisodeError(f"episode array 'action' {problem}")
        if not reward_free:
            bad = np.flatnonzero(~np.isfinite(np.asarray(episode["reward"])))
            if len(bad):
                raise EpisodeError(f"episode array 'reward' holds {len(bad)} non-finite values (NaN or inf), "
                                   f"first at step {int(bad[0])} of the episode")
        return length


# Episodes checked without a store: Atari's layout, any non-negative index.
ANY_DISCRETE = StoreSchema(ActionSpace.any_discrete())


def validate_episode(episode: Mapping[str, np.ndarray], reward_free: bool, schema: StoreSchema = ANY_DISCRETE) -> int:
    """Check one episode's arrays against `schema`; return its length."""
    return schema.validate_episode(episode, reward_free)


def discrete_from_action_set(action_set: Any) -> ActionSpace:
    """The discrete action space of an `action_set` attribute (`{"ids": [...], ...}`)."""
    ids = action_set.get("ids") if isinstance(action_set, Mapping) else None
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_DISCRETE_ACTIONS:
        raise SchemaError(f"action_set is {_short(action_set)}; expected an object with a non-empty 'ids' list")
    return ActionSpace.discrete(len(ids))


def schema_of(meta: Mapping[str, Any]) -> StoreSchema:
    """The schema a store's attributes record: version 2 from `action_space` and `image_shape`,
    version 1 (neither) as discrete over its `action_set` with (64, 64, 1) images."""
    if meta.get("format_version") == 1:
        if "action_space" in meta or "image_shape" in meta:
            raise SchemaError("a format version 1 store records no action_space or image_shape, but this one does")
        return StoreSchema(discrete_from_action_set(meta.get("action_set")), IMAGE_SHAPE)
    for key in ("action_space", "image_shape"):
        if key not in meta:
            raise SchemaError(f"has no '{key}' attribute (format version {meta.get('format_version')!r} records it)")
    return _checked(ActionSpace.from_dict(meta["action_space"]), image_shape_from(meta["image_shape"]),
                    meta.get("action_set"))


def schema_for_writer(attrs: Mapping[str, Any], action_space: Any = None, image_shape: Any = None) -> StoreSchema:
    """The schema of a store about to be written: the action space from the argument, else the
    `action_space` attribute, else discrete over the `action_set` attribute (today's Atari
    callers); the image shape from the argument, else the `image_shape` attribute, else (64, 64, 1).
    An argument and an attribute that both say it must agree."""
    spaces = [ActionSpace.from_dict(v) for v in (action_space, attrs.get("action_space")) if v is not None]
    if len(spaces) == 2 and spaces[0] != spaces[1]:
        raise SchemaError(f"the action_space argument ({spaces[0]}) disagrees with the attribute ({spaces[1]})")
    shapes = [image_shape_from(v) for v in (image_shape, attrs.get("image_shape")) if v is not None]
    if len(shapes) == 2 and shapes[0] != shapes[1]:
        raise SchemaError(f"the image_shape argument {list(shapes[0])} disagrees with the attribute {list(shapes[1])}")
    if spaces:
        space = spaces[0]
    elif attrs.get("action_set") is not None:
        space = discrete_from_action_set(attrs.get("action_set"))
    else:
        raise SchemaError("a new store needs its action space: pass action_space (or an 'action_space' or "
                          "'action_set' attribute)")
    return _checked(space, shapes[0] if shapes else IMAGE_SHAPE, attrs.get("action_set"))


def _checked(space: ActionSpace, image_shape: tuple[int, int, int], action_set: Any) -> StoreSchema:
    """A discrete space and an action set, when both are recorded, must count the same actions."""
    if space.is_discrete and action_set is not None:
        counted = discrete_from_action_set(action_set).n
        if counted != space.n:
            raise SchemaError(f"action_space has n={space.n}, but the action_set lists {counted} actions")
    return StoreSchema(space, image_shape)


# -- the arrays' zarr metadata -------------------------------------------------------------------------
# Each array's `zarr.json` is untrusted too: zarr obeys whatever it says, so an edited chunk key
# encoding made every reader see zeros, a chunk shape of 1e12 or 0 a MemoryError or a
# ZeroDivisionError, and codecs reduced to `bytes` raw garbage. A store's arrays may only be what
# `StoreWriter` writes (every store the tests write is opened through this check):
ARRAY_METADATA_KEYS = {"zarr_format", "node_type", "shape", "data_type", "chunk_grid", "chunk_key_encoding",
                       "fill_value", "codecs", "attributes", "dimension_names", "storage_transformers"}
DEFAULT_CHUNK_KEY_ENCODING = {"name": "default", "configuration": {"separator": "/"}}
MAX_CHUNK_STEPS = 1 << 16
MAX_ARRAY_STEPS = 1 << 40  # far past any store (a trillion steps), far below an overflow
ZSTD_LEVELS = (-131072, 22)


class ArrayMetadataError(ValueError):
    """An array's zarr.json that is not what the store writer writes: `field` names the entry."""

    def __init__(self, field: str, problem: str, *, said: str | None = None):
        self.field = field
        super().__init__(said or f"metadata field {field!r} {problem}")


def check_array_metadata(meta: Any, dtype: np.dtype, step_shape: tuple[int, ...]) -> int:
    """Check one array's parsed zarr.json against the schema; return its chunk steps (the time
    extent of a chunk). Raises ArrayMetadataError naming the field."""
    if not isinstance(meta, dict):
        raise ArrayMetadataError("(root)", f"is a {type(meta).__name__}, not an object")
    unknown = sorted(str(key) for key in meta if key not in ARRAY_METADATA_KEYS)
    if unknown:
        raise ArrayMetadataError(unknown[0], "is not written by this store's writer (zarr extensions are refused)")
    _expect(meta, "zarr_format", 3)
    _expect(meta, "node_type", "array")
    if meta.get("data_type") != np.dtype(dtype).name:
        raise ArrayMetadataError("data_type", "", said=f"has dtype {str(meta.get('data_type'))[:40]}, expected {dtype}")
    shape = meta.get("shape")
    if isinstance(shape, list) and len(shape) >= 1 and all(_is_int(v) for v in shape) \
            and tuple(shape[1:]) != tuple(step_shape):
        raise ArrayMetadataError("shape", "", said=f"has step shape {tuple(shape[1:])}, expected {tuple(step_shape)}")
    if not isinstance(shape, list) or len(shape) != 1 + len(step_shape) or not all(_is_int(v) for v in shape) \
            or tuple(shape[1:]) != tuple(step_shape) or not 0 <= shape[0] <= MAX_ARRAY_STEPS:
        raise ArrayMetadataError("shape", f"is {_short(shape)}; expected [steps, {', '.join(map(str, step_shape))}] "
                                          f"with steps from 0 to {MAX_ARRAY_STEPS}".replace(", ]", "]"))
    grid = meta.get("chunk_grid")
    chunk_shape = grid.get("configuration", {}).get("chunk_shape") if isinstance(grid, dict) \
        and isinstance(grid.get("configuration"), dict) else None
    if not isinstance(grid, dict) or grid.get("name") != "regular" or set(grid) != {"name", "configuration"} \
            or not isinstance(chunk_shape, list) or len(chunk_shape) != len(shape) \
            or not all(_is_int(v) for v in chunk_shape) or tuple(chunk_shape[1:]) != tuple(step_shape) \
            or not 1 <= chunk_shape[0] <= MAX_CHUNK_STEPS:
        raise ArrayMetadataError("chunk_grid", f"is {_short(grid)}; expected a regular grid of chunks "
                                               f"[1 to {MAX_CHUNK_STEPS} steps, whole steps]")
    _expect(meta, "chunk_key_encoding", DEFAULT_CHUNK_KEY_ENCODING)
    fill, boolean = meta.get("fill_value"), np.dtype(dtype) == np.bool_
    if isinstance(fill, bool) != boolean or not isinstance(fill, (int, float)) or fill != 0:
        raise ArrayMetadataError("fill_value", f"is {_short(fill)}; expected {'false' if boolean else 0}")
    if meta.get("storage_transformers", []) != []:
        raise ArrayMetadataError("storage_transformers", f"is {_short(meta['storage_transformers'])}; expected none")
    _check_codecs(meta.get("codecs"), np.dtype(dtype))
    return int(chunk_shape[0])


def _expect(meta: Mapping[str, Any], field: str, value: Any) -> None:
    if meta.get(field) != value or type(meta.get(field)) is not type(value):
        raise ArrayMetadataError(field, f"is {_short(meta.get(field))}; expected {_short(value)}")


def _check_codecs(codecs: Any, dtype: np.dtype) -> None:
    """`bytes` (little-endian), `zstd` (a level, a checksum flag), and optionally `crc32c`."""
    expected = "[bytes (little-endian), zstd, optionally crc32c]"
    if not isinstance(codecs, list) or len(codecs) not in (2, 3) or not all(isinstance(c, dict) for c in codecs):
        raise ArrayMetadataError("codecs", f"is {_short(codecs)}; expected {expected}")
    names = [codec.get("name") for codec in codecs]
    if names[:2] != ["bytes", "zstd"] or (len(names) == 3 and names[2] != "crc32c"):
        raise ArrayMetadataError("codecs", f"are {names}; expected {expected}")
    endian = codecs[0].get("configuration", {})
    if set(codecs[0]) - {"name", "configuration"} or not isinstance(endian, dict) or set(endian) - {"endian"} \
            or (dtype.itemsize > 1 and endian.get("endian") != "little") \
            or endian.get("endian", "little") != "little":
        raise ArrayMetadataError("codecs", f"bytes codec is {_short(codecs[0])}; expected little-endian")
    zstd = codecs[1].get("configuration")
    if set(codecs[1]) != {"name", "configuration"} or not isinstance(zstd, dict) \
            or set(zstd) != {"level", "checksum"} or not _is_int(zstd["level"]) \
            or not ZSTD_LEVELS[0] <= zstd["level"] <= ZSTD_LEVELS[1] or not isinstance(zstd["checksum"], bool):
        raise ArrayMetadataError("codecs", f"zstd codec is {_short(codecs[1])}; expected a level from "
                                           f"{ZSTD_LEVELS[0]} to {ZSTD_LEVELS[1]} and a checksum flag")
    if len(codecs) == 3 and codecs[2] != {"name": "crc32c"}:
        raise ArrayMetadataError("codecs", f"crc32c codec is {_short(codecs[2])}; expected no configuration")
