"""Converting other datasets' frames into the store's 64x64 images: Atari's grayscale the way ale-py
makes it, or RGB (stores with `image_shape` [64, 64, 3]) resized the same way per channel.

Our environment (ale-py's vector env) converts each screen to grayscale with ALE's own palette
luminance and resizes it to 64x64 with OpenCV's INTER_AREA. Imports of foreign data must produce
the same pixels from what they have:

- `ale_grayscale(rgb)`: `round(0.2989 R + 0.5870 G + 0.1140 B)`, which is ALE's grayscale palette:
  every Atari screen pixel is one of the NTSC palette's colours, and for each of them this gives
  exactly the value `ALEInterface.getScreenGrayscale` returns (checked in tests/datasets/test_frames.py).
- `area_resize(frames, 64)`: OpenCV's INTER_AREA as a separable linear map (each output pixel
  averages the source pixels its footprint covers, weighted by the covered area), rounded to
  nearest; equal to `cv2.resize(..., interpolation=cv2.INTER_AREA)` for 210x160 and 84x84
  sources (tests). Pure numpy (two float32 matrix products): OpenCV is not a dependency.
"""

from __future__ import annotations

import functools

import numpy as np

from .schema import IMAGE_SIZE

_LUMA = np.array([0.2989, 0.5870, 0.1140])


@functools.cache
def _gray_table() -> np.ndarray:
    """uint8 gray value of every 24-bit colour (16 MiB, built once): a lookup is ~30x faster than
    computing the weighted sum per pixel, and exactly the same numbers."""
    levels = np.arange(256, dtype=np.float64)
    table = np.empty((256, 256, 256), np.uint8)
    for red in range(256):
        table[red] = np.floor(_LUMA[0] * red + _LUMA[1] * levels[:, None] + _LUMA[2] * levels[None, :] + 0.5)
    return table.reshape(-1)


def ale_grayscale(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 3) RGB Atari screens -> uint8 (..., H, W) as ALE's grayscale."""
    rgb = np.asarray(rgb)
    if rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB frames (..., H, W, 3), got {rgb.dtype} {rgb.shape}")
    table, flat = _gray_table(), rgb.reshape(-1, 3)
    out = np.empty(len(flat), np.uint8)
    for start in range(0, len(flat), 1 << 20):  # blocks that stay in cache (a million pixels)
        block = flat[start:start + (1 << 20)]
        key = (block[:, 0].astype(np.uint32) << 16) | (block[:, 1].astype(np.uint32) << 8) | block[:, 2]
        out[start:start + len(block)] = table[key]
    return out.reshape(rgb.shape[:-1])


@functools.cache
def _area_weights(source: int, target: int) -> np.ndarray:
    """(target, source) matrix: row i holds the area of source pixel j under output pixel i."""
    scale = source / target
    weights = np.zeros((target, source))
    for i in range(target):
        start, stop = i * scale, (i + 1) * scale
        for j in range(int(np.floor(start)), min(source, int(np.ceil(stop)))):
            weights[i, j] = max(0.0, min(stop, j + 1) - max(start, j)) / scale
    return weights


def area_resize(frames: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """uint8 (N, H, W) grayscale frames -> uint8 (N, size, size), OpenCV INTER_AREA (downscaling)."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 grayscale frames (N, H, W), got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:]
    if height < size or width < size:
        raise ValueError(f"area resizing only shrinks: {height}x{width} is smaller than {size}x{size}")
    # Two large float32 matrix products (BLAS), widths then heights. float32 is exact enough: each
    # output sums at most 12 non-zero products, an error far below the distance of any exact result
    # to a rounding boundary (k/441 for 84x84, k/525 for 210x160 sources: never exactly .5).
    rows, cols = _area_weights(height, size).astype(np.float32), _area_weights(width, size).astype(np.float32)
    out = np.empty((len(frames), size, size), np.uint8)
    for start in range(0, len(frames), 2048):  # bounded scratch (2048 frames at 210x160: 263 MiB float32)
        block = frames[start:start + 2048]
        n = len(block)
        narrow = block.reshape(n * height, width).astype(np.float32) @ cols.T  # (n * height, size)
        narrow = narrow.reshape(n, height, size).transpose(0, 2, 1).reshape(n * size, height)
        resized = (narrow @ rows.T).reshape(n, size, size).transpose(0, 2, 1)  # (n, size rows, size cols)
        out[start:start + n] = np.floor(resized + 0.5)
    return out


def to_store_frames(observations: np.ndarray, size: int = IMAGE_SIZE, channels: int = 1) -> tuple[np.ndarray, list[str]]:
    """Frames -> uint8 (N, size, size, channels), and the conversions applied (for provenance).

    `channels=1` (Atari's grayscale) accepts (N, H, W, 3) RGB, (N, H, W) or (N, H, W, 1) grayscale;
    `channels=3` accepts (N, H, W, 3) RGB only (grayscale cannot become colour). Any size >= `size`.
    """
    observations = np.asarray(observations)
    steps: list[str] = []
    if observations.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {observations.dtype}")
    if channels == 3:
        return _to_rgb_frames(observations, size)
    if channels != 1:
        raise ValueError(f"store images have 1 (grayscale) or 3 (RGB) channels, not {channels!r}")
    if observations.ndim == 4 and observations.shape[-1] == 3:
        observations = ale_grayscale(observations)
        steps.append("rgb->grayscale (ALE palette luminance)")
    elif observations.ndim == 4 and observations.shape[-1] == 1:
        observations = observations[..., 0]
    if observations.ndim != 3:
        raise ValueError(f"expected frames (N, H, W), (N, H, W, 1) or (N, H, W, 3), got {observations.shape}")
    if observations.shape[1:] != (size, size):
        steps.append(f"resize {observations.shape[1]}x{observations.shape[2]}->{size}x{size} (INTER_AREA)")
        observations = area_resize(observations, size)
    return observations[..., None], steps


def _to_rgb_frames(observations: np.ndarray, size: int) -> tuple[np.ndarray, list[str]]:
    if observations.ndim != 4 or observations.shape[-1] != 3:
        raise ValueError(f"expected RGB frames (N, H, W, 3) for an RGB store, got {observations.shape}")
    count, height, width, _ = observations.shape
    if (height, width) == (size, size):
        return observations, []
    planes = np.ascontiguousarray(observations.transpose(0, 3, 1, 2)).reshape(count * 3, height, width)
    resized = area_resize(planes, size).reshape(count, 3, size, size).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(resized), [f"resize {height}x{width}->{size}x{size} per channel (INTER_AREA)"]
