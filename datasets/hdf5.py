"""Export datasets to Minari's HDF5 layout and import them back, bit-exact.

Layout written by `export_minari(dataset, out_dir)` (Minari 0.5.4, `data_format: "hdf5"`,
`jpeg_encoding: false`, so `minari.MinariDataset(out_dir / "data")` or `minari.load_dataset(id)`
with `MINARI_DATASETS_PATH` pointing at the parent of `<id>` reads it, and
`recover_environment()` rebuilds the environment from `env_spec`; Minari's conventions are in
`datasets/minari_spec.py`):

    out_dir/data/main_data.hdf5     one group `episode_{i}` per episode, nothing else at the root
    out_dir/data/metadata.json      dataset_id, total_episodes, total_steps, spaces, minari_version,
                                    env_spec, author, author_email, code_permalink, ...

Alignment. Our episode of L steps holds the reset image at step 0 (action 0, reward 0) and at
step t the action that led to image t and the reward received on arriving there. Minari stores
L - 1 transitions: `observations[i] = image[i]` (L frames, i.e. T + 1), `actions[i] = action[i+1]`,
`rewards[i] = reward[i+1]`, `terminations[i] = is_terminal[i+1]`, `truncations[i] = is_last[i+1] and
not is_terminal[i+1]`. Importing inverts this exactly (step 0 gets action 0 and reward 0 back).

Lossless: observations are raw uint8 with gzip (portable) or lzf (faster, h5py-only), never JPEG.
Importing also reads JPEG-encoded observations (Minari's default since 0.5.3), which are lossy;
the store's `imported_from` then says so.
Actions are int64 (Minari's Discrete convention), rewards float64 (float32 values round-trip).
Reward-free stores: Minari requires a `rewards` array, so they are exported as NaN rewards and
flagged `reward_free` in our provenance; importing restores a reward-free store.

Provenance: the JSON of every source store's attributes and its episode range is kept under the
key `dreamer_pipeline` in both metadata.json and the HDF5 root attributes, so import restores the
stores' attributes (plus an `imported_from` note). Exports of several stores import back as one
store per original store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from tqdm.auto import tqdm

from .dataset import Dataset, open_dataset
from .minari_spec import (
    MINARI_VERSION, MinariSpecError, ale_game_of, env_spec_json, full_action_space_of, jpeg_encoded, parse_env_spec,
    read_observations,
)
from .store import ATTRS_KEY, IMAGE_SHAPE, StoreWriter

MINARI_FILE = "main_data.hdf5"
METADATA_FILE = "metadata.json"
MINARI_LAYOUT_VERSION = MINARI_VERSION  # the first Minari release that reads our export (minari_spec.py)
EXPORT_FORMAT = "dreamer-pipeline/minari-export"
EXPORT_VERSION = 1
# Store attributes the writer manages itself; the rest is restored from the export.
_MANAGED = ("format", "format_version", "committed_steps", "committed_episodes", "reward_free", "chunk_steps",
            "scalar_chunk_steps")


class HDF5Error(ValueError):
    """An HDF5 file or directory that is not a (readable) Minari-layout dataset."""


def export_minari(
    data: Dataset | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    dataset_id: str | None = None,
    compression: str = "gzip",
    author: str | list[str] | None = None,
    author_email: str | list[str] | None = None,
    code_permalink: str | None = None,
    progress: bool = True,
) -> Path:
    """Write `data` (a Dataset or any dataset source) as a Minari dataset under `out_dir`; return the data dir.

    `env_spec` is derived from the first store's provenance (`minari_spec.env_spec_json`);
    `author`, `author_email` and `code_permalink` are Minari's metadata fields of the same names.
    """
    import h5py

    data = data if isinstance(data, Dataset) else open_dataset(data)
    if compression not in ("gzip", "lzf"):
        raise HDF5Error(f"compression must be 'gzip' or 'lzf' (lossless), got {compression!r}")
    num_actions = data.num_actions
    if num_actions is None:
        raise HDF5Error(f"dataset {data.name!r}: stores carry no action_set attribute; cannot write the action space")
    reward_free = not data.has_reward
    data_dir = Path(out_dir) / "data"
    if (data_dir / METADATA_FILE).exists() or (data_dir / MINARI_FILE).exists():
        raise HDF5Error(f"{data_dir}: a Minari dataset already exists there; choose an empty OUT_DIR")
    data_dir.mkdir(parents=True, exist_ok=True)
    dataset_id = dataset_id or _default_id(data)
    options = {"compression": compression, **({"compression_opts": 4} if compression == "gzip" else {})}

    table = data.episodes
    stores_meta: list[dict[str, Any]] = []
    total_steps = 0
    with h5py.File(data_dir / MINARI_FILE, "w", track_order=True) as file:
        bar = tqdm(total=data.num_steps, desc="export", unit="step", disable=not progress)
        for index in range(len(table)):
            store = data.stores[table.store[index]]
            start, length = int(table.start[index]), int(table.length[index])
            if not stores_meta or stores_meta[-1]["_store"] != int(table.store[index]):
                stores_meta.append(
                    {"_store": int(table.store[index]), "name": store.path.name, "attrs": store.attrs, "first_episode": index, "episodes": 0}
                )
            stores_meta[-1]["episodes"] += 1
            image = store.read("image", start, start + length)
            action = store.read("action", start, start + length)
            reward = store.read("reward", start, start + length) if store.has_reward and not reward_free else None
            terminal = store.read("is_terminal", start, start + length)
            steps = length - 1
            group = file.create_group(f"episode_{index}")
            group.attrs["id"] = index
            group.attrs["total_steps"] = steps
            group.attrs["dreamer_pipeline_store"] = len(stores_meta) - 1
            if length == 1 and terminal[0]:  # no transition carries the flag: keep it as an attribute
                group.attrs["dreamer_pipeline_terminal_at_reset"] = True
            chunk = (max(1, min(length, 64)), *IMAGE_SHAPE)
            group.create_dataset("observations", data=image, chunks=chunk, **options)
            group.create_dataset("actions", data=action[1:].astype(np.int64))
            rewards = np.full(steps, np.nan) if reward is None else reward[1:].astype(np.float64)
            group.create_dataset("rewards", data=rewards)
            group.create_dataset("terminations", data=terminal[1:].astype(bool))
            truncated = np.zeros(steps, bool)
            if steps:
                truncated[-1] = not terminal[-1]
            group.create_dataset("truncations", data=truncated)
            total_steps += steps
            bar.update(length)
        bar.close()
        provenance = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "reward_free": reward_free,
            "stores": [{k: v for k, v in meta.items() if k != "_store"} for meta in stores_meta],
        }
        file.attrs[ATTRS_KEY] = json.dumps(provenance)
    metadata = {
        "dataset_id": dataset_id,
        "total_episodes": len(table),
        "total_steps": total_steps,
        "data_format": "hdf5",
        "jpeg_encoding": False,
        "observation_space": json.dumps(
            {"type": "Box", "dtype": "uint8", "shape": list(IMAGE_SHAPE),
             "low": np.zeros(IMAGE_SHAPE, int).tolist(), "high": np.full(IMAGE_SHAPE, 255).tolist()}
        ),
        "action_space": json.dumps({"type": "Discrete", "dtype": "int64", "start": 0, "n": int(num_actions)}),
        "minari_version": MINARI_LAYOUT_VERSION,
        **_optional_metadata(data, author, author_email, code_permalink),
        "algorithm_name": "dreamer-pipeline " + ",".join(sorted({str(s.attrs.get("policy", {}).get("kind")) for s in data.stores})),
        "description": f"dreamer-pipeline experience ({', '.join(data.games)}); 64x64 grayscale Atari frames",
        "requirements": ["ale-py>=0.9"],
        "dataset_size": round(sum(p.stat().st_size for p in data_dir.iterdir()) / 1e6, 1),
        ATTRS_KEY: provenance,
    }
    (data_dir / METADATA_FILE).write_text(json.dumps(metadata))
    return data_dir


def import_minari(
    source: str | os.PathLike,
    store_path: str | os.PathLike,
    *,
    action_set: dict[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    convert: Callable[[np.ndarray], tuple[np.ndarray, list[str]]] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Import a Minari-layout HDF5 dataset into zarr store(s); return their paths.

    `source` is `main_data.hdf5`, its `data/` directory, or the directory holding `data/`. An
    export of one store (or a foreign Minari dataset) becomes the store `store_path`; an export of
    several stores becomes `store_path/<original store name>` for each.

    For a foreign dataset (no dreamer-pipeline provenance): `action_set` says what its action
    indices mean (its length must be the action space's n; default: indices only, `full` from
    `env_spec`), `attrs` add provenance (game, env, policy), and `convert` turns its frames into
    the store's (e.g. `frames.to_store_frames`; default: they must be 64x64 grayscale already).
    """
    import h5py

    file_path = _locate(Path(source))
    metadata = _read_metadata(file_path)
    try:
        jpeg = jpeg_encoded(metadata)
    except MinariSpecError as error:
        raise HDF5Error(f"{file_path.parent / METADATA_FILE}: {error}") from None
    try:
        file = h5py.File(file_path, "r")
    except OSError as error:
        raise HDF5Error(f"{file_path}: not a readable HDF5 file ({error})") from None
    with file:
        raw = file.attrs.get(ATTRS_KEY)
        provenance = json.loads(raw) if raw is not None else metadata.get(ATTRS_KEY)
        names = sorted((k for k in file.keys() if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))
        if not names:
            raise HDF5Error(f"{file_path}: holds no episode_<i> groups; not a Minari-layout dataset")
        if provenance is None:
            provenance = _foreign_provenance(file_path, metadata, action_set, attrs)
        reward_free = bool(provenance.get("reward_free", False))
        stores = provenance["stores"]
        targets = [Path(store_path)] if len(stores) == 1 else [Path(store_path) / s["name"] for s in stores]
        if len(set(targets)) != len(targets):
            targets = [Path(store_path) / f"{i:03d}-{s['name']}" for i, s in enumerate(stores)]
        for target in targets:
            if target.exists():
                raise HDF5Error(f"{target}: already exists; import into a new store path")
        bar = tqdm(total=len(names), desc="import", unit="episode", disable=not progress)
        for store_meta, target in zip(stores, targets):
            store_attrs = {k: v for k, v in store_meta["attrs"].items() if k not in _MANAGED}
            origin = {"kind": "minari-hdf5", "path": str(file_path), "jpeg": jpeg}
            if "dataset_id" in metadata:
                origin["dataset_id"] = metadata["dataset_id"]
            store_attrs["imported_from"] = origin
            writer = StoreWriter.open(
                target, store_attrs, reward_free=reward_free, chunk_steps=int(store_meta["attrs"].get("chunk_steps", 64))
            )
            first = int(store_meta.get("first_episode", 0))
            count = int(store_meta.get("episodes", len(names)))
            conversions: list[str] = []
            for name in names[first : first + count]:
                episode, steps = _read_episode(file_path, file[name], name, reward_free, jpeg, convert)
                writer.append_episode(episode)
                conversions = conversions or steps
                bar.update(1)
            if conversions:
                writer.update_attrs(imported_from={**origin, "conversion": conversions})
            if "created" in store_attrs:
                writer.update_attrs(created=store_attrs["created"])
        bar.close()
    return targets


# -- internals ---------------------------------------------------------------------------------------


def _optional_metadata(data: Dataset, author, author_email, code_permalink) -> dict[str, Any]:
    """env_spec, author, author_email and code_permalink, when known (Minari reads each as optional)."""
    out: dict[str, Any] = {}
    spec = env_spec_json(data.stores[0].attrs) if data.stores else None
    if spec is not None:
        out["env_spec"] = spec
    for key, value in (("author", author), ("author_email", author_email)):
        if value:
            out[key] = [value] if isinstance(value, str) else list(value)  # Minari reads them as sets
    if code_permalink:
        out["code_permalink"] = str(code_permalink)
    return out


def read_minari_metadata(source: str | os.PathLike) -> dict[str, Any]:
    """The metadata.json beside a Minari dataset's main_data.hdf5 ({} if there is none)."""
    return _read_metadata(_locate(Path(source)))


def _default_id(data: Dataset) -> str:
    game = (data.games[0] if len(data.games) == 1 else "mixed").lower()
    name = data.name.removesuffix(".zarr").replace(".zarr+", "+")
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "dataset"
    return f"dreamer-pipeline/{game}/{name}-v0"


def _locate(source: Path) -> Path:
    if source.is_file():
        return source
    for candidate in (source / MINARI_FILE, source / "data" / MINARI_FILE):
        if candidate.is_file():
            return candidate
    raise HDF5Error(f"{source}: no {MINARI_FILE} here or in {source / 'data'} (expected a Minari-layout dataset)")


def _read_metadata(file_path: Path) -> dict[str, Any]:
    path = file_path.parent / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        metadata = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise HDF5Error(f"{path}: not valid JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise HDF5Error(f"{path}: must hold a JSON object")
    return metadata


def _foreign_provenance(file_path: Path, metadata: dict[str, Any], action_set: dict[str, Any] | None,
                        attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes for a Minari dataset we did not write: the action count comes from its metadata,
    what the actions mean from `action_set` or its `env_spec` (never from the count alone)."""
    try:
        space = json.loads(metadata["action_space"])
        assert space["type"] == "Discrete"
        num_actions, start = int(space["n"]), int(space.get("start", 0))
        assert start == 0
    except Exception:
        raise HDF5Error(
            f"{file_path}: neither dreamer-pipeline provenance nor a metadata.json with a Discrete action_space "
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
    return {"reward_free": False, "stores": [{"name": Path(dataset_id).name, "attrs": store_attrs}]}


def _read_episode(file_path: Path, group: Any, name: str, reward_free: bool, jpeg: bool = False,
                  convert: Callable | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    where = f"{file_path}: {name}"
    steps_done: list[str] = []
    try:
        observations = read_observations(group["observations"], jpeg, where)
        if convert is not None:
            observations, steps_done = convert(observations)
        actions = group["actions"][()]
        rewards = group["rewards"][()]
        terminations = group["terminations"][()]
        truncations = group["truncations"][()]
    except KeyError as error:
        raise HDF5Error(f"{where}: missing dataset {error}; expected observations, actions, rewards, terminations, truncations") from None
    except MinariSpecError as error:
        raise HDF5Error(str(error)) from None
    except (TypeError, AttributeError, ValueError):
        raise HDF5Error(f"{where}: is not a group of datasets") from None
    steps = len(actions)
    if observations.ndim == 3:
        observations = observations[..., None]
    if observations.shape != (steps + 1, *IMAGE_SHAPE) or observations.dtype != np.uint8:
        raise HDF5Error(
            f"{where}: observations are {observations.dtype} {observations.shape}; expected uint8 "
            f"{(steps + 1, *IMAGE_SHAPE)} (one more frame than the {steps} actions)"
            + ("" if convert is not None or observations.shape[1:] == IMAGE_SHAPE else
               "; Atari screens of another size or colour import with `dreamer-pipeline import-minari-atari`, "
               "which converts them explicitly")
        )
    for key, value in (("actions", actions), ("rewards", rewards), ("terminations", terminations), ("truncations", truncations)):
        if value.shape != (steps,):
            raise HDF5Error(f"{where}: {key} has shape {value.shape}; expected ({steps},)")
    if not np.issubdtype(actions.dtype, np.integer) or (steps and (actions.min() < 0 or actions.max() > np.iinfo(np.int32).max)):
        raise HDF5Error(f"{where}: actions must be non-negative integers (a Discrete action space)")
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
        "action": np.concatenate([[0], actions]).astype(np.int32),
        "is_first": is_first,
        "is_last": is_last,
        "is_terminal": is_terminal,
    }
    if reward_free:
        if not np.all(np.isnan(rewards)):
            raise HDF5Error(f"{where}: flagged reward-free but holds non-NaN rewards")
    else:
        episode["reward"] = np.concatenate([[0.0], rewards]).astype(np.float32)
    return episode, steps_done
