"""Whole decoded time-chunks of a store's arrays, read without zarr's per-call overhead.

Why: a training batch is 16 windows of 50 steps, which touch about 28 image chunks of 64 steps.
Measured on this project's 2-core machine, zarr's `array[s:s+50]` costs about 2 ms per call
(12 batches/s), and one `oindex` call over the whole batch is slower still. Reading a chunk file
and zstd-decoding it into a reused buffer costs about 0.15 ms (~2 kB of compressed Atari frames,
256 kB decoded), i.e. > 100 batches/s, and zstd releases the GIL so a small thread pool overlaps
the decodes.

The fast path applies only when the array is exactly what `StoreWriter` writes (local directory,
regular chunks along time only, codecs `bytes` + `zstd` (+ `crc32c`), default chunk key encoding);
anything else falls back to zarr's own reads, which are slower. `ExperienceStore` opens only arrays
laid out exactly so (schema.check_array_metadata): an edited layout is refused, never read as zeros.

Integrity: a chunk inside the array's length must exist (`StoreWriter` writes every chunk, also
one that holds only zeros), so a missing file is a `StoreError` naming the store, the array and the
chunk, never 64 black frames. Stores written since the checksum change carry zarr v3's `crc32c`
codec: 4 bytes after the compressed chunk. The reader checks them on the compressed bytes, which
costs about 0.2 us per chunk of Atari frames (google-crc32c, hardware CRC), against about 150 us
to decode it; a mismatch or undecodable data is a `StoreError` too.
"""

from __future__ import annotations

import os
from pathlib import Path

import google_crc32c
import numpy as np
from numcodecs import zstd as _zstd
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec, ZstdCodec

from .store_error import StoreError

# crc32c over data followed by its own little-endian crc32c is this constant (the CRC's residue):
# checking it needs no copy of the chunk without its last 4 bytes.
CRC32C_RESIDUE = 0x48674BC7


class ChunkReader:
    """`read_into(i, out)` fills `out` (shape `(chunk_steps, *step_shape)`) with time-chunk `i`.

    `reads` counts chunk reads, so tests can check that a sampler never loads a whole store.
    Thread-safe: each call opens its own file and decodes with a stateless codec.
    """

    def __init__(self, array: zarr.Array, store_path: str | Path | None = None):
        self.array = array
        self.chunk_steps = int(array.chunks[0])
        self.step_shape = tuple(array.shape[1:])
        self.dtype = np.dtype(array.dtype)
        self.fill_value = array.metadata.fill_value
        self.num_chunks = -(-int(array.shape[0]) // self.chunk_steps)  # every one of them exists
        self.name = array.basename or array.path or "array"
        root = getattr(array.store, "root", None)
        self.store_path = str(store_path if store_path is not None else (root or array.store))
        self.checksummed = has_checksum(array)
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
        if len(codecs) == 3 and isinstance(codecs[2], Crc32cCodec):
            codecs = codecs[:2]
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
        if self._directory is None:
            return f"{self.name}/c/{index}{self._suffix}"
        return f"{self._prefix}{index}{self._suffix}"

    def missing_chunks(self, stop: int, limit: int = 1000) -> list[int]:
        """Chunks holding steps [0, stop) whose files do not exist (fast layout only; else []), at
        most `limit` of them: counters edited to 1e12 steps must not make opening a store list
        15 billion missing chunks."""
        if self._directory is None:
            return []
        isfile, missing = os.path.isfile, []
        for i in range(-(-int(stop) // self.chunk_steps)):
            if not isfile(f"{self._prefix}{i}{self._suffix}"):
                missing.append(i)
                if len(missing) >= limit:
                    break
        return missing

    def read_into(self, index: int, out: np.ndarray) -> None:
        self.reads += 1
        if self._directory is None:
            self._read_with_zarr(index, out)
            return
        try:
            with open(f"{self._prefix}{index}{self._suffix}", "rb", buffering=0) as file:
                data = file.read()
        except FileNotFoundError:
            if index < self.num_chunks:
                raise self.error(index, f"is missing (no file {self.chunk_path(index)})") from None
            out[...] = self.fill_value  # past the array's end: never written
            return
        if self.checksummed:
            if len(data) < 4 or google_crc32c.value(data) != CRC32C_RESIDUE:
                raise self.error(index, f"fails its crc32c checksum ({self.chunk_path(index)} is corrupt)")
            data = memoryview(data)[:-4]
        try:
            _zstd.decompress(data, out.reshape(-1).view(np.uint8))  # releases the GIL while decoding
        except (RuntimeError, ValueError) as error:
            raise self.error(index, f"cannot be decoded ({error}; {self.chunk_path(index)} is corrupt)") from None

    def error(self, index: int, problem: str) -> StoreError:
        return StoreError(self.store_path, f"array {self.name!r} chunk {index} (steps {index * self.chunk_steps}-"
                                           f"{(index + 1) * self.chunk_steps - 1}) {problem}")

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
        try:
            out[: max(0, stop - start)] = self.array[start:stop]
        except Exception as error:  # noqa: BLE001 - zarr raises codec-specific types for corrupt data
            raise self.error(index, f"cannot be read ({type(error).__name__}: {error})") from None
        out[max(0, stop - start) :] = self.fill_value


def has_checksum(array: zarr.Array) -> bool:
    """Whether the array's chunks carry zarr v3's crc32c codec."""
    return any(isinstance(codec, Crc32cCodec) for codec in getattr(array.metadata, "codecs", ()))
