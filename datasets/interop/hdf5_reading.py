"""Reading a Minari-layout HDF5 file: untrusted input, checked as it is read.

Every name, count and array read from the file is validated before it is used: store names become
one safe path component (`safe_name`), episode groups must be `episode_<n>` numbered in order,
metadata must be the JSON it claims, arrays must have the shapes and dtypes of our schema. Anything
else is one `HDF5Error` naming the file and what is wrong. `datasets/interop/hdf5.py` imports and exports.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .minari_spec import (
    MinariSpecError, ale_game_of, full_action_space_of, observation_space, parse_env_spec, read_observations,
)
from ..schema import ANY_DISCRETE, IMAGE_SHAPE, IMAGE_SIZE, ActionSpace, SchemaError, StoreSchema, schema_for_writer
from ..store import ATTRS_KEY, MAX_CHUNK_STEPS

MINARI_FILE = "main_data.hdf5"
METADATA_FILE = "metadata.json"
EPISODE_DATASETS = ("observations", "actions", "rewards", "terminations", "truncations")
# An import decodes one episode at a time into memory. These bound what a file may declare (a tiny
# file can declare 2M frames of fill values): far above Atari's longest episode (27,000 steps,
# 2.7 GB even as 210x160 RGB screens), far below what would exhaust this machine.
MAX_EPISODE_FRAMES = 1 << 20
MAX_EPISODE_BYTES = 4 << 30
MAX_METADATA_BYTES = 16 << 20


class HDF5Error(ValueError):
    """An HDF5 file or directory that is not a (readable) Minari-layout dataset."""


_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
_EPISODE_NAME = re.compile(r"episode_([0-9]+)")


def safe_name(name: Any, where: str) -> str:
    """`name` if it is exactly one harmless path component, else one HDF5Error naming `where`."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or name in (".", ".."):
        raise HDF5Error(f"{where}: the store name {name!r} is not a plain name (letters, digits, '.', '_', '-'; "
                        "not '.' or '..'); refusing to use it as a path")
    return name


def read_minari_metadata(source: str | os.PathLike) -> dict[str, Any]:
    """The metadata.json beside a Minari dataset's main_data.hdf5 ({} if there is none)."""
    return read_metadata(locate_file(Path(source)))


def locate_file(source: Path) -> Path:
    if source.is_file():
        return source
    for candidate in (source / MINARI_FILE, source / "data" / MINARI_FILE):
        if candidate.is_file():
            return candidate
    raise HDF5Error(f"{source}: no {MINARI_FILE} here or in {source / 'data'} (expected a Minari-layout dataset)")


def read_metadata(file_path: Path) -> dict[str, Any]:
    path = file_path.parent / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as file:
            text = file.read(MAX_METADATA_BYTES + 1)
        if len(text) > MAX_METADATA_BYTES:
            raise HDF5Error(f"{path}: is over {MAX_METADATA_BYTES >> 20} MiB; Minari's metadata is a few kB")
        metadata = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise HDF5Error(f"{path}: not valid JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise HDF5Error(f"{path}: holds a JSON {type(metadata).__name__}, not an object")
    return metadata


def _foreign_provenance(file_path: Path, metadata: dict[str, Any], action_set: dict[str, Any] | None,
                        attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes for a Minari dataset we did not write: the action count comes from its metadata,
    what the actions mean from `action_set` or its `env_spec` (never from the count alone). A Box
    action space of shape [A] becomes a continuous store with its bounds."""
    try:
        space = json.loads(metadata["action_space"])
    except Exception:  # noqa: BLE001 - missing or not JSON: said below
        space = None
    if isinstance(space, dict) and space.get("type") == "Box":
        return _foreign_box(file_path, metadata, space, attrs)
    try:
        assert space["type"] == "Discrete"
        num_actions, start = int(space["n"]), int(space.get("start", 0))
        assert start == 0
    except Exception:
        raise HDF5Error(
            f"{file_path}: neither dreamer-pipeline provenance nor a metadata.json with a Discrete (or Box) action_space "
            "(starting at 0); cannot tell what the actions mean"
        ) from None
    try:
        spec = parse_env_spec(metadata)
    except MinariSpecError as error:
        raise HDF5Error(f"{file_path.parent / METADATA_FILE}: {error}") from None
    dataset_id = str(metadata.get("dataset_id", file_path.parent.parent.name))
    if action_set is None:
        action_set = {"full": full_action_space_of(spec), "ids": list(range(num_actions)), "meanings": []}
    elif len(action_set["ids"]) != num_actions:
        raise HDF5Error(f"{file_path}: the action space has {num_actions} actions, but the action set given for it "
                        f"has {len(action_set['ids'])} ({action_set.get('meanings')})")
    store_attrs = {
        "game": ale_game_of(spec) or dataset_id,
        "action_set": action_set,
        "policy": {"kind": "import", "dataset_id": dataset_id, "algorithm": metadata.get("algorithm_name")},
        "env": {},
        **({"env_spec": spec} if spec else {}),
        **dict(attrs or {}),
    }
    name = dataset_id.rstrip("/").rsplit("/", 1)[-1]  # one store: never a path
    return {"reward_free": False, "stores": [{"name": name, "attrs": store_attrs}]}


def _foreign_box(file_path: Path, metadata: dict[str, Any], space: dict[str, Any],
                 attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """A foreign dataset with continuous actions; RGB images when its observations are 64x64x3."""
    try:
        action_space = ActionSpace.from_dict({"kind": "continuous", "shape": space.get("shape"),
                                             "low": space.get("low"), "high": space.get("high")}).to_dict()
    except SchemaError as error:
        raise HDF5Error(f"{file_path.parent / METADATA_FILE}: the Box action_space: {error}") from None
    try:
        observations = observation_space(metadata) or {}
    except MinariSpecError as error:
        raise HDF5Error(f"{file_path.parent / METADATA_FILE}: {error}") from None
    dataset_id = str(metadata.get("dataset_id", file_path.parent.parent.name))
    rgb_shape = [IMAGE_SIZE, IMAGE_SIZE, 3]
    store_attrs = {
        "game": dataset_id,
        "action_space": action_space,
        **({"image_shape": rgb_shape} if observations.get("shape") == rgb_shape else {}),
        "policy": {"kind": "import", "dataset_id": dataset_id, "algorithm": metadata.get("algorithm_name")},
        "env": {},
        **dict(attrs or {}),
    }
    name = dataset_id.rstrip("/").rsplit("/", 1)[-1]  # one store: never a path
    return {"reward_free": False, "stores": [{"name": name, "attrs": store_attrs}]}


def contained(file_path: Path, group: Any, name: str, where: str, kind: str = "dataset") -> Any:
    """`group[name]` if it is a `kind` ("dataset" or "group") whose data lie inside this file.

    Everything else is one HDF5Error, before any data is read: an external link or a soft link
    (Minari writes neither; a soft link may loop or alias another episode), a virtual dataset or
    one with external storage (their data are other files, e.g. /etc/passwd). Raises KeyError
    when there is no such member.
    """
    import h5py

    link = group.get(name, getlink=True)
    if link is None:
        raise KeyError(name)
    outside = f"refusing to read data from outside {file_path}"
    if isinstance(link, h5py.ExternalLink):
        raise HDF5Error(f"{where}: {name} is an external link to {link.filename}:{link.path}; {outside}")
    if isinstance(link, h5py.SoftLink):
        raise HDF5Error(f"{where}: {name} is a soft link to {link.path} (Minari writes none; one may loop or alias "
                        "another member); refusing to follow it")
    if not isinstance(link, h5py.HardLink):
        raise HDF5Error(f"{where}: {name} is a {type(link).__name__}, not a member stored in the file")
    member = group[name]
    expected = h5py.Dataset if kind == "dataset" else h5py.Group
    if not isinstance(member, expected):
        raise HDF5Error(f"{where}: {name} is not a {kind}")
    if kind == "dataset":
        if member.is_virtual:
            raise HDF5Error(f"{where}: {name} is a virtual dataset (its data are mapped from other datasets or "
                            f"files); {outside}")
        if member.external:
            files = ", ".join(sorted({str(entry[0]) for entry in member.external}))
            raise HDF5Error(f"{where}: {name} uses external storage ({files}); {outside}")
    return member


def check_declared_sizes(datasets: Mapping[str, Any], where: str) -> None:
    """Refuse declared sizes beyond what one episode may hold, before reading any of it."""
    for name, dataset in datasets.items():
        if not dataset.shape or dataset.shape[0] > MAX_EPISODE_FRAMES:
            raise HDF5Error(f"{where}: {name} declares shape {dataset.shape}; an episode holds 1 to "
                            f"{MAX_EPISODE_FRAMES} steps")
        size = int(np.prod(dataset.shape, dtype=np.float64)) * dataset.dtype.itemsize
        if size > MAX_EPISODE_BYTES:
            raise HDF5Error(f"{where}: {name} declares {dataset.shape} {dataset.dtype} ({size / 2**30:.1f} GiB); an "
                            f"imported episode is decoded in memory, at most {MAX_EPISODE_BYTES / 2**30:.0f} GiB")


def episode_names(file_path: Path, keys) -> list[str]:
    """The `episode_<i>` groups in order of i; any other `episode_*` name is an error."""
    numbered = {}
    for key in keys:
        if not key.startswith("episode_"):
            continue  # Minari keeps nothing else at the root; tolerate foreign extras
        match = _EPISODE_NAME.fullmatch(key)
        if match is None:
            raise HDF5Error(f"{file_path}: unexpected group {key!r}; episodes are named episode_<number>")
        index = int(match.group(1))
        if index in numbered:
            raise HDF5Error(f"{file_path}: groups {numbered[index]!r} and {key!r} number the same episode")
        numbered[index] = key
    if not numbered:
        raise HDF5Error(f"{file_path}: holds no episode_<i> groups; not a Minari-layout dataset")
    return [numbered[index] for index in sorted(numbered)]


def read_provenance(file_path: Path, file: Any, metadata: dict[str, Any], action_set: dict[str, Any] | None,
                     attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Our provenance (from the HDF5 attributes, else metadata.json), or a foreign dataset's."""
    raw = file.attrs.get(ATTRS_KEY)
    if raw is not None:
        try:
            provenance = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise HDF5Error(f"{file_path}: the '{ATTRS_KEY}' attribute is not valid JSON ({error})") from None
    else:
        provenance = metadata.get(ATTRS_KEY)
    if provenance is None:
        return _foreign_provenance(file_path, metadata, action_set, attrs)
    where = f"{file_path}: the '{ATTRS_KEY}' provenance"
    if not isinstance(provenance, dict):
        raise HDF5Error(f"{where} is a {type(provenance).__name__}, not an object")
    if not isinstance(provenance.get("stores"), list) or not provenance["stores"]:
        raise HDF5Error(f"{where} has no 'stores' list")
    if not isinstance(provenance.get("reward_free", False), bool):
        raise HDF5Error(f"{where}: reward_free must be true or false, got {provenance.get('reward_free')!r}")
    return {**provenance, "reward_free": bool(provenance.get("reward_free", False))}


def check_stores(file_path: Path, stores: list, episodes: int, provenance: Mapping[str, Any] | None = None
                 ) -> list[dict[str, Any]]:
    """Validated store records: a safe name, attributes, an episode range inside the file, chunk steps,
    and the store's `schema` (its action space and image shape, which must agree with the
    provenance's `action_space` and `image_shape` where it records them)."""
    declared = _declared_schema(file_path, provenance or {})
    checked, covered = [], 0
    for index, record in enumerate(stores):
        where = f"{file_path}: provenance store {index}"
        if not isinstance(record, dict) or not isinstance(record.get("attrs"), dict):
            raise HDF5Error(f"{where} is not an object with an 'attrs' object")
        name = record.get("name")
        if len(stores) > 1:  # each store becomes STORE/<name>: the name must be one harmless component
            name = safe_name(name, where)
        first = record.get("first_episode", 0 if len(stores) == 1 else None)
        count = record.get("episodes", episodes if len(stores) == 1 else None)
        for key, value in (("first_episode", first), ("episodes", count)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise HDF5Error(f"{where}: {key} must be a non-negative integer, got {value!r}")
        if first + count > episodes or count == 0:
            raise HDF5Error(f"{where}: episodes {first}..{first + count - 1} are not among the file's "
                            f"{episodes} episodes")
        chunk_steps = record["attrs"].get("chunk_steps", 64)
        if isinstance(chunk_steps, bool) or not isinstance(chunk_steps, int) or not 1 <= chunk_steps <= MAX_CHUNK_STEPS:
            raise HDF5Error(f"{where}: chunk_steps must be an integer from 1 to {MAX_CHUNK_STEPS}, got {chunk_steps!r}")
        try:
            schema = schema_for_writer({k: v for k, v in record["attrs"].items() if k != "format_version"})
        except SchemaError as error:
            raise HDF5Error(f"{where}: {error}") from None
        if declared is not None and schema != declared:
            raise HDF5Error(f"{where} holds {schema.action_space} actions and {list(schema.image_shape)} images, but "
                            f"the file declares {declared.action_space} and {list(declared.image_shape)}")
        covered += count
        checked.append({**record, "name": name, "first_episode": first, "episodes": count, "chunk_steps": chunk_steps,
                        "schema": schema})
    if covered != episodes:
        raise HDF5Error(f"{file_path}: the provenance's stores cover {covered} episodes, the file holds {episodes}")
    return checked


def _declared_schema(file_path: Path, provenance: Mapping[str, Any]) -> StoreSchema | None:
    """The schema the provenance declares for the whole file (exports since format version 2)."""
    if "action_space" not in provenance and "image_shape" not in provenance:
        return None
    try:
        return schema_for_writer({}, provenance.get("action_space"), provenance.get("image_shape"))
    except SchemaError as error:
        raise HDF5Error(f"{file_path}: the '{ATTRS_KEY}' provenance: {error}") from None


def read_episode(file_path: Path, group: Any, name: str, reward_free: bool, jpeg: bool = False,
                  convert: Callable | None = None, schema: StoreSchema | None = None
                  ) -> tuple[dict[str, np.ndarray], list[str]]:
    """One episode group as a store episode of `schema` (default: Atari's, discrete and grayscale)."""
    schema = schema or ANY_DISCRETE
    image_shape, space = tuple(schema.image_shape), schema.action_space
    where = f"{file_path}: {name}"
    steps_done: list[str] = []
    try:
        members = {key: contained(file_path, group, key, where) for key in EPISODE_DATASETS}
        check_declared_sizes(members, where)
        observations = read_observations(members["observations"], jpeg, where)
        if convert is not None:
            observations, steps_done = convert(observations)
        actions, rewards, terminations, truncations = (members[key][()] for key in EPISODE_DATASETS[1:])
    except HDF5Error:
        raise
    except KeyError as error:
        raise HDF5Error(f"{where}: missing dataset {error}; expected observations, actions, rewards, terminations, truncations") from None
    except MinariSpecError as error:
        raise HDF5Error(str(error)) from None
    except (TypeError, AttributeError, ValueError):
        raise HDF5Error(f"{where}: is not a group of datasets") from None
    except OSError as error:  # h5py: a damaged dataset or filter
        raise HDF5Error(f"{where}: cannot be read ({error})") from None
    except MemoryError:
        raise HDF5Error(f"{where}: does not fit in memory") from None
    steps = len(actions)
    if observations.ndim == 3:
        observations = observations[..., None]
    if observations.shape != (steps + 1, *image_shape) or observations.dtype != np.uint8:
        raise HDF5Error(
            f"{where}: observations are {observations.dtype} {observations.shape}; expected uint8 "
            f"{(steps + 1, *image_shape)} (one more frame than the {steps} actions)"
            + ("" if convert is not None or image_shape != IMAGE_SHAPE or observations.shape[1:] == IMAGE_SHAPE else
               "; Atari screens of another size or colour import with `dreamer-pipeline import-minari-atari`, "
               "which converts them explicitly")
        )
    for key, value in (("actions", actions), ("rewards", rewards), ("terminations", terminations), ("truncations", truncations)):
        expected = (steps, *space.step_shape) if key == "actions" else (steps,)
        if value.shape != expected:
            raise HDF5Error(f"{where}: {key} has shape {value.shape}; expected {expected}"
                            + (f" (action space {space})" if key == "actions" else ""))
    if space.is_discrete:
        if not np.issubdtype(actions.dtype, np.integer) or (steps and (actions.min() < 0 or actions.max() > np.iinfo(np.int32).max)):
            raise HDF5Error(f"{where}: actions must be non-negative integers (a Discrete action space)")
        action = np.concatenate([[0], actions]).astype(np.int32)
    else:  # bounds are the store writer's check, named per episode by the import
        if not np.issubdtype(actions.dtype, np.floating):
            raise HDF5Error(f"{where}: actions are {actions.dtype}; a continuous action space stores float vectors")
        action = np.concatenate([np.zeros((1, space.dims), np.float32), actions.astype(np.float32)])
    if terminations[:-1].any() or truncations[:-1].any():
        raise HDF5Error(f"{where}: terminations/truncations set before the last step")
    length = steps + 1
    is_first = np.zeros(length, bool)
    is_first[0] = True
    is_last = np.zeros(length, bool)
    is_last[-1] = True
    is_terminal = np.zeros(length, bool)
    is_terminal[1:] = terminations.astype(bool)
    is_terminal[0] |= bool(group.attrs.get("dreamer_pipeline_terminal_at_reset", False))
    episode = {
        "image": np.ascontiguousarray(observations),
        "action": action,
        "is_first": is_first,
        "is_last": is_last,
        "is_terminal": is_terminal,
    }
    if reward_free:
        if not np.all(np.isnan(rewards)):
            raise HDF5Error(f"{where}: flagged reward-free but holds non-NaN rewards")
    else:
        if not np.issubdtype(rewards.dtype, np.number):
            raise HDF5Error(f"{where}: rewards are {rewards.dtype}, not numbers")
        bad = np.flatnonzero(~np.isfinite(rewards.astype(np.float64)))
        if len(bad):
            raise HDF5Error(f"{where}: rewards hold {len(bad)} non-finite values (NaN or inf), first at transition "
                            f"{int(bad[0])}; a reward-free dataset must be flagged so (all rewards NaN)")
        episode["reward"] = np.concatenate([[0.0], rewards]).astype(np.float32)
    return episode, steps_done
