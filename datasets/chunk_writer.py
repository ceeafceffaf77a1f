"""Append steps to a store's arrays by writing whole chunk files directly, without zarr's per-call cost.

Why: measured on this project's 2-core machine, `zarr_array[a:b] = values` costs about 170 us per
64x64 image step (zarr's async machinery per chunk), while zstd-compressing the same step costs
about 3 us. At a few thousand environment steps per second that overhead alone would halve a
collector's throughput (benchmarks/bench_collect.py).

`ChunkAppender` is the write-side twin of `chunks.ChunkReader`: it applies only to arrays exactly
as `StoreWriter` creates them (local directory, regular chunks along time only, codecs `bytes` +
`zstd` (+ `crc32c`), default chunk key encoding), and writes the same bytes zarr would (verified in
tests/datasets/test_store.py). It keeps the last, partly filled chunk decoded in memory, so an append
encodes each touched chunk once and never reads a chunk back (after the first, verified, read).

Crash safety is the store's commit protocol: `append` and `publish` only *stage* the chunk files
and the array's `zarr.json` (its length); `StoreWriter` then replaces all staged files of every
array at once and durably, and the group's committed-steps counter strictly last
(`durable.replace_files`). A chunk that holds committed steps is only ever rewritten with the same
committed prefix, and only from a file that was fsynced before it replaced the old one.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path

import google_crc32c
import numcodecs
import numpy as np
import zarr

from .chunks import ChunkReader, has_checksum
from .durable import make_directories
from .store_error import StoreError


class ChunkAppender:
    """Appends rows to one array. `append(values)` stages chunk files; `publish()` stages the
    array's metadata with the new length; `take_staged()` hands both over to be replaced (see the
    module docstring). Build with `ChunkAppender.for_array`."""

    def __init__(self, array: zarr.Array, directory: Path, length: int, store_path: str | Path | None = None):
        self.directory = directory
        self.meta_path = directory / "zarr.json"
        self.meta = json.loads(self.meta_path.read_text())
        self.chunk_steps = int(array.chunks[0])
        self.step_shape = tuple(array.shape[1:])
        self.dtype = np.dtype(array.dtype).newbyteorder("<") if np.dtype(array.dtype).itemsize > 1 else np.dtype(array.dtype)
        zstd = next(c for c in self.meta["codecs"] if c["name"] == "zstd")["configuration"]
        self.codec = numcodecs.Zstd(level=int(zstd["level"]), checksum=bool(zstd.get("checksum", False)))
        self.checksummed = has_checksum(array)
        self.fill_value = array.metadata.fill_value
        self.store_path = str(store_path if store_path is not None else directory.parent)
        self.length = int(length)
        self.published = int(length)
        self.staged: dict[Path, bytes] = {}
        self.changed_directories: list[Path] = []  # parents of folders this appender created
        self._made_directories: set[Path] = set()
        self._chunk_path_of = lambda index: directory / array.metadata.encode_chunk_key((index,) + (0,) * len(self.step_shape))
        # The chunk that holds step `length` (partly filled): keep its committed rows in memory.
        self.tail = np.full((self.chunk_steps, *self.step_shape), self.fill_value, self.dtype)
        filled = self.length % self.chunk_steps
        if filled:  # read through the verifying reader: a corrupt committed chunk is never rewritten
            self.tail[:] = ChunkReader(array, store_path).read(self.length // self.chunk_steps)
            self.tail[filled:] = self.fill_value

    @classmethod
    def for_array(cls, array: zarr.Array, length: int, store_path: str | Path | None = None) -> "ChunkAppender | None":
        """An appender if `array` is laid out as StoreWriter makes it, else None (use zarr)."""
        directory = ChunkReader._fast_path_directory(array)
        if directory is None or not (directory / "zarr.json").is_file():
            return None
        return cls(array, directory, length, store_path)

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
        """Stage the array's metadata with the new length."""
        if self.length == self.published:
            return
        self.meta["shape"] = [self.length, *self.step_shape]
        self.staged[self.meta_path] = json.dumps(self.meta, indent=2).encode()
        self.published = self.length

    def take_staged(self) -> tuple[list[tuple[Path, bytes]], list[Path]]:
        """The staged files (chunks first, then metadata) and the folders whose entries changed."""
        files, directories = list(self.staged.items()), self.changed_directories
        self.staged, self.changed_directories = {}, []
        return files, directories

    def _check_real_folders(self, folder: Path) -> None:
        """Every folder from the array's own down to `folder` that exists is a real folder: a link
        planted in a shared store (`image/c/7 -> /elsewhere`) would make the commit create and
        replace chunk files there, outside the store."""
        current = folder
        while True:
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                mode = None  # created by make_directories
            if mode is not None and not stat.S_ISDIR(mode):
                kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a folder"
                raise StoreError(self.store_path, f"array folder {current} is {kind}; refusing to write chunk files "
                                                  "through it (check who put it there)")
            if current == self.directory or current == current.parent:
                return
            current = current.parent

    def discard_staged(self) -> None:
        self.staged, self.changed_directories = {}, []

    def _write_chunk(self, index: int, chunk: np.ndarray) -> None:
        path = self._chunk_path_of(index)
        if path.parent not in self._made_directories:
            self._check_real_folders(path.parent)
            self.changed_directories += make_directories(path.parent)
            self._made_directories.add(path.parent)
        data = self.codec.encode(np.ascontiguousarray(chunk))
        if self.checksummed:  # zarr's crc32c codec: the little-endian CRC-32C of the bytes before it
            data = bytes(data) + struct.pack("<I", google_crc32c.value(bytes(data)))
        self.staged[path] = bytes(data)
