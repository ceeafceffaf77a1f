"""Stream the DQN Replay Dataset (Agarwal et al. 2020) into an experience store.

The dataset holds Dopamine's replay buffer, logged every time it filled: per game and run,
checkpoint files `$store$_{observation,action,reward,terminal}_ckpt.{k}.gz` and
`add_count_ckpt.{k}.gz`, each a gzipped `np.save` array (observations uint8 (1M, 84, 84),
actions int32, rewards float32, terminals uint8, all (1M,)). Facts of the format this module
relies on (Dopamine's `circular_replay_buffer.py` and `dqn_agent.py` of 2019, batch_rl's
`logged_replay_buffer.py`):

- Entry i is `(o_i, a_i, r_i, terminal_i)`: the observation the agent acted on, its action, the
  reward that action earned (clipped to [-1, 1] by Dopamine's runner before storing), and whether
  the episode ended with it. The observation the last action led to is never stored.
- Each episode starts with `stack_size - 1` (3) all-zero padding entries.
- The buffer is circular: with `add_count >= capacity` the oldest entry sits at
  `cursor = add_count % capacity`. batch_rl logs when `add_count % capacity == capacity - 1`, so
  file k >= 1 starts (in time) with its last entry, then entries 0..capacity-2; file 0 holds
  entries 0..capacity-2. Reading files k, k+1, ... in this order yields one unbroken stream.
- Episodes end at game over or at Dopamine's 27,000-step limit; both set `terminal`.

Conversion into our store (docs/data.md, "The DQN Replay Dataset"):
- frames are resized 84x84 -> 64x64 with INTER_AREA (`frames.area_resize`), the interpolation of
  our environment;
- our alignment: image t is what action t led to, step 0 holds action 0 and reward 0. An episode
  of n entries becomes n + 1 steps: images o_0..o_{n-1} and, as the last image, o_{n-1} again
  (the terminal frame is not in the data), so the final reward and the terminal flag survive;
- rewards stay as stored (already clipped by Dopamine); a 27,000-entry episode is a time-limit
  truncation (is_last, not is_terminal);
- episodes cut by the first or last file of the import (or by a gap between files) are left
  out: their start or end is not in the imported files.

Memory stays bounded: observations are read in blocks from the gzip stream, and only the episode
being assembled (at most 27,001 steps at 64x64, 110 MiB) is held. An interrupted import resumes:
rerun the same command and the committed episodes are skipped.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..frames import area_resize
from ..store import StoreWriter

ARRAYS = ("observation", "action", "reward", "terminal")
_FILE = "$store$_{name}_ckpt.{k}.gz"
_ADD_COUNT = "add_count_ckpt.{k}.gz"
SOURCE_FRAME = (84, 84)
MAX_EPISODE_STEPS = 27_000  # Dopamine's max_steps_per_episode for Atari
STACK_SIZE = 4  # Dopamine's frame stack: stack_size - 1 zero entries pad each episode's start
BLOCK_ROWS = 8192  # observations decoded per block (58 MB at 84x84)
# Dopamine's buffers hold 1M entries; a header may declare anything (4e9 actions: 16 GB), so the
# declared size is checked before an array is loaded.
MAX_CAPACITY = 1 << 24
# What gzip and zlib raise for a truncated or damaged stream (EOFError became click's bare "Aborted!").
_READ_ERRORS = (OSError, ValueError, EOFError, zlib.error)


class DQNReplayError(ValueError):
    """Files that are not (readable) DQN-replay checkpoints; the message names the file."""


@dataclass
class ImportReport:
    episodes: int = 0
    steps: int = 0
    entries_read: int = 0
    entries_dropped: int = 0  # entries of episodes cut by the imported files' edges
    truncated_episodes: int = 0
    skipped_episodes: int = 0  # already in the store (a resumed import)
    checkpoints: list[int] = field(default_factory=list)


def find_checkpoints(source: str | os.PathLike) -> list[int]:
    """The checkpoint numbers k with all four `$store$_*_ckpt.k.gz` files in `source`, sorted."""
    source = Path(source)
    if not source.is_dir():
        raise DQNReplayError(f"{source}: not a directory of DQN-replay checkpoint files")
    pattern = re.compile(r"^\$store\$_observation_ckpt\.(\d+)\.gz$")
    found = sorted(int(m.group(1)) for p in source.iterdir() if (m := pattern.match(p.name)))
    if not found:
        raise DQNReplayError(f"{source}: no $store$_observation_ckpt.<k>.gz files (expected a DQN-replay "
                             "replay_logs folder, e.g. Pong/1/replay_logs)")
    return found


def import_dqn_replay(
    source: str | os.PathLike,
    store_path: str | os.PathLike,
    attrs: Mapping[str, Any],
    *,
    checkpoints: Sequence[int] | None = None,
    stack_size: int = STACK_SIZE,
    max_episode_steps: int = MAX_EPISODE_STEPS,
    progress: bool = True,
) -> ImportReport:
    """Stream checkpoint files `checkpoints` (default: all, in order) of `source` into `store_path`.

    `attrs` are the store's provenance (game, env, action_set, ...: see pipelines/data_commands/dqn_replay_command.py);
    this adds `imported_from`. Returns what was read, written and left out.
    """
    source = Path(source)
    numbers = sorted(checkpoints) if checkpoints else find_checkpoints(source)
    files = [_CheckpointFiles(source, k) for k in numbers]
    capacity = files[0].capacity
    num_actions = len(attrs["action_set"]["ids"])
    for checkpoint in files:
        if checkpoint.action.max(initial=0) >= num_actions:
            raise DQNReplayError(f"{checkpoint.where}: actions reach {int(checkpoint.action.max())}, but the action set "
                                 f"has {num_actions} actions ({attrs['action_set'].get('meanings')})")
    report = ImportReport(checkpoints=numbers)
    full_attrs = {
        **attrs,
        "imported_from": {
            "kind": "dqn-replay", "path": str(source.resolve()), "checkpoints": numbers,
            "source_frame": list(SOURCE_FRAME), "resize": "84x84->64x64 INTER_AREA",
            "terminal_image": "the last stored frame repeated (the dataset never stores the terminal frame)",
            "rewards": "as stored: clipped to [-1, 1] by Dopamine",
        },
    }
    writer = StoreWriter.open(store_path, full_attrs)
    assembler = _EpisodeAssembler(writer, report, stack_size - 1, max_episode_steps, skip=writer.committed_episodes)
    bar = tqdm(total=sum(f.valid for f in files), desc="import dqn-replay", unit="step", disable=not progress)
    previous = None
    for checkpoint in files:
        if checkpoint.capacity != capacity:
            raise DQNReplayError(f"{checkpoint.where}: capacity {checkpoint.capacity} differs from the first file's {capacity}")
        # Consecutive logs are `capacity` adds apart. batch_rl checks for its log point only after
        # a whole add (padding included), so it can miss one; the stream then has a gap.
        contiguous = previous is not None and checkpoint.add_count == previous + capacity
        if not contiguous:  # the stream restarts: an open episode cannot be completed
            assembler.restart(at_buffer_start=not checkpoint.wrapped)
        for block in checkpoint.blocks():
            assembler.feed(*block)
            bar.update(len(block[1]))
        previous = checkpoint.add_count
    bar.close()
    assembler.close()
    return report


# -- reading the files ---------------------------------------------------------------------------


class _CheckpointFiles:
    """One checkpoint k: small arrays loaded whole, observations streamed in chronological order."""

    def __init__(self, source: Path, number: int):
        self.number = number
        self.where = f"{source}/{_FILE.format(name='*', k=number)}"
        paths = {name: source / _FILE.format(name=name, k=number) for name in ARRAYS}
        for path in paths.values():
            if not path.is_file():
                raise DQNReplayError(f"{path}: missing (checkpoint {number} needs all of {', '.join(ARRAYS)})")
        self.observation_path = paths["observation"]
        self.action = _load_small(paths["action"], np.integer)
        self.reward = _load_small(paths["reward"], np.floating)
        self.terminal = _load_small(paths["terminal"], np.integer, np.bool_).astype(bool)
        self.capacity = len(self.action)
        if self.capacity < 1:
            raise DQNReplayError(f"{paths['action']}: holds no entries (a logged buffer holds its capacity of them)")
        shape, dtype = _npy_header(self.observation_path)
        if shape != (self.capacity, *SOURCE_FRAME) or dtype != np.uint8:
            raise DQNReplayError(f"{self.observation_path}: observations are {dtype} {shape}; expected uint8 "
                                 f"{(self.capacity, *SOURCE_FRAME)}")
        for name, array in (("reward", self.reward), ("terminal", self.terminal)):
            if array.shape != (self.capacity,):
                raise DQNReplayError(f"{paths[name]}: shape {array.shape}; expected ({self.capacity},) like the actions")
        if not np.all(np.isfinite(self.reward)):
            raise DQNReplayError(f"{paths['reward']}: holds non-finite rewards")
        if self.action.min(initial=0) < 0:
            raise DQNReplayError(f"{paths['action']}: holds negative actions")
        add_count_path = source / _ADD_COUNT.format(k=number)
        if not add_count_path.is_file():
            raise DQNReplayError(f"{add_count_path}: missing (it says where the circular buffer starts)")
        count = _load_small(add_count_path, np.integer)
        if count.size != 1 or int(count.reshape(-1)[0]) < 0:
            raise DQNReplayError(f"{add_count_path}: holds {count.size} values {count.reshape(-1)[:3].tolist()}; "
                                 "expected one non-negative count of adds")
        self.add_count = add_count = int(count.reshape(-1)[0])
        # Chronological segments of storage indices (see the module doc).
        if add_count < self.capacity:
            self.segments = [(0, add_count)]
        else:
            cursor = add_count % self.capacity
            self.segments = [(cursor, self.capacity), (0, cursor)]
        self.segments = [(a, b) for a, b in self.segments if b > a]
        self.wrapped = add_count >= self.capacity  # the stream continues the previous checkpoint's
        self.valid = sum(b - a for a, b in self.segments)

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(images uint8 (n, 64, 64), actions, rewards, terminals) in chronological order."""
        last = max((stop for _, stop in self.segments), default=0)
        for start, stop in self.segments:  # the segment read furthest also checks the stream's CRC
            for rows_start, raw in _stream_rows(self.observation_path, start, stop, verify_end=stop == last):
                rows = slice(rows_start, rows_start + len(raw))
                yield area_resize(raw), self.action[rows], self.reward[rows], self.terminal[rows]


def _load_small(path: Path, *kinds) -> np.ndarray:
    """A whole small array (actions, rewards, terminals, add_count), its declared size checked first."""
    try:
        with gzip.open(path, "rb") as file:
            shape, dtype, _ = _read_header(file)
            if not any(np.issubdtype(dtype, kind) for kind in kinds):
                raise DQNReplayError(f"{path}: dtype {dtype} is not what the format stores")
            if int(np.prod(shape, dtype=np.float64)) > MAX_CAPACITY:
                raise DQNReplayError(f"{path}: declares shape {shape}; a replay buffer holds at most {MAX_CAPACITY} "
                                     "entries")
            file.seek(0)
            array = np.load(file, allow_pickle=False)  # never unpickle shared files
            file.read()  # to the end: gzip checks its CRC there
    except DQNReplayError:
        raise
    except _READ_ERRORS as error:
        raise DQNReplayError(f"{path}: not a gzipped numpy array ({type(error).__name__}: {error})") from None
    return array


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    try:
        with gzip.open(path, "rb") as file:
            shape, dtype, _ = _read_header(file)
    except _READ_ERRORS as error:
        raise DQNReplayError(f"{path}: not a gzipped numpy array ({type(error).__name__}: {error})") from None
    return shape, dtype


def _read_header(file) -> tuple[tuple[int, ...], np.dtype, int]:
    version = np.lib.format.read_magic(file)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = reader(file)
    if fortran_order:
        raise ValueError("Fortran-ordered arrays are not written by Dopamine")
    return tuple(shape), np.dtype(dtype), file.tell()


def _stream_rows(path: Path, start: int, stop: int, verify_end: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """Rows [start, stop) of a gzipped .npy (N, 84, 84), BLOCK_ROWS at a time, never the whole array.
    `verify_end` reads on to the end of the stream, where gzip checks the data's CRC-32."""
    row_bytes = SOURCE_FRAME[0] * SOURCE_FRAME[1]
    position = start
    checked = False
    try:
        with gzip.open(path, "rb") as file:
            _, _, offset = _read_header(file)
            file.seek(offset + start * row_bytes)  # forward seek: decompresses and discards
            while position < stop:
                count = min(BLOCK_ROWS, stop - position)
                data = file.read(count * row_bytes)
                if len(data) != count * row_bytes:
                    raise DQNReplayError(f"{path}: ends after {position + len(data) // row_bytes} rows (truncated "
                                         "file)")
                yield position, np.frombuffer(data, np.uint8).reshape(count, *SOURCE_FRAME)
                position += count
            checked = verify_end
            while verify_end and file.read(BLOCK_ROWS * row_bytes):  # gzip checks its CRC at the end
                pass
    except _READ_ERRORS as error:  # a truncated stream (EOFError) or a failed CRC (BadGzipFile)
        where = "at its end" if checked else f"past row {position}"
        raise DQNReplayError(f"{path}: cannot be read {where} ({type(error).__name__}: {error}); the file is "
                             "truncated or damaged") from None


# -- episodes --------------------------------------------------------------------------------------


class _EpisodeAssembler:
    """Cuts the chronological entry stream into episodes and writes them in our alignment."""

    def __init__(self, writer: StoreWriter, report: ImportReport, padding: int, max_steps: int, skip: int):
        self.writer, self.report = writer, report
        self.padding, self.max_steps = padding, max_steps
        self.skip_episodes = skip  # committed by an earlier, interrupted run of the same import
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.pad_left: int | None = None  # None: inside an episode whose start we did not see

    def restart(self, at_buffer_start: bool) -> None:
        self._drop_open_episode()
        self.pad_left = self.padding if at_buffer_start else None

    def feed(self, images, actions, rewards, terminals) -> None:
        n, i = len(actions), 0
        self.report.entries_read += n
        ends = np.flatnonzero(terminals)
        while i < n:
            later = ends[ends >= i]
            end = int(later[0]) if len(later) else None
            if self.pad_left is None:  # an episode cut by the start of the stream: skip to its end
                stop = n if end is None else end + 1
                self.report.entries_dropped += stop - i
                i = stop
                if end is not None:
                    self.pad_left = self.padding
                continue
            if self.pad_left > 0:
                count = min(self.pad_left, n - i)
                rows = slice(i, i + count)
                if images[rows].any() or actions[rows].any() or rewards[rows].any() or terminals[rows].any():
                    raise DQNReplayError(
                        f"expected {self.padding} all-zero padding entries at an episode start (Dopamine, stack size "
                        f"{self.padding + 1}); found data. Pass the buffer's stack size if it was not 4.")
                self.pad_left -= count
                i += count
                continue
            stop = n if end is None else end + 1
            self.parts.append((images[i:stop], actions[i:stop], rewards[i:stop]))
            i = stop
            if end is not None:
                self._write_episode()
                self.pad_left = self.padding

    def close(self) -> None:
        self._drop_open_episode()

    def _drop_open_episode(self) -> None:
        self.report.entries_dropped += sum(len(part[1]) for part in self.parts)
        self.parts = []

    def _write_episode(self) -> None:
        images = np.concatenate([p[0] for p in self.parts])
        actions = np.concatenate([p[1] for p in self.parts])
        rewards = np.concatenate([p[2] for p in self.parts])
        self.parts = []
        if self.skip_episodes > 0:
            self.skip_episodes -= 1
            self.report.skipped_episodes += 1
            return
        n = len(actions)
        truncated = n >= self.max_steps
        length = n + 1
        flags = np.zeros(length, bool)
        is_first, is_last, is_terminal = flags.copy(), flags.copy(), flags.copy()
        is_first[0], is_last[-1], is_terminal[-1] = True, True, not truncated
        self.writer.append_episode({
            "image": np.concatenate([images, images[-1:]])[..., None],
            "action": np.concatenate([[0], actions]).astype(np.int32),
            "reward": np.concatenate([[0.0], rewards]).astype(np.float32),
            "is_first": is_first, "is_last": is_last, "is_terminal": is_terminal,
        })
        self.report.episodes += 1
        self.report.steps += length
        self.report.truncated_episodes += int(truncated)
