"""Frame conversion for imports equals what ale-py does: ALE's grayscale and OpenCV's INTER_AREA."""

from __future__ import annotations

import numpy as np
import pytest

from dreamer_pipeline.datasets.frames import ale_grayscale, area_resize, to_store_frames


@pytest.mark.parametrize("shape", [(84, 84), (210, 160), (64, 64)])
def test_area_resize_matches_opencv(shape):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, *shape), dtype=np.uint8)
    frames[1] = np.repeat(np.arange(shape[1], dtype=np.uint8)[None], shape[0], 0)  # a ramp: many .5 roundings
    expected = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in frames])
    np.testing.assert_array_equal(area_resize(frames, 64), expected)


def test_grayscale_matches_ale_on_real_screens():
    from ale_py import ALEInterface, roms

    ale = ALEInterface()
    ale.setInt("random_seed", 0)
    ale.setLoggerMode(ale_logger_error())
    ale.loadROM(roms.get_rom_path("ms_pacman"))
    actions = ale.getMinimalActionSet()
    rng = np.random.default_rng(0)
    for step in range(120):
        ale.act(actions[rng.integers(len(actions))])
        if step % 20 == 0:
            np.testing.assert_array_equal(ale_grayscale(ale.getScreenRGB()), ale.getScreenGrayscale())


def ale_logger_error():
    from ale_py import LoggerMode

    return LoggerMode.Error


def test_to_store_frames_shapes_and_steps():
    rgb = np.zeros((2, 210, 160, 3), np.uint8)
    frames, steps = to_store_frames(rgb)
    assert frames.shape == (2, 64, 64, 1) and len(steps) == 2
    frames, steps = to_store_frames(np.zeros((3, 64, 64, 1), np.uint8))
    assert frames.shape == (3, 64, 64, 1) and steps == []
    with pytest.raises(ValueError, match="only shrinks"):
        area_resize(np.zeros((1, 32, 32), np.uint8))
