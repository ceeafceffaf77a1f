"""Zarr v3 experience stores, format version 1: one writer per store, episodes committed whole.

Schema (time-major, N committed steps over all episodes; see docs/architecture.md):

    image        uint8    (N, 64, 64, 1)
    action       int32    (N,)   index into the store's action set; the action that led to image[t]
    reward       float32  (N,)   raw reward received on arriving at t (absent in reward-free stores)
    is_first     bool     (N,)   first step of an episode: action 0, reward 0
    is_last      bool     (N,)   last step of an episode (terminal or truncated)
    is_terminal  bool     (N,)   the episode ended in a true terminal state (not a time limit)

Commit protocol: `append_episode` writes every array first (zarr writes each chunk file
atomically), then bumps `committed_steps` in the group attributes. Readers never look past that
counter, so a writer killed mid-episode loses at most that episode, and reopening the writer
trims the uncommitted tail.
"""

from __future__ import annotations

import datetime as _dt
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from .chunk_writer import ChunkAppender

FORMAT_NAME = "dreamer-pipeline/experience"
FORMAT_VERSION = 1
ATTRS_KEY = "dreamer_pipeline"
IMAGE_SHAPE = (64, 64, 1)
DEFAULT_CHUNK_STEPS = 64  # image chunks: see benchmarks/bench_store_layout.py and docs/experience.md
DEFAULT_ZSTD_LEVEL = 3
# Per-step scalars (action, reward, flags) compress to a few bytes per chunk, so with image-sized
# chunks a store would be mostly tiny files, each costing a file-system block (measured: 320 B/step
# of disk for scalars alone at 64-step chunks, against about 40 B/step of random-policy images).
# Readers load them in long contiguous runs anyway.
SCALAR_CHUNK_STEPS = 8192

# name -> (dtype, per-step shape)
SCHEMA: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "image": (np.dtype(np.uint8), IMAGE_SHAPE),
    "action": (np.dtype(np.int32), ()),
    "reward": (np.dtype(np.float32), ()),
    "is_first": (np.dtype(bool), ()),
    "is_last": (np.dtype(bool), ()),
    "is_terminal": (np.dtype(bool), ()),
}
FLAG_KEYS = ("is_first", "is_last", "is_terminal")


class StoreError(ValueError):
    """A store that cannot be used: missing, foreign, of the wrong version or schema, or corrupt."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"experience store {self.path}: {problem}")


def array_keys(reward_free: bool) -> tuple[str, ...]:
    return tuple(k for k in SCHEMA if not (reward_free and k == "reward"))


@dataclass(frozen=True)
class EpisodeIndex:
    """Where each committed episode lies: `starts[i]` is its first step, `lengths[i]` its size."""

    starts: np.ndarray  # int64
    lengths: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.starts)


def episode_index_from_flags(is_first: np.ndarray, is_last: np.ndarray) -> EpisodeIndex:
    starts = np.flatnonzero(is_first).astype(np.int64)
    ends = np.flatnonzero(is_last).astype(np.int64) + 1
    if len(starts) != len(ends) or (len(starts) and (starts[0] != 0 or np.any(ends <= starts))):
        raise ValueError("is_first/is_last do not delimit whole episodes")
    if len(starts) > 1 and np.any(starts[1:] != ends[:-1]):
        raise ValueError("episodes are not contiguous")
    return EpisodeIndex(starts=starts, lengths=ends - starts)


def validate_episode(episode: Mapping[str, np.ndarray], reward_free: bool) -> int:
    """Check one episode's arrays against the schema; return its length."""
    keys = array_keys(reward_free)
    missing = [k for k in keys if k not in episode]
    if missing:
        raise ValueError(f"episode is missing arrays {missing}")
    length = len(episode["is_first"])
    if length < 1:
        raise ValueError("episode is empty")
    for key in keys:
        dtype, shape = SCHEMA[key]
        value = np.asarray(episode[key])
        if value.shape != (length, *shape):
            raise ValueError(f"episode array {key!r} has shape {value.shape}, expected {(length, *shape)}")
        if value.dtype != dtype:
            raise ValueError(f"episode array {key!r} has dtype {value.dtype}, expected {dtype}")
    first, last = np.asarray(episode["is_first"]), np.asarray(episode["is_last"])
    if not first[0] or first[1:].any():
        raise ValueError("is_first must be set on the first step only")
    if not last[-1] or last[:-1].any():
        raise ValueError("is_last must be set on the last step only")
    if np.asarray(episode["is_terminal"])[:-1].any():
        raise ValueError("is_terminal can only be set on the last step")
    if episode["action"][0] != 0 or (not reward_free and episode["reward"][0] != 0):
        raise ValueError("the first step of an episode must hold action 0 and reward 0")
    return length


class ExperienceStore:
    """Read access to one committed experience store. Opening validates the schema.

    `ExperienceStore(path)` raises `StoreError` naming the store and the mismatch. Reads are
    limited to the committed steps.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(path, "does not exist")
        try:
            group = zarr.open_group(str(self.path), mode="r", zarr_format=3)
        except Exception as error:  # zarr raises several types for foreign directories
            raise StoreError(path, f"is not a zarr v3 group ({type(error).__name__}: {error})") from None
        self.group = group
        meta = dict(group.attrs).get(ATTRS_KEY)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise StoreError(path, f"is not a dreamer-pipeline experience store (no '{ATTRS_KEY}' attributes)")
        if meta.get("format_version") != FORMAT_VERSION:
            raise StoreError(
                path, f"has format version {meta.get('format_version')!r}; this code reads version {FORMAT_VERSION}"
            )
        self.attrs: dict[str, Any] = meta
        self.reward_free = bool(meta.get("reward_free", False))
        self.num_steps = int(meta.get("committed_steps", -1))
        self.num_episodes = int(meta.get("committed_episodes", -1))
        if self.num_steps < 0 or self.num_episodes < 0:
            raise StoreError(path, "has no committed_steps/committed_episodes counters")
        members = set(group.array_keys())
        self.arrays: dict[str, zarr.Array] = {}
        for key in array_keys(self.reward_free):
            if key not in members:
                raise StoreError(path, f"is missing the array {key!r}")
            array = group[key]
            dtype, shape = SCHEMA[key]
            if array.dtype != dtype:
                raise StoreError(path, f"array {key!r} has dtype {array.dtype}, expected {dtype}")
            if tuple(array.shape[1:]) != shape:
                raise StoreError(path, f"array {key!r} has step shape {tuple(array.shape[1:])}, expected {shape}")
            if array.shape[0] < self.num_steps:
                raise StoreError(
                    path, f"array {key!r} holds {array.shape[0]} steps but {self.num_steps} are committed"
                )
            self.arrays[key] = array
        if self.reward_free and "reward" in members:
            raise StoreError(path, "is flagged reward-free but holds a 'reward' array")
        self._episodes: EpisodeIndex | None = None

    @property
    def has_reward(self) -> bool:
        return not self.reward_free

    def __len__(self) -> int:
        return self.num_steps

    def __repr__(self) -> str:
        return f"ExperienceStore({str(self.path)!r}, steps={self.num_steps}, episodes={self.num_episodes})"

    def read(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Committed steps [start, stop) of one array."""
        if key == "reward" and self.reward_free:
            raise StoreError(self.path, "is reward-free: it stores no rewards")
        if key not in self.arrays:
            raise KeyError(f"{key!r} is not an array of {self.path}; arrays: {sorted(self.arrays)}")
        stop = self.num_steps if stop is None else min(stop, self.num_steps)
        return self.arrays[key][start:stop]

    def episodes(self) -> EpisodeIndex:
        """Start and length of every committed episode (computed once from the flags)."""
        if self._episodes is None:
            try:
                index = episode_index_from_flags(self.read("is_first"), self.read("is_last"))
            except ValueError as error:
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
    """

    RESUME_MAY_DIFFER = frozenset({"created", "writer_id", "committed_steps", "committed_episodes", "resumed"})

    def __init__(self, path: Path, group: zarr.Group, meta: dict[str, Any]):
        self.path = path
        self.group = group
        self.meta = meta
        self.reward_free = bool(meta["reward_free"])
        self.arrays = {key: group[key] for key in array_keys(self.reward_free)}
        self._appenders: dict[str, ChunkAppender | None] | None = None  # built on the first append

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        attrs: Mapping[str, Any],
        *,
        reward_free: bool = False,
        chunk_steps: int = DEFAULT_CHUNK_STEPS,
        zstd_level: int = DEFAULT_ZSTD_LEVEL,
    ) -> "StoreWriter":
        path = Path(path)
        if path.exists():
            return cls._resume(path, attrs, reward_free)
        path.parent.mkdir(parents=True, exist_ok=True)
        group = zarr.open_group(str(path), mode="w-", zarr_format=3)
        scalar_chunk_steps = max(int(chunk_steps), SCALAR_CHUNK_STEPS)
        for key in array_keys(reward_free):
            dtype, shape = SCHEMA[key]
            group.create_array(
                key,
                shape=(0, *shape),
                chunks=(chunk_steps if shape else scalar_chunk_steps, *shape),
                dtype=dtype,
                compressors=[ZstdCodec(level=zstd_level)],
                fill_value=0,
            )
        meta = {
            **dict(attrs),
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
        group.attrs[ATTRS_KEY] = meta
        return cls(path, group, meta)

    @classmethod
    def _resume(cls, path: Path, attrs: Mapping[str, Any], reward_free: bool) -> "StoreWriter":
        reader = ExperienceStore(path)  # validates the schema
        meta = dict(reader.attrs)
        if meta["reward_free"] != bool(reward_free):
            raise StoreError(path, f"exists with reward_free={meta['reward_free']}, asked to resume with {reward_free}")
        problem = provenance_mismatch(meta, attrs, cls.RESUME_MAY_DIFFER)
        if problem:
            raise StoreError(path, f"{problem}. Use a new store path or the original settings.")
        group = zarr.open_group(str(path), mode="r+", zarr_format=3)
        writer = cls(path, group, meta)
        committed = meta["committed_steps"]
        for array in writer.arrays.values():  # drop the tail of an episode that was never committed
            if array.shape[0] != committed:
                array.resize((committed, *array.shape[1:]))
        for leftover in path.rglob("*.partial"):  # zarr's temporary files of a write that was killed
            leftover.unlink(missing_ok=True)
        meta["resumed"] = int(meta.get("resumed", 0)) + 1
        group.attrs[ATTRS_KEY] = meta
        return writer

    @property
    def committed_steps(self) -> int:
        return int(self.meta["committed_steps"])

    @property
    def committed_episodes(self) -> int:
        return int(self.meta["committed_episodes"])

    def append_episode(self, episode: Mapping[str, np.ndarray]) -> None:
        """Write one whole episode, then commit it by bumping the counters."""
        self.append_episodes([episode])

    def append_episodes(self, episodes: Sequence[Mapping[str, np.ndarray]]) -> None:
        """Write whole episodes, then commit them together with one bump of the counters.

        Committing several episodes at once amortises the commit's file replacements (each chunk
        holding the end of the data, each array's metadata and the group's attributes), which cost
        far more than the data on a journaling file system (see pipelines/collector.py).
        """
        lengths = [validate_episode(episode, self.reward_free) for episode in episodes]  # all, before any write
        if not lengths:
            return
        start = self.committed_steps
        try:
            if self._appenders is None:  # direct chunk-file writes where possible (see chunk_writer.py)
                self._appenders = {key: ChunkAppender.for_array(array, start) for key, array in self.arrays.items()}
            for key, array in self.arrays.items():
                appender = self._appenders[key]
                values = np.concatenate([np.asarray(episode[key]) for episode in episodes]) if len(episodes) > 1 \
                    else np.asarray(episodes[0][key])
                if appender is not None:
                    appender.append(values)
                else:
                    array.resize((start + len(values), *array.shape[1:]))
                    array[start : start + len(values)] = values
            for appender in self._appenders.values():  # lengths become visible after every chunk is written
                if appender is not None:
                    appender.publish()
        except BaseException:
            self._appenders = None  # start over from the committed counter on the next call
            raise
        self.meta["committed_steps"] = start + sum(lengths)
        self.meta["committed_episodes"] = self.committed_episodes + len(lengths)
        self.group.attrs[ATTRS_KEY] = self.meta  # the commit point

    def update_attrs(self, **values: Any) -> None:
        """Record extra provenance (never the counters)."""
        for key in ("committed_steps", "committed_episodes", "format", "format_version"):
            if key in values:
                raise ValueError(f"{key} is managed by the writer")
        self.meta.update(values)
        self.group.attrs[ATTRS_KEY] = self.meta


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
