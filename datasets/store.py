"""Zarr v3 experience stores (format version 2; version 1 still reads): one writer per store,
episodes committed whole.

The schema (what each array holds for the store's action space and image shape, format versions 1
and 2, the checks on an episode) is `datasets/schema.py`; its names are importable from here too.

Commit protocol: `append_episode` writes every array first, then bumps `committed_steps` in the
group attributes (the commit record, the group's `zarr.json`). Readers never look past that
counter, so a writer killed mid-episode loses at most that episode, and reopening the writer
trims the uncommitted tail. Durability: every chunk file and the folders that name them are
fsynced before the commit record is replaced, and the record is replaced last (datasets/durable.py),
so a power loss never loses what was reported committed.

Integrity: one writer per store, enforced by a lock file (datasets/store_lock.py); every chunk
carries a crc32c checksum (zarr v3's codec); opening a store checks that every chunk file of the
committed range exists, reads check the checksums, and resuming checks that the committed range
ends on an episode boundary with counters that agree with the flags. Each problem is one
`StoreError` naming the store, the array and the chunk. `datasets/verify.py` checks everything.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import shutil
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from .chunk_writer import ChunkAppender
from .chunks import ChunkReader
from .durable import fsync_all, replace_files
from .schema import (  # noqa: F401  (the schema's public names, importable from here as before)
    ATTRS_KEY, FLAG_KEYS, FORMAT_NAME, FORMAT_VERSION, IMAGE_SHAPE, MAX_CHUNK_STEPS, READABLE_VERSIONS, ActionSpace,
    ArrayMetadataError, EpisodeError, SchemaError, StoreSchema, check_array_metadata, schema_for_writer, schema_of,
    validate_episode,
)
from .store_error import StoreError
from .store_lock import LOCK_NAME, StoreLock

DEFAULT_CHUNK_STEPS = 64  # image chunks: see benchmarks/bench_store_layout.py and docs/experience.md
DEFAULT_ZSTD_LEVEL = 3
# Per-step scalars (action, reward, flags) compress to a few bytes per chunk, so with image-sized
# chunks a store would be mostly tiny files, each costing a file-system block (measured: 320 B/step
# of disk for scalars alone at 64-step chunks, against about 40 B/step of random-policy images).
# Readers load them in long contiguous runs anyway.
SCALAR_CHUNK_STEPS = 8192
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota, file size limit
MAX_ARRAY_METADATA_BYTES = 1 << 16  # the writer's are about 600 bytes


class StoreFullError(StoreError):
    """A commit failed for want of space (disk full, quota, file size limit); nothing committed was lost."""

    def __init__(self, path: str | os.PathLike, problem: str, cause: OSError):
        super().__init__(path, problem)
        self.cause = cause


@dataclass(frozen=True)
class EpisodeIndex:
    """Where each committed episode lies: `starts[i]` is its first step, `lengths[i]` its size."""

    starts: np.ndarray  # int64
    lengths: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.starts)


def count_attribute(meta: Mapping[str, Any], key: str, path: str | os.PathLike) -> int:
    """A counter of the commit record, strictly a non-negative integer (never coerced)."""
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StoreError(path, f"attribute {key} is {value!r}, not a count of steps or episodes: the commit "
                               "record is damaged")
    return value


def _check_array_metadata(path: Path, key: str, dtype: np.dtype, step_shape: tuple[int, ...],
                          schema: StoreSchema) -> None:
    """The array's zarr.json must be what the writer writes (schema.check_array_metadata)."""
    meta_path = path / key / "zarr.json"
    try:
        with open(meta_path, "rb") as file:
            text = file.read(MAX_ARRAY_METADATA_BYTES + 1)
        if len(text) > MAX_ARRAY_METADATA_BYTES:
            raise ArrayMetadataError("(root)", f"is over {MAX_ARRAY_METADATA_BYTES} bytes long")
        meta = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoreError(path, f"array {key!r} metadata {meta_path} is not valid JSON ({error})") from None
    except ArrayMetadataError as error:
        raise StoreError(path, f"array {key!r} metadata {meta_path}: {error}") from None
    try:
        check_array_metadata(meta, dtype, step_shape)
    except ArrayMetadataError as error:
        if error.field == "data_type":
            raise StoreError(path, f"array {key!r} {error}") from None
        if str(error).startswith("has step shape"):
            raise StoreError(path, f"array {key!r} {error} (action space {schema.action_space}, image shape "
                                   f"{list(schema.image_shape)})") from None
        raise StoreError(path, f"array {key!r} {error}; this store's writer writes nothing else, so the array "
                               f"cannot be read as data ({meta_path} was edited or damaged)") from None


def _trim_array(directory: Path, steps: int, fsync: bool) -> None:
    """Cut an array to `steps`: its metadata's length, then the chunk files past it.

    Not zarr's `resize`, which enumerates every chunk of the old length: a length edited to 1e12
    made resuming hang. The array's layout is the writer's (checked on opening), so its chunk
    files are `c/<time chunk>[/0...]`; the chunk holding the new end keeps its stale rows, which
    lie past the length (never read) and are overwritten by the next append.
    """
    meta_path = directory / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["shape"][0] = int(steps)
    chunk_steps = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
    replace_files([], (meta_path, json.dumps(meta, indent=2).encode()), fsync=fsync)
    keep = -(-int(steps) // chunk_steps)
    chunks = directory / "c"
    for entry in (chunks.iterdir() if chunks.is_dir() else ()):
        if entry.name.isdigit() and int(entry.name) >= keep:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def episode_index_from_flags(is_first: np.ndarray, is_last: np.ndarray) -> EpisodeIndex:
    starts = np.flatnonzero(is_first).astype(np.int64)
    ends = np.flatnonzero(is_last).astype(np.int64) + 1
    if len(starts) != len(ends) or (len(starts) and (starts[0] != 0 or np.any(ends <= starts))):
        raise ValueError("is_first/is_last do not delimit whole episodes")
    if len(starts) > 1 and np.any(starts[1:] != ends[:-1]):
        raise ValueError("episodes are not contiguous")
    return EpisodeIndex(starts=starts, lengths=ends - starts)


class ExperienceStore:
    """Read access to one committed experience store. Opening validates the schema.

    `ExperienceStore(path)` raises `StoreError` naming the store and the mismatch: the schema, the
    counters, and that every chunk file of the committed range exists. Reads are limited to the
    committed steps and check each chunk's checksum.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(path, "does not exist")
        if not (self.path / "zarr.json").is_file():
            raise StoreError(path, "is not a zarr v3 group (no zarr.json)")
        try:
            group = zarr.open_group(str(self.path), mode="r", zarr_format=3)
            meta = dict(group.attrs).get(ATTRS_KEY)
        except Exception as error:  # zarr raises several types for foreign or damaged metadata
            raise StoreError(path, f"is not a zarr v3 group ({type(error).__name__}: {error})") from None
        self.group = group
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise StoreError(path, f"is not a dreamer-pipeline experience store (no '{ATTRS_KEY}' attributes)")
        version = meta.get("format_version")
        if type(version) is not int or version not in READABLE_VERSIONS:  # never True or 1.0
            raise StoreError(path, f"has format version {meta.get('format_version')!r}; this code reads versions "
                                   f"{' and '.join(map(str, READABLE_VERSIONS))}")
        self.attrs: dict[str, Any] = meta
        self.format_version = int(meta["format_version"])
        try:
            self.schema = schema_of(meta)
        except SchemaError as error:
            raise StoreError(path, f"has a damaged schema record: {error}") from None
        if not isinstance(meta.get("reward_free", False), bool):
            raise StoreError(path, f"attribute reward_free is {meta.get('reward_free')!r}, not true or false")
        self.reward_free = bool(meta.get("reward_free", False))
        if "committed_steps" not in meta or "committed_episodes" not in meta:
            raise StoreError(path, "has no committed_steps/committed_episodes counters")
        self.num_steps = count_attribute(meta, "committed_steps", path)
        self.num_episodes = count_attribute(meta, "committed_episodes", path)
        if (self.num_steps == 0) != (self.num_episodes == 0):
            raise StoreError(path, f"is corrupt: {self.num_steps} committed steps in {self.num_episodes} episodes")
        self.arrays: dict[str, zarr.Array] = {}
        for key, (dtype, shape) in self.schema.arrays(self.reward_free).items():
            # Members are looked up by name, not listed: a listing would warn about the lock file.
            if not (self.path / key / "zarr.json").is_file():
                raise StoreError(path, f"is missing the array {key!r}")
            _check_array_metadata(self.path, key, dtype, shape, self.schema)  # before zarr acts on what it says
            try:
                array = group[key]
            except Exception as error:  # noqa: BLE001 - damaged array metadata
                raise StoreError(path, f"array {key!r} cannot be opened ({type(error).__name__}: {error})") from None
            if array.dtype != dtype:
                raise StoreError(path, f"array {key!r} has dtype {array.dtype}, expected {dtype}")
            if tuple(array.shape[1:]) != shape:
                raise StoreError(path, f"array {key!r} has step shape {tuple(array.shape[1:])}, expected {shape} "
                                       f"(action space {self.schema.action_space}, image shape "
                                       f"{list(self.schema.image_shape)})")
            if array.shape[0] < self.num_steps:
                raise StoreError(
                    path, f"array {key!r} holds {array.shape[0]} steps but {self.num_steps} are committed"
                )
            self.arrays[key] = array
        if self.reward_free and (self.path / "reward" / "zarr.json").exists():
            raise StoreError(path, "is flagged reward-free but holds a 'reward' array")
        self.readers = {key: ChunkReader(array, self.path) for key, array in self.arrays.items()}
        for key, reader in self.readers.items():
            missing = reader.missing_chunks(self.num_steps)
            if missing:
                more = f" ({len(missing)}{' or more' if len(missing) >= 1000 else ''} of the committed range are " \
                    "missing)" if len(missing) > 1 else ""
                raise reader.error(missing[0], f"is missing (no file {reader.chunk_path(missing[0])}){more}")
        self._episodes: EpisodeIndex | None = None

    @property
    def has_reward(self) -> bool:
        return not self.reward_free

    @property
    def action_space(self) -> ActionSpace:
        """Discrete (n actions) or continuous (A-vectors in [low, high]); a version-1 store's is discrete."""
        return self.schema.action_space

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(64, 64, C): C = 1 grayscale (every version-1 store), 3 RGB."""
        return self.schema.image_shape

    @property
    def provenance(self) -> dict[str, Any]:
        """The attributes with `action_space` and `image_shape` filled in (a version-1 store records
        neither): what a writer's attributes are compared against (`provenance_mismatch`)."""
        return {**self.attrs, **self.schema.attributes()}

    @property
    def checksummed(self) -> bool:
        """Whether every array's chunks carry a crc32c checksum (stores written before it do not)."""
        return all(reader.checksummed for reader in self.readers.values())

    def __len__(self) -> int:
        return self.num_steps

    def __repr__(self) -> str:
        return f"ExperienceStore({str(self.path)!r}, steps={self.num_steps}, episodes={self.num_episodes})"

    def read(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Committed steps [start, stop) of one array (checksums verified)."""
        if key == "reward" and self.reward_free:
            raise StoreError(self.path, "is reward-free: it stores no rewards")
        if key not in self.arrays:
            raise KeyError(f"{key!r} is not an array of {self.path}; arrays: {sorted(self.arrays)}")
        stop = self.num_steps if stop is None else min(stop, self.num_steps)
        start = min(max(0, int(start)), max(stop, 0))
        return self.readers[key].read_range(start, stop)

    def episodes(self) -> EpisodeIndex:
        """Start and length of every committed episode (computed once from the flags)."""
        if self._episodes is None:
            try:
                index = episode_index_from_flags(self.read("is_first"), self.read("is_last"))
            except ValueError as error:
                if isinstance(error, StoreError):
                    raise
                raise StoreError(self.path, f"is corrupt: {error}") from None
            if len(index) != self.num_episodes:
                raise StoreError(
                    self.path, f"is corrupt: flags delimit {len(index)} episodes, attributes say {self.num_episodes}"
                )
            self._episodes = index
        return self._episodes


class StoreWriter:
    """The single writer of one store. Create or resume with `StoreWriter.open(path, attrs)`.

    `attrs` are the provenance attributes (game, ale-py version, environment settings, action set,
    policy, seed, ...). On resume they must agree with the store's on every key given, except
    volatile ones listed in `RESUME_MAY_DIFFER`, so that a rerun never mixes two configurations.

    The writer holds the store's lock (datasets/store_lock.py) until `close()` (or the end of a
    `with` block, or garbage collection); a second writer gets a `StoreLockedError`.
    """

    RESUME_MAY_DIFFER = frozenset({"created", "writer_id", "committed_steps", "committed_episodes", "resumed"})

    def __init__(self, path: Path, group: zarr.Group, meta: dict[str, Any], *, fsync: bool = True):
        self.path = path
        self.group = group
        self.meta = meta
        self.fsync = fsync
        self.reward_free = bool(meta["reward_free"])
        self.schema = schema_of(meta)  # already checked by the caller (new, or opened by ExperienceStore)
        self.arrays = {key: group[key] for key in self.schema.arrays(self.reward_free)}
        self._appenders: dict[str, ChunkAppender | None] | None = None  # built on the first append
        self._group_json = json.loads((path / "zarr.json").read_text())
        self._lock: StoreLock | None = None
        self._release = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        attrs: Mapping[str, Any],
        *,
        action_space: Any = None,
        image_shape: Sequence[int] | None = None,
        reward_free: bool = False,
        chunk_steps: int = DEFAULT_CHUNK_STEPS,
        zstd_level: int = DEFAULT_ZSTD_LEVEL,
        checksum: bool = True,
        fsync: bool = True,
        break_lock: bool = False,
    ) -> "StoreWriter":
        """Take the store's writer lock, then create the store or resume it.

        The action space and image shape (datasets/schema.py) come from `action_space` (the
        contract's dict, or anything with `to_dict()`) and `image_shape` ([64, 64, C]), else from
        the attributes of those names, else discrete over `attrs["action_set"]` with (64, 64, 1)
        images (Atari). A new store records both (format version 2); a resumed store must already
        hold what is given. A version-1 store is resumed as version 1 (the same layout, discrete
        and grayscale); new stores are always version 2.
        `checksum` adds zarr's crc32c codec to a new store's arrays; `fsync=False` skips the
        durability syncs (only for scratch data: a power loss may then lose committed episodes);
        `break_lock` takes the lock of a writer on another host (see store_lock.py).
        """
        path = Path(path)
        if isinstance(chunk_steps, bool) or not isinstance(chunk_steps, (int, np.integer)) \
                or not 1 <= int(chunk_steps) <= MAX_CHUNK_STEPS:
            raise StoreError(path, f"chunk_steps must be an integer from 1 to {MAX_CHUNK_STEPS}, got {chunk_steps!r}")
        if path.exists() and not path.is_dir():
            raise StoreError(path, "exists and is not a directory")
        described = action_space is not None or image_shape is not None or any(
            key in attrs for key in ("action_space", "image_shape", "action_set"))
        try:  # before the lock: a bad description creates nothing
            schema = schema_for_writer(attrs, action_space, image_shape) if described else None
        except SchemaError as error:
            raise StoreError(path, f"cannot be written, nothing was written: {error}") from None
        lock = StoreLock(path, break_lock=break_lock).acquire()
        try:
            if (path / "zarr.json").exists():
                writer = cls._resume(path, attrs, schema, reward_free, fsync)
            elif schema is None:
                raise StoreError(path, "cannot be created: a new store needs its action space (pass action_space, "
                                       "or an 'action_space' or 'action_set' attribute)")
            else:
                writer = cls._create(path, attrs, schema, reward_free, int(chunk_steps), zstd_level, checksum, fsync)
        except BaseException:
            lock.release()
            raise
        writer._lock = lock
        writer._release = weakref.finalize(writer, lock.release)  # also at exit, if never closed
        return writer

    @classmethod
    def _create(cls, path: Path, attrs: Mapping[str, Any], schema: StoreSchema, reward_free: bool, chunk_steps: int,
                zstd_level: int, checksum: bool, fsync: bool) -> "StoreWriter":
        others = sorted(p.name for p in path.iterdir() if p.name != LOCK_NAME)
        if others:
            raise StoreError(path, f"exists and is not an experience store (it holds {others[:5]}); choose a new path")
        group = zarr.open_group(str(path), mode="a", zarr_format=3)  # "a": the folder holds our lock file
        scalar_chunk_steps = max(int(chunk_steps), SCALAR_CHUNK_STEPS)
        codecs = [ZstdCodec(level=zstd_level)] + ([Crc32cCodec()] if checksum else [])
        arrays = schema.arrays(reward_free)
        for key, (dtype, shape) in arrays.items():
            group.create_array(
                key,
                shape=(0, *shape),
                chunks=(chunk_steps if key == "image" else scalar_chunk_steps, *shape),
                dtype=dtype,
                compressors=codecs,
                fill_value=0,
            )
        meta = {
            **dict(attrs),
            **schema.attributes(),
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "reward_free": bool(reward_free),
            "chunk_steps": int(chunk_steps),
            "scalar_chunk_steps": scalar_chunk_steps,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "writer_id": attrs.get("writer_id") or uuid.uuid4().hex,
            "committed_steps": 0,
            "committed_episodes": 0,
        }
        writer = cls(path, group, meta, fsync=fsync)
        if fsync:  # the new folders and metadata files, before the first commit record names them
            keys = list(arrays)
            fsync_all([path / key / "zarr.json" for key in keys] + [path / key for key in keys] + [path.parent])
        writer._write_record(meta)
        return writer

    @classmethod
    def _resume(cls, path: Path, attrs: Mapping[str, Any], schema: StoreSchema | None, reward_free: bool,
                fsync: bool) -> "StoreWriter":
        reader = ExperienceStore(path)  # validates the schema, the counters, the chunk files
        meta = dict(reader.attrs)
        if meta["reward_free"] != bool(reward_free):
            raise StoreError(path, f"exists with reward_free={meta['reward_free']}, asked to resume with {reward_free}")
        if schema is not None and schema != reader.schema:
            raise StoreError(path, f"exists with action space {reader.action_space} and image shape "
                                   f"{list(reader.image_shape)}; this writer has {schema.action_space} and "
                                   f"{list(schema.image_shape)}. Use a new store path or the original settings.")
        problem = provenance_mismatch(reader.provenance, attrs, cls.RESUME_MAY_DIFFER)
        if problem:
            raise StoreError(path, f"{problem}. Use a new store path or the original settings.")
        try:  # the committed range must end on an episode boundary, with counters that match the flags
            reader.episodes()
        except StoreError as error:
            raise StoreError(path, f"cannot be resumed, nothing was written: {error.problem}. The commit record "
                                   "disagrees with the data; check it with `dreamer-pipeline verify`") from None
        committed = meta["committed_steps"]
        for key, array in reader.arrays.items():  # drop the tail of an episode that was never committed
            if array.shape[0] != committed:
                _trim_array(path / key, committed, fsync)
        group = zarr.open_group(str(path), mode="r+", zarr_format=3)
        writer = cls(path, group, meta, fsync=fsync)
        for leftover in path.rglob("*.partial"):  # temporary files of a write that was killed
            leftover.unlink(missing_ok=True)
        writer._write_record({**meta, "resumed": int(meta.get("resumed", 0)) + 1})
        return writer

    @property
    def committed_steps(self) -> int:
        return int(self.meta["committed_steps"])

    @property
    def committed_episodes(self) -> int:
        return int(self.meta["committed_episodes"])

    @property
    def closed(self) -> bool:
        return self._lock is not None and not self._lock.held

    def close(self) -> None:
        """Release the store's writer lock; the writer cannot write afterwards."""
        if self._release is not None:
            self._release()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def append_episode(self, episode: Mapping[str, np.ndarray]) -> None:
        """Write one whole episode, then commit it by bumping the counters."""
        self.append_episodes([episode])

    def append_episodes(self, episodes: Sequence[Mapping[str, np.ndarray]]) -> None:
        """Write whole episodes, then commit them together with one bump of the counters.

        Committing several episodes at once amortises the commit's file replacements (each chunk
        holding the end of the data, each array's metadata and the group's attributes, each
        fsynced), which cost far more than the data on a journaling file system (see
        pipelines/acting/collector.py).
        """
        self._check_open()
        lengths = self._validate(episodes)  # all, before any write
        if not lengths:
            return
        start = self.committed_steps
        try:
            if self._appenders is None:  # direct chunk-file writes where possible (see chunk_writer.py)
                self._appenders = {key: ChunkAppender.for_array(array, start, self.path)
                                   for key, array in self.arrays.items()}
            files: list[tuple[Path, bytes]] = []
            directories: list[Path] = []
            for key, array in self.arrays.items():
                appender = self._appenders[key]
                values = np.concatenate([np.asarray(episode[key]) for episode in episodes]) if len(episodes) > 1 \
                    else np.asarray(episodes[0][key])
                if appender is not None:
                    appender.append(values)
                    appender.publish()
                    staged, created = appender.take_staged()
                    files += staged
                    directories += created
                else:
                    array.resize((start + len(values), *array.shape[1:]))
                    array[start : start + len(values)] = values
            committed = {**self.meta, "committed_steps": start + sum(lengths),
                         "committed_episodes": self.committed_episodes + len(lengths)}
            self._write_record(committed, files, directories)  # chunks, metadata, then the commit point
        except BaseException as error:
            for appender in (self._appenders or {}).values():
                if appender is not None:
                    appender.discard_staged()
            self._appenders = None  # start over from the committed counter on the next call
            if isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS:
                raise StoreFullError(self.path, f"cannot commit {sum(lengths)} more steps: {error.strerror} (writing "
                                                f"{error.filename}); the {self.committed_steps} committed steps are "
                                                "intact: free space and rerun to resume", error) from None
            raise

    def update_attrs(self, **values: Any) -> None:
        """Record extra provenance (never the counters)."""
        self._check_open()
        for key in ("committed_steps", "committed_episodes", "format", "format_version", "action_space",
                    "image_shape"):
            if key in values:
                raise ValueError(f"{key} is managed by the writer")
        self._write_record({**self.meta, **values})

    def _write_record(self, meta: dict[str, Any], files: Sequence[tuple[Path, bytes]] = (),
                      directories: Sequence[Path] = ()) -> None:
        """Replace `files`, then the group's attributes (the commit record) last; durable when fsync."""
        group_json = dict(self._group_json)
        group_json["attributes"] = {**group_json.get("attributes", {}), ATTRS_KEY: _jsonable(meta)}
        record = json.dumps(group_json, indent=2).encode()
        replace_files(files, (self.path / "zarr.json", record), fsync=self.fsync, changed_directories=directories)
        self._group_json = group_json
        self.meta = meta

    def _check_open(self) -> None:
        if self.closed:
            raise StoreError(self.path, "this writer was closed (its lock released); open a new StoreWriter")

    def _validate(self, episodes: Sequence[Mapping[str, np.ndarray]]) -> list[int]:
        lengths = []
        for index, episode in enumerate(episodes):
            try:
                lengths.append(self.schema.validate_episode(episode, self.reward_free))
            except EpisodeError as error:
                which = f"episode {index + 1} of the {len(episodes)} given" if len(episodes) > 1 else "the episode"
                raise EpisodeError(f"experience store {self.path}: {which} was refused, nothing was written: "
                                   f"{error}") from None
        return lengths


def provenance_mismatch(meta: Mapping[str, Any], attrs: Mapping[str, Any], ignore=StoreWriter.RESUME_MAY_DIFFER) -> str | None:
    """Why `attrs` disagree with a store's attributes `meta` (None if they agree on every key given)."""
    for key, value in attrs.items():
        if key in ignore:
            continue
        if _jsonable(meta.get(key)) != _jsonable(value):
            return f"exists with {key}={meta.get(key)!r}; this writer has {key}={value!r}"
    return None


def _jsonable(value: Any) -> Any:
    """Normalise tuples to lists so attributes compare equal after a JSON round trip."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
