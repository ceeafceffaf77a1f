"""Namespaced metrics of every stage: one JSON line each in the run's metrics.jsonl, plus TensorBoard.

A line is flat, so `pandas.read_json(path, lines=True)` reads a run at once:

    {"stage": "train_world_model", "iteration": 3, "frames": 3200000, "updates": 46875,
     "wall_time": 1732212345.6, "elapsed_s": 812.4, "wm/loss": 41.2, "wm/kl": 3.1, ...}

`frames` is the number of environment frames the run had seen when the data was produced
(training stages: the frame at which the paper's loop would make that update, see
`training.update_frames`); `updates` the run's total gradient updates so far. Metric keys carry a
namespace (`wm/`, `actor/`, `critic/`, `env/`, `eval/`, `collect/`, `time/`).

Backends (`logging.backends`, `pipelines/tracking/trackers.py`): `jsonl` is this file; `tensorboard`,
`wandb` and `mlflow` receive the same numeric keys, all against `frames`: one x-axis everywhere.

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
    """`MetricsLogger(metrics_path, tensorboard_dir, stage=..., iteration=k, logging=cfg.logging)`;
    `.log(metrics, frames=, updates=)`.

    `logging` (a `config.LoggingConfig`; default: jsonl and TensorBoard) chooses the backends.
    `tensorboard_dir=None` skips TensorBoard (e.g. for collectors). `run_name` names the run in
    W&B and MLflow (default: the last three folders of the run directory, `pong/default/seed0`).
    Use as a context manager or call `close()` so the backends flush.
    """

    def __init__(
        self,
        metrics_path: str | os.PathLike,
        tensorboard_dir: str | os.PathLike | None,
        *,
        stage: str,
        iteration: int,
        logging=None,
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
    ):
        from ..config import LoggingConfig

        self.path = Path(metrics_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stage = stage
        self.iteration = int(iteration)
        self.started = time.time()
        self.settings = logging if logging is not None else LoggingConfig()
        self.tensorboard_dir = Path(tensorboard_dir) if tensorboard_dir else None
        self.run_name = run_name or "/".join(self.path.resolve().parent.parts[-3:])
        self.config = config
        self._trackers = None

    @property
    def trackers(self) -> list:
        """The open backends other than jsonl (opened on first use: tensorboard is slow to import)."""
        if self._trackers is None:
            from .trackers import open_trackers

            self._trackers = open_trackers(
                self.settings, run_dir=self.path.parent, tensorboard_dir=self.tensorboard_dir,
                run_name=self.run_name, stage=self.stage, iteration=self.iteration, config=self.config,
            )
        return self._trackers

    def log(self, metrics: Mapping[str, Any], *, frames: int, updates: int, step: int | None = None) -> dict:
        """Append one record to every backend, against `frames`.

        `step` is accepted for older callers and ignored: every backend plots against frames.
        """
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
        if "jsonl" in self.settings.backends:
            line = (json.dumps(record, sort_keys=False) + "\n").encode()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        scalars = _scalars(metrics)
        if scalars:
            for tracker in self.trackers:
                tracker.log(scalars, int(frames), now)
        return record

    def add_video(self, tag: str, video, step: int, fps: int = 10) -> None:
        """`video` uint8 (T, H, W, C) -> a TensorBoard video summary (skipped without moviepy)."""
        for tracker in self.trackers:
            if hasattr(tracker, "log_video"):
                try:
                    tracker.log_video(tag, video, int(step), fps)
                except Exception:  # noqa: BLE001 - TensorBoard video needs moviepy; the GIFs are the artefact
                    pass

    def add_video_file(self, tag: str, path: str | os.PathLike, *, frames: int) -> None:
        """An MP4 already on disk (an evaluation episode) -> the trackers that keep files (W&B, MLflow)."""
        for tracker in self.trackers:
            tracker.log_video_file(tag, Path(path), int(frames))

    def close(self) -> None:
        for tracker in self._trackers or []:
            tracker.close()
        self._trackers = None

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric metrics, as floats (NaN and inf included: the trackers show them)."""
    out = {}
    for key, value in metrics.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out


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
