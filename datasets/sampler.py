"""Training batches of fixed-length sequences, sampled from a Dataset or Replay.

`SequenceSampler(data, batch_size=16, seq_len=50)` yields dicts of numpy arrays, batch-major
(the Batches contract in docs/architecture.md): `image` uint8 (B, T, 64, 64, C) (C = 1 grayscale,
3 RGB: the stores' `image_shape`), `action` int64 (B, T) indices for a discrete action space or
float32 (B, T, A) vectors for a continuous one, `reward` float32 (only when every store has rewards;
never invented), `is_first`, `is_last`, `is_terminal` bool, each (B, T).

Selection (paper, Sec. "data conventions"): sequences never cross episodes, and episodes shorter
than T are skipped. The first step of every window has `is_first` set (published `replay.py`), so
the world model filters each window from its zero state with a zeroed first action.
- `mode="episode"` (the published code): pick an episode uniformly, then a start. With
  `prioritize_ends` the start is `min(randint(0, len - T + 1 + T), len - T)`, which puts T extra
  units of probability on the window that ends the episode, so terminal steps are seen more often;
  otherwise `randint(0, len - T + 1)`.
- `mode="step"`: every valid window start of every episode is equally likely (long episodes get
  proportionally more samples). `prioritize_ends` does not apply and is ignored.
Draws come from one `numpy.random.Generator(seed)`, so a sampler is deterministic given its seed.

Memory: the small per-step arrays (action, reward, flags: ~10 bytes/step, plus 4 bytes per
continuous action dimension) of the used episodes are loaded into RAM once; images (4 kB/step
grayscale, 12 kB RGB: 8 GB for a 2M-step grayscale replay) are read on demand, one decoded chunk at
a time, through `ChunkReader` (see chunks.py for the measurements behind it).
`cache`:
- `"none"` (default): every batch reads and decodes the chunks its windows touch, each once,
  with `threads` decoding concurrently (default: half the usable cores, 1 to 4), into scratch
  buffers reused across batches.
- `"lru"`: additionally keeps up to `cache_bytes` of decoded chunks across batches (helps when the
  dataset is not much bigger than the cache).
- `"ram"`: decodes every image of the used episodes into RAM up front (4 or 12 kB/step); the fastest,
  for datasets that fit.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np
from tqdm.auto import tqdm

from .chunks import ChunkReader
from .dataset import Dataset, DatasetError, open_dataset
from .store import FLAG_KEYS

MODES = ("episode", "step")
CACHES = ("none", "lru", "ram")
DEFAULT_CACHE_BYTES = 512 * 2**20


def default_threads() -> int:
    """Decode threads: half the cores this process may use, 1 to 4.

    Measured on a shared 2-core machine (benchmarks/bench_sampler.py): with the cores busy, a
    second thread costs more than it gains (79 vs 101 batches/s), so two cores get one thread;
    zstd releases the GIL, so hosts with spare cores profit from a few.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores // 2))


class SamplerError(DatasetError):
    """Sampler settings that cannot work with this dataset (e.g. no episode of at least T steps)."""


class SequenceSampler:
    """Infinite iterator of batches; `sample()` returns one. See the module docstring."""

    def __init__(
        self,
        data: Dataset | str | os.PathLike,
        batch_size: int = 16,
        seq_len: int = 50,
        mode: str = "episode",
        prioritize_ends: bool = True,
        seed: int = 0,
        cache: str = "none",
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        threads: int | None = None,
        progress: bool = False,
    ):
        if mode not in MODES:
            raise SamplerError(f"sampler mode must be one of {MODES}, got {mode!r}")
        if cache not in CACHES:
            raise SamplerError(f"sampler cache must be one of {CACHES}, got {cache!r}")
        if batch_size < 1 or seq_len < 1:
            raise SamplerError(f"batch_size and seq_len must be >= 1, got {batch_size} and {seq_len}")
        data = data if isinstance(data, Dataset) else open_dataset(data)  # a path or manifest also works
        self.data = data
        self.batch_size = int(batch_size)
        self.seq_len = int(seq_len)
        self.mode = mode
        self.prioritize_ends = bool(prioritize_ends) and mode == "episode"
        self.seed = seed
        self.cache = cache
        self.has_reward = data.has_reward
        self.image_shape = tuple(data.image_shape)
        self.action_dtype = data.action_space.batch_dtype if data.action_space is not None else np.dtype(np.int64)
        self.rng = np.random.default_rng(seed)
        self.threads = default_threads() if threads is None else max(1, int(threads))
        self._pool: ThreadPoolExecutor | None = None

        table = data.episodes
        eligible = np.flatnonzero(table.length >= self.seq_len)
        if len(eligible) == 0:
            longest = int(table.length.max()) if len(table) else 0
            raise SamplerError(
                f"dataset {data.name!r}: no episode has at least seq_len={self.seq_len} steps "
                f"({len(table)} episodes, longest {longest}); lower seq_len or add data"
            )
        # Episode rows the sampler draws from, with their store, in-store start and length.
        self.rows = eligible
        self.store_of = table.store[eligible].astype(np.int64)
        self.start_of = table.start[eligible]
        self.length_of = table.length[eligible]
        self.num_windows = self.length_of - self.seq_len + 1
        self._window_cumsum = np.cumsum(self.num_windows)
        self._load_small_arrays()
        self.readers = [ChunkReader(store.arrays["image"]) for store in data.stores]
        self._lru: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._lru_capacity = max(0, int(cache_bytes)) // max(1, self._chunk_bytes())
        self._images_in_ram = self._load_images(progress) if cache == "ram" else None
        chunks_per_window = -(-(self.seq_len - 1) // min(r.chunk_steps for r in self.readers)) + 1
        self._scratch_slots = self.batch_size * chunks_per_window
        self._scratch: dict[int, np.ndarray] = {}  # chunk_steps -> (slots, chunk_steps, 64, 64, C)

    # -- selection ---------------------------------------------------------------------------------
    def sample_windows(self) -> tuple[np.ndarray, np.ndarray]:
        """Draw B windows: indices into the eligible episodes, and each window's offset inside it."""
        size, T = self.batch_size, self.seq_len
        if self.mode == "episode":
            episode = self.rng.integers(0, len(self.rows), size=size)
            length = self.length_of[episode]
            if self.prioritize_ends:
                offset = np.minimum(self.rng.integers(0, length - T + 1 + T), length - T)
            else:
                offset = self.rng.integers(0, length - T + 1)
        else:
            flat = self.rng.integers(0, self._window_cumsum[-1], size=size)
            episode = np.searchsorted(self._window_cumsum, flat, side="right")
            offset = flat - (self._window_cumsum[episode] - self.num_windows[episode])
        return episode.astype(np.int64), offset.astype(np.int64)

    # -- batches -----------------------------------------------------------------------------------
    def sample(self) -> dict[str, np.ndarray]:
        episode, offset = self.sample_windows()
        return self.gather(episode, offset)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while True:
            yield self.sample()

    def prefetch(self, depth: int = 2) -> Iterator[dict[str, np.ndarray]]:
        """The same batches as `iter(sampler)`, sampled `depth` ahead by a background thread.

        Overlaps reading and decoding with the consumer's work wherever the consumer releases the
        GIL (torch ops, CUDA waits), without the inter-process copies of DataLoader workers. Close
        the generator (or let it be collected) to stop the thread.
        """
        import queue
        import threading

        batches: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        stop = threading.Event()

        def offer(item) -> None:
            while not stop.is_set():
                try:
                    batches.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def produce() -> None:
            try:
                while not stop.is_set():
                    offer(self.sample())
            except BaseException as error:  # hand the error to the consumer
                offer(error)

        thread = threading.Thread(target=produce, name="sampler-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = batches.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join()

    def flat_indices(self, episode: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """(B, T) indices of the windows' steps into the arrays of `ram_arrays()`."""
        return (self._flat_start[episode] + offset)[:, None] + np.arange(self.seq_len)

    def ram_arrays(self) -> dict[str, np.ndarray]:
        """Every step of the eligible episodes, episode after episode: the per-step arrays, and the
        images when cache="ram". `gather` indexes them with `flat_indices`; a device-resident
        replay copies them to its device once (datasets/device_replay.py)."""
        arrays = dict(self._small)
        if self._images_in_ram is not None:
            arrays["image"] = self._images_in_ram
        return arrays

    def gather(self, episode: np.ndarray, offset: np.ndarray) -> dict[str, np.ndarray]:
        """The batch for explicit windows (eligible-episode index, offset)."""
        flat = self.flat_indices(episode, offset)  # into the RAM copies of small arrays
        if self._images_in_ram is not None:  # indexed like the small arrays
            batch = {"image": self._images_in_ram[flat]}
        else:
            batch = {"image": self._gather_images(self.store_of[episode], self.start_of[episode] + offset)}
        batch["action"] = self._small["action"][flat].astype(self.action_dtype, copy=False)
        if self.has_reward:
            batch["reward"] = self._small["reward"][flat]
        for key in FLAG_KEYS:
            batch[key] = self._small[key][flat]
        # Every window starts from the model's zero state, as the published replay marks the first
        # step of each sampled sequence `is_first` (the RSSM then also zeroes that step's action).
        # A window that starts mid-episode would otherwise be filtered from an all-zero state that
        # believes it is inside an episode.
        batch["is_first"][:, 0] = True
        return batch

    # -- memory accounting (tests check the sampler stays bounded) ---------------------------------
    @property
    def chunk_reads(self) -> int:
        return sum(reader.reads for reader in self.readers)

    @property
    def resident_image_bytes(self) -> int:
        ram = self._images_in_ram.nbytes if self._images_in_ram is not None else 0
        scratch = sum(buffer.nbytes for buffer in self._scratch.values())
        return ram + scratch + sum(chunk.nbytes for chunk in self._lru.values())

    def release_images(self) -> None:
        """Drop the RAM copy of the images (cache="ram"); afterwards images are read from the stores."""
        self._images_in_ram = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __getstate__(self):  # the thread pool cannot cross a process boundary; workers make their own
        state = self.__dict__.copy()
        state["_pool"] = None
        state["_scratch"] = {}
        return state

    # -- internals ---------------------------------------------------------------------------------
    def _chunk_bytes(self) -> int:
        reader = self.readers[0]
        return reader.chunk_steps * int(np.prod(self.image_shape))

    def _load_small_arrays(self) -> None:
        """Copy action/reward/flags of the eligible episodes into RAM, episode after episode."""
        keys = ["action", *(["reward"] if self.has_reward else []), *FLAG_KEYS]
        self._flat_start = np.concatenate([[0], np.cumsum(self.length_of)[:-1]]).astype(np.int64)
        parts: dict[str, list[np.ndarray]] = {key: [] for key in keys}
        for store_index in np.unique(self.store_of):
            store = self.data.stores[store_index]
            mine = np.flatnonzero(self.store_of == store_index)
            lo = int(self.start_of[mine].min())
            hi = int((self.start_of[mine] + self.length_of[mine]).max())
            for key in keys:
                # One contiguous read per store and array, chunk files read directly: zarr's own
                # read took 8 s for 150k steps here, which would be minutes for a 2M-step replay.
                values = ChunkReader(store.arrays[key]).read_range(lo, hi)
                for row in mine:
                    parts[key].append((row, values[self.start_of[row] - lo : self.start_of[row] - lo + self.length_of[row]]))
        self._small = {}
        for key in keys:
            ordered = [segment for _, segment in sorted(parts[key], key=lambda item: item[0])]
            self._small[key] = np.concatenate(ordered)

    def _load_images(self, progress: bool) -> np.ndarray:
        """cache="ram": decode every image of the eligible episodes, in the small arrays' order."""
        total = int(self.length_of.sum())
        images = np.empty((total, *self.image_shape), np.uint8)
        bar = tqdm(total=total, desc="loading images", unit="step", disable=not progress)
        for row in range(len(self.rows)):
            reader = self.readers[self.store_of[row]]
            start, length, at = int(self.start_of[row]), int(self.length_of[row]), int(self._flat_start[row])
            chunk_steps = reader.chunk_steps
            for chunk in range(start // chunk_steps, (start + length - 1) // chunk_steps + 1):
                decoded = reader.read(chunk)
                lo, hi = max(start, chunk * chunk_steps), min(start + length, (chunk + 1) * chunk_steps)
                images[at + lo - start : at + hi - start] = decoded[lo - chunk * chunk_steps : hi - chunk * chunk_steps]
            bar.update(length)
        bar.close()
        return images

    def _gather_images(self, stores: np.ndarray, starts: np.ndarray) -> np.ndarray:
        B, T = len(starts), self.seq_len
        out = np.empty((B, T, *self.image_shape), np.uint8)
        # Each chunk the batch touches is read once, even when several windows share it.
        needed: dict[tuple[int, int], int] = {}
        for store, start in zip(stores.tolist(), starts.tolist()):
            step = self.readers[store].chunk_steps
            for chunk in range(start // step, (start + T - 1) // step + 1):
                needed.setdefault((store, chunk), len(needed))
        chunks = self._fetch(list(needed))
        for b, (store, start) in enumerate(zip(stores.tolist(), starts.tolist())):
            step = self.readers[store].chunk_steps
            pos = 0
            while pos < T:
                global_step = start + pos
                chunk, inside = divmod(global_step, step)
                count = min(T - pos, step - inside)
                out[b, pos : pos + count] = chunks[needed[(store, chunk)]][inside : inside + count]
                pos += count
        return out

    def _fetch(self, keys: list[tuple[int, int]]) -> list[np.ndarray]:
        """Decoded chunks for (store, chunk) keys, from the LRU cache or read concurrently."""
        result: list[np.ndarray | None] = [None] * len(keys)
        missing = []
        for i, key in enumerate(keys):
            cached = self._lru.get(key) if self.cache == "lru" else None
            if cached is not None:
                self._lru.move_to_end(key)
                result[i] = cached
            else:
                missing.append(i)
        if missing:
            if self.cache == "lru":  # cached chunks must outlive this batch: own buffers
                buffers = [np.empty((self.readers[keys[i][0]].chunk_steps, *self.image_shape), np.uint8) for i in missing]
            else:
                buffers = self._scratch_buffers(missing, keys)
            jobs = [(keys[i], buffer) for i, buffer in zip(missing, buffers)]
            if self.threads > 1 and len(jobs) > 1:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="sampler-read")
                list(self._pool.map(self._read_job, jobs))
            else:
                for job in jobs:
                    self._read_job(job)
            for i, buffer in zip(missing, buffers):
                result[i] = buffer
                if self.cache == "lru":
                    self._lru[keys[i]] = buffer
            while self.cache == "lru" and len(self._lru) > self._lru_capacity:
                self._lru.popitem(last=False)
        return result  # type: ignore[return-value]

    def _read_job(self, job: tuple[tuple[int, int], np.ndarray]) -> None:
        (store, chunk), buffer = job
        self.readers[store].read_into(chunk, buffer)

    def _scratch_buffers(self, missing: list[int], keys: list[tuple[int, int]]) -> list[np.ndarray]:
        """Reused decode buffers: allocating 256 kB per chunk costs page faults on every batch."""
        steps = [self.readers[keys[i][0]].chunk_steps for i in missing]
        for step in set(steps):
            wanted = max(self._scratch_slots, steps.count(step))
            if step not in self._scratch or len(self._scratch[step]) < wanted:
                self._scratch[step] = np.empty((wanted, step, *self.image_shape), np.uint8)
        used: dict[int, int] = {}
        buffers = []
        for step in steps:
            buffers.append(self._scratch[step][used.get(step, 0)])
            used[step] = used.get(step, 0) + 1
        return buffers
