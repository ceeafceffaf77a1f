"""Append steps to a store's arrays by writing whole chunk files directly, without zarr's per-call cost.

Why: measured on this project's 2-core machine, `zarr_array[a:b] = values` costs about 170 us per
64x64 image step (zarr's async machinery per chunk), while zstd-compressing the same step costs
about 3 us. At a few thousand environment steps per second that overhead alone would halve a
collector's throughput (benchmarks/bench_collect.py).

`ChunkAppender` is the write-side twin of `chunks.ChunkReader`: it applies only to arrays exactly
as `StoreWriter` creates them (local directory, regular chunks along time only, codecs `bytes` +
`zstd`, default chunk key encoding), and writes the same bytes zarr would (verified in
tests/test_store.py). It keeps the last, partly filled chunk decoded in memory, so an append
encodes each touched chunk once and never reads a chunk back.

Crash safety is the store's commit protocol: chunk files are replaced atomically (write a temporary
file, then rename), the array's `zarr.json` (its length) is published after its chunks, and the
group's committed-steps counter after every array. A chunk that holds committed steps is only
ever rewritten with the same committed prefix.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numcodecs
import numpy as np
import zarr

from .chunks import ChunkReader


class ChunkAppender:
    """Appends rows to one array. `append(values)` writes chunk files; `publish()` makes the new
    length visible by rewriting the array's metadata. Build with `ChunkAppender.for_array`."""

    def __init__(self, array: zarr.Array, directory: Path, length: int):
        self.directory = directory
        self.meta_path = directory / "zarr.json"
        self.meta = json.loads(self.meta_path.read_text())
        self.chunk_steps = int(array.chunks[0])
        self.step_shape = tuple(array.shape[1:])
        self.dtype = np.dtype(array.dtype).newbyteorder("<") if np.dtype(array.dtype).itemsize > 1 else np.dtype(array.dtype)
        zstd = next(c for c in self.meta["codecs"] if c["name"] == "zstd")["configuration"]
        self.codec = numcodecs.Zstd(level=int(zstd["level"]), checksum=bool(zstd.get("checksum", False)))
        self.fill_value = array.metadata.fill_value
        self.length = int(length)
        self.published = int(length)
        self._made_directories: set[Path] = set()
        self._chunk_path_of = lambda index: directory / array.metadata.encode_chunk_key((index,) + (0,) * len(self.step_shape))
        # The chunk that holds step `length` (partly filled): keep its committed rows in memory.
        self.tail = np.full((self.chunk_steps, *self.step_shape), self.fill_value, self.dtype)
        filled = self.length % self.chunk_steps
        if filled:
            self.tail[:filled] = array[self.length - filled : self.length]

    @classmethod
    def for_array(cls, array: zarr.Array, length: int) -> "ChunkAppender | None":
        """An appender if `array` is laid out as StoreWriter makes it, else None (use zarr)."""
        directory = ChunkReader._fast_path_directory(array)
        if directory is None or not (directory / "zarr.json").is_file():
            return None
        return cls(array, directory, length)

    def append(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=self.dtype)
        n, at = len(values), 0
        while at < n:
            filled = self.length % self.chunk_steps
            take = min(self.chunk_steps - filled, n - at)
            self.tail[filled : filled + take] = values[at : at + take]
            self._write_chunk(self.length // self.chunk_steps, self.tail)
            self.length += take
            at += take
            if self.length % self.chunk_steps == 0:
                self.tail[...] = self.fill_value  # the next chunk starts empty

    def publish(self) -> None:
        """Rewrite the array's metadata with the new length (after every chunk is on disk)."""
        if self.length == self.published:
            return
        self.meta["shape"] = [self.length, *self.step_shape]
        _atomic_write(self.meta_path, json.dumps(self.meta, indent=2).encode())
        self.published = self.length

    def _write_chunk(self, index: int, chunk: np.ndarray) -> None:
        path = self._chunk_path_of(index)
        if path.parent not in self._made_directories:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made_directories.add(path.parent)
        _atomic_write(path, self.codec.encode(np.ascontiguousarray(chunk)))


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")  # removed on resume if killed
    with open(temporary, "wb") as file:
        file.write(data)
    os.replace(temporary, path)
