"""Export datasets to Minari's HDF5 layout and import them back, bit-exact (the checked reading of a
file lives in `hdf5_reading.py`).

Layout written by `export_minari(dataset, out_dir)` (Minari 0.5.4, `data_format: "hdf5"`,
`jpeg_encoding: false`, so `minari.MinariDataset(out_dir / "data")` or `minari.load_dataset(id)`
with `MINARI_DATASETS_PATH` pointing at the parent of `<id>` reads it, and
`recover_environment()` rebuilds the environment from `env_spec`; Minari's conventions are in
`datasets/interop/minari_spec.py`):

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
Actions are int64 for a discrete action space (Minari's Discrete convention) and float32 (T, A) for
a continuous one (a Box with the store's bounds); observations are (T + 1, 64, 64, C), grayscale
or RGB; rewards float64 (float32 values round-trip). The action space and image shape are also in
the provenance (`action_space`, `image_shape`, and in every store's attributes); import checks
that the arrays agree with them.
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

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from tqdm.auto import tqdm

from ..dataset import Dataset, open_dataset
from .minari_spec import (
    MINARI_VERSION, MinariSpecError, action_space_json, env_spec_json, jpeg_encoded, observation_space_json,
)
from ..durable import fsync_all, staged_directory, write_new_file
from .hdf5_reading import (  # noqa: F401  (HDF5Error, safe_name, read_minari_metadata: public here too)
    METADATA_FILE, MINARI_FILE, HDF5Error, check_stores, contained, episode_names, locate_file, read_episode,
    read_metadata, read_minari_metadata, read_provenance, safe_name,
)
from ..store import ATTRS_KEY, NO_SPACE_ERRNOS, EpisodeError, StoreFullError, StoreWriter

MINARI_LAYOUT_VERSION = MINARI_VERSION  # the first Minari release that reads our export (minari_spec.py)
# An import is staged as a whole (it appears complete or not at all), so it commits in batches of
# about this many steps rather than per episode: each commit costs three rounds of fsync.
IMPORT_COMMIT_STEPS = 4096
EXPORT_FORMAT = "dreamer-pipeline/minari-export"
EXPORT_VERSION = 1
# Store attributes the writer manages itself; the rest is restored from the export.
_MANAGED = ("format", "format_version", "committed_steps", "committed_episodes", "reward_free", "chunk_steps",
            "scalar_chunk_steps")


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
    final_dir = Path(out_dir) / "data"
    for store in data.stores:  # inside a store it would be a foreign member of the store
        if final_dir.resolve().is_relative_to(store.path.resolve()):
            raise HDF5Error(f"{out_dir}: lies inside the exported store {store.path}; export to a folder outside it")
    if final_dir.exists() and (not final_dir.is_dir() or any(final_dir.iterdir())):
        raise HDF5Error(f"{final_dir}: already exists (a Minari dataset?); choose an empty OUT_DIR")
    dataset_id = dataset_id or _default_id(data)
    _check_free_space(data, final_dir)
    try:
        with staged_directory(final_dir) as data_dir:  # written whole, then renamed to OUT_DIR/data
            _export_into(data, data_dir, dataset_id, compression, _optional_metadata(data, author, author_email,
                                                                                     code_permalink), progress)
    except OSError as error:
        if error.errno not in NO_SPACE_ERRNOS:
            raise
        raise HDF5Error(f"{final_dir}: cannot be written: {error.strerror} (writing {error.filename}); nothing was "
                        "written: free space and rerun") from None
    return final_dir


def _check_free_space(data: Dataset, final_dir: Path) -> None:
    """Refuse at once an export that cannot fit: the frames compress about as well with gzip as in
    the store with zstd, so needing under half the stores' chunk bytes would be a surprise."""
    folder = final_dir
    while not folder.exists():
        folder = folder.parent
    stored = sum(entry.stat().st_size for store in data.stores for entry in store.path.rglob("*")
                 if entry.is_file() and not entry.is_symlink())
    free = shutil.disk_usage(folder).free
    if free < stored // 2:
        raise HDF5Error(f"{final_dir}: needs about {stored / 2**20:.1f} MiB (the stores' size), but {folder} has "
                        f"{free / 2**20:.1f} MiB free; nothing was written")


class _KeptErrorFile(io.RawIOBase):
    """The export's HDF5 file, written through Python (h5py's file-object driver).

    Why: on a full disk, HDF5 itself failed, printed 1,306 lines of tracebacks while retrying its
    flush, and crashed the interpreter at exit (exit 139). Here the first failed write is kept
    and later writes are dropped, so HDF5 closes cleanly; `__exit__` then raises the kept error
    (with the file's name: one line on the command line), and the staging folder is removed.
    The file is created new (`O_EXCL | O_NOFOLLOW`): never written through a planted link.
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.error: OSError | None = None
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        self.file = os.fdopen(os.open(path, flags, 0o666), "r+b", buffering=0)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self.file.readinto(buffer)

    def write(self, data) -> int:
        view = memoryview(data)
        size = len(view)
        while self.error is None and len(view):
            try:
                view = view[self.file.write(view):]
            except OSError as error:
                self.error = error
        return size

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self.file.truncate(size)
            except OSError as error:
                self.error = error
        return self.file.tell() if size is None else size

    def flush(self) -> None:
        pass

    def __exit__(self, *exc: Any) -> None:
        self.file.close()
        self.close()
        if self.error is not None:  # the cause of whatever HDF5 raised inside the block
            raise OSError(self.error.errno, self.error.strerror, str(self.path)) from None


def _export_into(data: Dataset, data_dir: Path, dataset_id: str, compression: str, optional: dict[str, Any],
                 progress: bool) -> None:
    import h5py

    space, image_shape, reward_free = data.action_space, tuple(data.image_shape), not data.has_reward
    options = {"compression": compression, **({"compression_opts": 4} if compression == "gzip" else {})}

    table = data.episodes
    stores_meta: list[dict[str, Any]] = []
    total_steps = 0
    sink = _KeptErrorFile(data_dir / MINARI_FILE)
    with sink, h5py.File(sink, "w", track_order=True) as file:
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
            chunk = (max(1, min(length, 64)), *image_shape)
            group.create_dataset("observations", data=image, chunks=chunk, **options)
            group.create_dataset("actions", data=action[1:].astype(np.int64 if space.is_discrete else np.float32))
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
            "action_space": space.to_dict(),
            "image_shape": list(image_shape),
            "stores": [{k: v for k, v in meta.items() if k != "_store"} for meta in stores_meta],
        }
        file.attrs[ATTRS_KEY] = json.dumps(provenance)
    metadata = {
        "dataset_id": dataset_id,
        "total_episodes": len(table),
        "total_steps": total_steps,
        "data_format": "hdf5",
        "jpeg_encoding": False,
        "observation_space": observation_space_json(image_shape),
        "action_space": action_space_json(space),
        "minari_version": MINARI_LAYOUT_VERSION,
        **optional,
        "algorithm_name": "dreamer-pipeline " + ",".join(sorted({str(s.attrs.get("policy", {}).get("kind")) for s in data.stores})),
        "description": f"dreamer-pipeline experience ({', '.join(data.games)}); 64x64 "
                       f"{'grayscale' if image_shape[-1] == 1 else 'RGB'} frames, {space} actions",
        "requirements": ["ale-py>=0.9"] if "env_spec" in optional else [],
        "dataset_size": round(sum(p.stat().st_size for p in data_dir.iterdir()) / 1e6, 1),
        ATTRS_KEY: provenance,
    }
    write_new_file(data_dir / METADATA_FILE, json.dumps(metadata).encode())
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
    `env_spec`), `attrs` add provenance (game, env, policy; `action_space` and
    `image_shape` when they are not Atari's discrete actions and grayscale frames), and `convert`
    turns its frames into the store's (e.g. `frames.to_store_frames`; default: they must be 64x64
    already, grayscale unless `attrs` say `image_shape` [64, 64, 3]).
    """
    import h5py

    file_path = locate_file(Path(source))
    metadata = read_metadata(file_path)
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
        names = episode_names(file_path, file.keys())
        provenance = read_provenance(file_path, file, metadata, action_set, attrs)
        reward_free = provenance["reward_free"]
        stores = check_stores(file_path, provenance["stores"], len(names), provenance)
        if store_path.exists():
            raise HDF5Error(f"{store_path}: already exists; import into a new store path")
        single = len(stores) == 1
        relative = [None] if single else [s["name"] for s in stores]
        if not single and len(set(relative)) != len(relative):
            relative = [f"{i:03d}-{s['name']}" for i, s in enumerate(stores)]
        bar = tqdm(total=len(names), desc="import", unit="episode", disable=not progress)
        try:
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
                            group = _episode_group(file_path, file, episode_name)
                            episode, steps = read_episode(file_path, group, episode_name, reward_free, jpeg, convert,
                                                          store_meta["schema"])
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
        except (StoreFullError, OSError) as error:
            cause = error.cause if isinstance(error, StoreFullError) else error
            if cause.errno not in NO_SPACE_ERRNOS:
                raise
            raise HDF5Error(f"{store_path}: cannot be written: {cause.strerror} (writing {cause.filename}); nothing "
                            "was written: free space and rerun") from None
        bar.close()
    return [store_path] if single else [store_path / name for name in relative]


# -- internals ---------------------------------------------------------------------------------------


def _episode_group(file_path: Path, file: Any, name: str) -> Any:
    try:
        return contained(file_path, file, name, str(file_path), kind="group")
    except KeyError:  # listed a moment ago: the file changed under us
        raise HDF5Error(f"{file_path}: {name} vanished while reading") from None


def _commit(writer: StoreWriter, file_path: Path, episodes: list[tuple[str, dict]]) -> None:
    try:
        writer.append_episodes([episode for _, episode in episodes])
    except EpisodeError as error:  # name the episode: check them one by one
        for name, episode in episodes:
            try:
                writer.schema.validate_episode(episode, writer.reward_free)
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


def _default_id(data: Dataset) -> str:
    game = (data.games[0] if len(data.games) == 1 else "mixed").lower()
    name = data.name.removesuffix(".zarr").replace(".zarr+", "+")
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "dataset"
    return f"dreamer-pipeline/{game}/{name}-v0"
