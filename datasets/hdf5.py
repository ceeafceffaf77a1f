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

Untrusted input: a file may be malformed or hostile. Every problem is one `HDF5Error` naming the
file and what is wrong; a store name read from the file must be one path component of letters,
digits, `.`, `_` and `-` (never `.` or `..`), so nothing is written outside the target; rewards must
be finite. Import and export write under a hidden staging name beside the target and rename it
at the end (`durable.staged_directory`): a killed run leaves nothing that looks valid (directory
searches skip hidden folders) and nothing that blocks a rerun.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from tqdm.auto import tqdm

from .dataset import Dataset, open_dataset
from .minari_spec import (
    MINARI_VERSION, MinariSpecError, ale_game_of, env_spec_json, full_action_space_of, jpeg_encoded, parse_env_spec,
    read_observations,
)
from .durable import fsync_all, staged_directory
from .store import ATTRS_KEY, IMAGE_SHAPE, MAX_CHUNK_STEPS, EpisodeError, StoreWriter, validate_episode

MINARI_FILE = "main_data.hdf5"
METADATA_FILE = "metadata.json"
MINARI_LAYOUT_VERSION = MINARI_VERSION  # the first Minari release that reads our export (minari_spec.py)
# An import is staged as a whole (it appears complete or not at all), so it commits in batches of
# about this many steps rather than per episode: each commit costs three rounds of fsync.
IMPORT_COMMIT_STEPS = 4096
EXPORT_FORMAT = "dreamer-pipeline/minari-export"
EXPORT_VERSION = 1
# Store attributes the writer manages itself; the rest is restored from the export.
_MANAGED = ("format", "format_version", "committed_steps", "committed_episodes", "reward_free", "chunk_steps",
            "scalar_chunk_steps")


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
    data = data if isinstance(data, Dataset) else open_dataset(data)
    if compression not in ("gzip", "lzf"):
        raise HDF5Error(f"compression must be 'gzip' or 'lzf' (lossless), got {compression!r}")
    num_actions = data.num_actions
    if num_actions is None:
        raise HDF5Error(f"dataset {data.name!r}: stores carry no action_set attribute; cannot write the action space")
    final_dir = Path(out_dir) / "data"
    if final_dir.exists() and (not final_dir.is_dir() or any(final_dir.iterdir())):
        raise HDF5Error(f"{final_dir}: already exists (a Minari dataset?); choose an empty OUT_DIR")
    dataset_id = dataset_id or _default_id(data)
    with staged_directory(final_dir) as data_dir:  # written whole, then renamed to OUT_DIR/data
        _export_into(data, data_dir, dataset_id, compression, _optional_metadata(data, author, author_email,
                                                                                 code_permalink), progress)
    return final_dir


def _export_into(data: Dataset, data_dir: Path, dataset_id: str, compression: str, optional: dict[str, Any],
                 progress: bool) -> None:
    import h5py

    num_actions, reward_free = data.num_actions, not data.has_reward
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
        **optional,
        "algorithm_name": "dreamer-pipeline " + ",".join(sorted({str(s.attrs.get("policy", {}).get("kind")) for s in data.stores})),
        "description": f"dreamer-pipeline experience ({', '.join(data.games)}); 64x64 grayscale Atari frames",
        "requirements": ["ale-py>=0.9"],
        "dataset_size": round(sum(p.stat().st_size for p in data_dir.iterdir()) / 1e6, 1),
        ATTRS_KEY: provenance,
    }
    (data_dir / METADATA_FILE).write_text(json.dumps(metadata))
    fsync_all([data_dir / MINARI_FILE, data_dir / METADATA_FILE, data_dir])


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
    store_path = Path(store_path)
    try:
        jpeg = jpeg_encoded(metadata)
    except MinariSpecError as error:
        raise HDF5Error(f"{file_path.parent / METADATA_FILE}: {error}") from None
    try:
        file = h5py.File(file_path, "r")
    except OSError as error:
        raise HDF5Error(f"{file_path}: not a readable HDF5 file ({error})") from None
    with file:
        names = _episode_names(file_path, file.keys())
        provenance = _read_provenance(file_path, file, metadata, action_set, attrs)
        reward_free = provenance["reward_free"]
        stores = _check_stores(file_path, provenance["stores"], len(names))
        if store_path.exists():
            raise HDF5Error(f"{store_path}: already exists; import into a new store path")
        single = len(stores) == 1
        relative = [None] if single else [s["name"] for s in stores]
        if not single and len(set(relative)) != len(relative):
            relative = [f"{i:03d}-{s['name']}" for i, s in enumerate(stores)]
        bar = tqdm(total=len(names), desc="import", unit="episode", disable=not progress)
        with staged_directory(store_path) as staging:  # renamed to store_path once every store is whole
            for store_meta, name in zip(stores, relative):
                target = staging if name is None else staging / name
                store_attrs = {k: v for k, v in store_meta["attrs"].items() if k not in _MANAGED}
                origin = {"kind": "minari-hdf5", "path": str(file_path), "jpeg": jpeg}
                if "dataset_id" in metadata:
                    origin["dataset_id"] = metadata["dataset_id"]
                store_attrs["imported_from"] = origin
                with StoreWriter.open(target, store_attrs, reward_free=reward_free,
                                      chunk_steps=store_meta["chunk_steps"]) as writer:
                    first, count = store_meta["first_episode"], store_meta["episodes"]
                    pending: list[tuple[str, dict]] = []
                    conversions: list[str] = []
                    for episode_name in names[first : first + count]:
                        episode, steps = _read_episode(file_path, file[episode_name], episode_name, reward_free, jpeg,
                                                       convert)
                        conversions = conversions or steps
                        pending.append((episode_name, episode))
                        if (sum(len(e["is_first"]) for _, e in pending) >= IMPORT_COMMIT_STEPS
                                or episode_name == names[first + count - 1]):
                            _commit(writer, file_path, pending)
                            bar.update(len(pending))
                            pending = []
                    if conversions:
                        writer.update_attrs(imported_from={**origin, "conversion": conversions})
                    if "created" in store_attrs:
                        writer.update_attrs(created=store_attrs["created"])
        bar.close()
    return [store_path] if single else [store_path / name for name in relative]


# -- internals ---------------------------------------------------------------------------------------


def _commit(writer: StoreWriter, file_path: Path, episodes: list[tuple[str, dict]]) -> None:
    try:
        writer.append_episodes([episode for _, episode in episodes])
    except EpisodeError as error:  # name the episode: check them one by one
        for name, episode in episodes:
            try:
                validate_episode(episode, writer.reward_free)
            except EpisodeError as problem:
                raise HDF5Error(f"{file_path}: {name}: {problem}") from None
        raise HDF5Error(f"{file_path}: episodes {episodes[0][0]}..{episodes[-1][0]}: {error}") from None


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
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise HDF5Error(f"{path}: not valid JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise HDF5Error(f"{path}: holds a JSON {type(metadata).__name__}, not an object")
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
    name = dataset_id.rstrip("/").rsplit("/", 1)[-1]  # one store: never a path
    return {"reward_free": False, "stores": [{"name": name, "attrs": store_attrs}]}


def _episode_names(file_path: Path, keys) -> list[str]:
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


def _read_provenance(file_path: Path, file: Any, metadata: dict[str, Any], action_set: dict[str, Any] | None,
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


def _check_stores(file_path: Path, stores: list, episodes: int) -> list[dict[str, Any]]:
    """Validated store records: a safe name, attributes, an episode range inside the file, chunk steps."""
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
        covered += count
        checked.append({**record, "name": name, "first_episode": first, "episodes": count, "chunk_steps": chunk_steps})
    if covered != episodes:
        raise HDF5Error(f"{file_path}: the provenance's stores cover {covered} episodes, the file holds {episodes}")
    return checked


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
    except OSError as error:  # h5py: a damaged dataset or filter
        raise HDF5Error(f"{where}: cannot be read ({error})") from None
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
        if not np.issubdtype(rewards.dtype, np.number):
            raise HDF5Error(f"{where}: rewards are {rewards.dtype}, not numbers")
        bad = np.flatnonzero(~np.isfinite(rewards.astype(np.float64)))
        if len(bad):
            raise HDF5Error(f"{where}: rewards hold {len(bad)} non-finite values (NaN or inf), first at transition "
                            f"{int(bad[0])}; a reward-free dataset must be flagged so (all rewards NaN)")
        episode["reward"] = np.concatenate([[0.0], rewards]).astype(np.float32)
    return episode, steps_done
