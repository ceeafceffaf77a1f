"""Namespaced metrics of every stage: one JSON line each in the run's metrics.jsonl, plus TensorBoard.

A line is flat, so `pandas.read_json(path, lines=True)` reads a run at once:

    {"stage": "train_world_model", "iteration": 3, "frames": 3200000, "updates": 46875,
     "wall_time": 1732212345.6, "elapsed_s": 812.4, "wm/loss": 41.2, "wm/kl": 3.1, ...}

`frames` is the number of environment frames the run had seen when the data was produced;
`updates` the run's total gradient updates so far. Metric keys carry a namespace (`wm/`,
`actor/`, `critic/`, `env/`, `eval/`, `collect/`, `time/`).

Several stages of one run may append at once (collectors, evaluation beside the next collection):
each line is one `os.write` on a file opened with O_APPEND, which POSIX keeps whole. A stage that
resumes after a kill may log an update range twice; `read_metrics` keeps the last line per
(stage, iteration, frames, updates, keys).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping

RESERVED = ("stage", "iteration", "frames", "updates", "wall_time", "elapsed_s")


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep it visible rather than dropping it
    return value


class MetricsLogger:
    """`MetricsLogger(metrics_path, tensorboard_dir, stage=..., iteration=k)`; `.log(metrics, frames=, updates=)`.

    `tensorboard_dir=None` skips TensorBoard (e.g. for collectors). Use as a context manager or
    call `close()` so TensorBoard flushes its events.
    """

    def __init__(
        self,
        metrics_path: str | os.PathLike,
        tensorboard_dir: str | os.PathLike | None,
        *,
        stage: str,
        iteration: int,
    ):
        self.path = Path(metrics_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stage = stage
        self.iteration = int(iteration)
        self.started = time.time()
        self.tensorboard_dir = Path(tensorboard_dir) if tensorboard_dir else None
        self._writer = None

    def _tensorboard(self):
        if self._writer is None and self.tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # lazy: tensorboard is slow to import

            self._writer = SummaryWriter(
                log_dir=str(self.tensorboard_dir), filename_suffix=f".{self.stage}.iter{self.iteration:04d}"
            )
        return self._writer

    def log(self, metrics: Mapping[str, Any], *, frames: int, updates: int, step: int | None = None) -> dict:
        """Append one line. `step` is the TensorBoard x-axis (default: `frames`)."""
        for key in metrics:
            if key in RESERVED or "/" not in key:
                raise ValueError(f"metric key {key!r} must be namespaced, e.g. 'wm/{key}'")
        now = time.time()
        record = {
            "stage": self.stage,
            "iteration": self.iteration,
            "frames": int(frames),
            "updates": int(updates),
            "wall_time": round(now, 3),
            "elapsed_s": round(now - self.started, 3),
            **{key: _plain(value) for key, value in metrics.items()},
        }
        line = (json.dumps(record, sort_keys=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        writer = self._tensorboard()
        if writer is not None:
            x = int(frames if step is None else step)
            for key, value in record.items():
                if key not in RESERVED and isinstance(value, (int, float)) and not isinstance(value, bool):
                    writer.add_scalar(key, value, x, walltime=now)
        return record

    def add_video(self, tag: str, video, step: int, fps: int = 10) -> None:
        """`video` uint8 (T, H, W, C) -> a TensorBoard video summary (skipped without moviepy)."""
        writer = self._tensorboard()
        if writer is None:
            return
        try:
            import moviepy  # noqa: F401 - TensorBoard encodes videos with it; the GIFs are the artefact anyway
        except ImportError:
            return
        try:
            import torch

            frames = torch.as_tensor(video).permute(0, 3, 1, 2).unsqueeze(0)  # (1, T, C, H, W)
            writer.add_video(tag, frames, step, fps=fps)
        except Exception:  # noqa: BLE001 - TensorBoard video needs moviepy; the GIFs are the artefact
            pass

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """All lines of a metrics.jsonl, with resumed duplicates removed (the last line wins)."""
    records: dict[tuple, dict] = {}
    order: list[tuple] = []
    with open(path) as file:
        for number, line in enumerate(file):
            line = line.strip()
            if not line:
                continue
            record = json.loads(line)
            metric_keys = tuple(sorted(k for k in record if k not in RESERVED))
            key = (record.get("stage"), record.get("iteration"), record.get("frames"), record.get("updates"), metric_keys)
            if key not in records:
                order.append(key)
            records[key] = record
    return [records[key] for key in order]
