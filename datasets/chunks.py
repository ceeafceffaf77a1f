"""Whole decoded time-chunks of a store's arrays, read without zarr's per-call overhead.

Why: a training batch is 16 windows of 50 steps, which touch about 28 image chunks of 64 steps.
Measured on this project's 2-core machine, zarr's `array[s:s+50]` costs about 2 ms per call
(12 batches/s), and one `oindex` call over the whole batch is slower still. Reading a chunk file
and zstd-decoding it into a reused buffer costs about 0.15 ms (~2 kB of compressed Atari frames,
256 kB decoded), i.e. > 100 batches/s, and zstd releases the GIL so a small thread pool overlaps
the decodes.

The fast path applies only when the array is exactly what `StoreWriter` writes (local directory,
regular chunks along time only, codecs `bytes` + `zstd`, default chunk key encoding); anything else
falls back to zarr's own reads, which are slower but always correct. A missing chunk file is a chunk
zarr never wrote because it held only the fill value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numcodecs import zstd as _zstd
import zarr
from zarr.codecs import BytesCodec, ZstdCodec


class ChunkReader:
    """`read_into(i, out)` fills `out` (shape `(chunk_steps, *step_shape)`) with time-chunk `i`.

    `reads` counts chunk reads, so tests can check that a sampler never loads a whole store.
    Thread-safe: each call opens its own file and decodes with a stateless codec.
    """

    def __init__(self, array: zarr.Array):
        self.array = array
        self.chunk_steps = int(array.chunks[0])
        self.step_shape = tuple(array.shape[1:])
        self.dtype = np.dtype(array.dtype)
        self.fill_value = array.metadata.fill_value
        self.reads = 0
        self._directory = self._fast_path_directory(array)
        # Plain strings, not pathlib: path building was a tenth of the per-chunk cost.
        self._prefix = f"{self._directory}/c/" if self._directory is not None else ""
        self._suffix = "".join("/0" for _ in self.step_shape)

    @property
    def fast(self) -> bool:
        return self._directory is not None

    @staticmethod
    def _fast_path_directory(array: zarr.Array) -> Path | None:
        metadata = array.metadata
        root = getattr(array.store, "root", None)
        if getattr(metadata, "zarr_format", None) != 3 or root is None:
            return None
        codecs = tuple(metadata.codecs)
        if len(codecs) != 2 or not isinstance(codecs[0], BytesCodec) or not isinstance(codecs[1], ZstdCodec):
            return None
        if tuple(array.chunks[1:]) != tuple(array.shape[1:]):
            return None  # chunked along more than time
        if metadata.encode_chunk_key((0,) * array.ndim) != "c/" + "/".join("0" * array.ndim):
            return None
        endian = getattr(codecs[0], "endian", None)
        if np.dtype(array.dtype).itemsize > 1 and str(getattr(endian, "value", endian)) != "little":
            return None  # the decoded bytes are read as native (little-endian) values
        directory = Path(root) / array.path if array.path else Path(root)
        return directory if directory.is_dir() else None

    def chunk_path(self, index: int) -> str:
        assert self._directory is not None
        return f"{self._prefix}{index}{self._suffix}"

    def read_into(self, index: int, out: np.ndarray) -> None:
        self.reads += 1
        if self._directory is None:
            self._read_with_zarr(index, out)
            return
        try:
            with open(f"{self._prefix}{index}{self._suffix}", "rb", buffering=0) as file:
                data = file.read()
        except FileNotFoundError:
            out[...] = self.fill_value
            return
        _zstd.decompress(data, out.reshape(-1).view(np.uint8))  # releases the GIL while decoding

    def read_range(self, start: int, stop: int) -> np.ndarray:
        """Steps [start, stop) as one array, chunk by chunk (for the small arrays: no zarr overhead)."""
        out = np.empty((stop - start, *self.step_shape), self.dtype)
        if stop <= start:
            return out
        step = self.chunk_steps
        buffer = np.empty((step, *self.step_shape), self.dtype)
        for chunk in range(start // step, (stop - 1) // step + 1):
            self.read_into(chunk, buffer)
            lo, hi = max(start, chunk * step), min(stop, (chunk + 1) * step)
            out[lo - start : hi - start] = buffer[lo - chunk * step : hi - chunk * step]
        return out

    def read(self, index: int) -> np.ndarray:
        out = np.empty((self.chunk_steps, *self.step_shape), self.dtype)
        self.read_into(index, out)
        return out

    def _read_with_zarr(self, index: int, out: np.ndarray) -> None:
        start = index * self.chunk_steps
        stop = min(start + self.chunk_steps, self.array.shape[0])
        out[: stop - start] = self.array[start:stop]
        out[stop - start :] = self.fill_value
