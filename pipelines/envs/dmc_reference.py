"""DreamerV2's published Control Suite curves (`pipelines/data/dreamerv2_dmc_curves.json`).

The 20 `dmc_vision` tasks (5 seeds, every 30k environment frames from 30k to 1.98M) and
`humanoid_walk` (10 seeds, every 300k frames to about 44M). Frames are environment frames (agent
steps x action repeat 2). See `pipelines/data/README.md` for the source.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache

import numpy as np

from ..package_data import data_text


@lru_cache(maxsize=1)
def _curves() -> dict:
    return json.loads(data_text("dreamerv2_dmc_curves.json"))["tasks"]


def published_dmc_curve(task: str) -> tuple[np.ndarray, np.ndarray]:
    """`(frames int64, mean return float64)` of DreamerV2's published curve, the mean over its seeds."""
    curves = _curves()
    if task not in curves:
        close = difflib.get_close_matches(str(task), sorted(curves), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise KeyError(f"no published DreamerV2 Control Suite curve for {task!r}.{hint} "
                       f"There are {len(curves)}: {', '.join(sorted(curves))}")
    curve = curves[task]
    frames = curve["frames_start"] + curve["frames_step"] * np.arange(len(curve["mean"]), dtype=np.int64)
    return frames, np.asarray(curve["mean"], dtype=np.float64)
