"""Experiment-tracker backends behind `pipelines.tracking.metrics.MetricsLogger`.

Every backend receives the same scalars with the same namespaced keys (`wm/loss`, `eval/return_mean`,
...) against one x-axis, the run's environment frames, the axis every Dreamer implementation
plots against. Choose them with `logging.backends` in the configuration:

| backend | where | x-axis |
|---|---|---|
| `jsonl` | the run's `metrics.jsonl` (written by `MetricsLogger` itself) | the `frames` field |
| `tensorboard` | the run's `tensorboard/` | global step = frames |
| `wandb` | Weights & Biases (`pip install "dreamer-pipeline[wandb]"`) | `frames`, via `define_metric` |
| `mlflow` | MLflow (`pip install "dreamer-pipeline[mlflow]"`) | metric step = frames |

Each pipeline stage is its own process, and several run at once (collectors beside an
evaluation). W&B gets one W&B run per stage and iteration, grouped by the pipeline run
(`pong/default/seed0`): W&B's pattern for many processes of one experiment, whose group view
joins the curves. MLflow gets one MLflow run per pipeline run, shared by its stages: its id is
kept in the run folder (`mlflow_run_id`, created under a file lock), and stages log into it
through `MlflowClient`, which any number of processes may do at once.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any, Mapping, Protocol

from dreamer_pipeline.datasets.durable import atomic_write_text

BACKENDS = ("jsonl", "tensorboard", "wandb", "mlflow")
EXTRAS = {"wandb": "wandb", "mlflow": "mlflow"}  # backend -> the module its extra installs


class TrackerError(RuntimeError):
    """A tracker backend that cannot start (its extra is not installed, or it refused)."""


class Tracker(Protocol):
    def log(self, scalars: Mapping[str, float], frames: int, wall_time: float) -> None: ...
    def log_video_file(self, tag: str, path: Path, frames: int) -> None: ...
    def close(self) -> None: ...


def check_backends(backends: list[str]) -> None:
    """Raise ValueError for an unknown backend or one named twice (the configuration check)."""
    unknown = [name for name in backends if name not in BACKENDS]
    if unknown:
        raise ValueError(f"logging.backends: unknown backend(s) {unknown}; choose from {list(BACKENDS)}")
    if len(set(backends)) != len(backends):
        raise ValueError(f"logging.backends names a backend twice: {backends}")


def require_backend(name: str) -> None:
    """Raise TrackerError unless the backend's package is importable (checked before a run starts)."""
    module = EXTRAS.get(name)
    if module is None:
        return
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise TrackerError(f"logging.backends names {name!r}, but {module} is not installed: "
                           f'pip install "dreamer-pipeline[{name}]"')


def open_trackers(settings, *, run_dir: Path | None, tensorboard_dir: Path | None, run_name: str,
                  stage: str, iteration: int, config: Mapping[str, Any] | None = None) -> list[Tracker]:
    """The trackers `settings` (a `LoggingConfig`) asks for, except `jsonl` (MetricsLogger writes it)."""
    trackers: list[Tracker] = []
    for name in settings.backends:
        if name == "tensorboard" and tensorboard_dir is not None:
            trackers.append(TensorBoardTracker(tensorboard_dir, f".{stage}.iter{iteration:04d}"))
        elif name == "wandb":
            require_backend(name)
            trackers.append(WandbTracker(settings, run_dir=run_dir, run_name=run_name, stage=stage,
                                         iteration=iteration, config=config))
        elif name == "mlflow":
            require_backend(name)
            trackers.append(MlflowTracker(settings, run_dir=run_dir, run_name=run_name, stage=stage,
                                          iteration=iteration, config=config))
    return trackers


class TensorBoardTracker:
    def __init__(self, log_dir: Path, suffix: str):
        from torch.utils.tensorboard import SummaryWriter  # lazy: tensorboard is slow to import

        self.writer = SummaryWriter(log_dir=str(log_dir), filename_suffix=suffix)

    def log(self, scalars: Mapping[str, float], frames: int, wall_time: float) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, frames, walltime=wall_time)

    def log_video(self, tag: str, video, frames: int, fps: int) -> None:
        """`video` uint8 (T, H, W, C); TensorBoard encodes it with moviepy (skipped without it)."""
        try:
            import moviepy  # noqa: F401
            import torch
        except ImportError:
            return
        clip = torch.as_tensor(video).permute(0, 3, 1, 2).unsqueeze(0)  # (1, T, C, H, W)
        self.writer.add_video(tag, clip, frames, fps=fps)

    def log_video_file(self, tag: str, path: Path, frames: int) -> None:
        pass  # TensorBoard shows no MP4 files; the HTML report and the other trackers do

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class WandbTracker:
    def __init__(self, settings, *, run_dir, run_name, stage, iteration, config):
        import wandb

        directory = Path(run_dir) if run_dir is not None else Path.cwd()
        directory.mkdir(parents=True, exist_ok=True)
        self.wandb = wandb
        self.run = wandb.init(
            project=settings.project, entity=settings.wandb_entity or None, group=run_name,
            job_type=stage, name=f"{run_name}/{stage}/iter{iteration:04d}", dir=str(directory),
            mode=settings.wandb_mode, config=dict(config or {}), reinit="create_new",
        )
        self.run.define_metric("frames")
        self.run.define_metric("*", step_metric="frames")

    def log(self, scalars: Mapping[str, float], frames: int, wall_time: float) -> None:
        self.run.log({**scalars, "frames": frames})

    def log_video_file(self, tag: str, path: Path, frames: int) -> None:
        self.run.log({tag: self.wandb.Video(str(path), format="mp4"), "frames": frames})

    def close(self) -> None:
        # finish() may return before W&B's service has written the .wandb file; the service
        # flushes it by the time the stage's process exits. Tearing the service down here would
        # also end any other W&B run the process holds, so it is left to the exit.
        self.run.finish()


class MlflowTracker:
    def __init__(self, settings, *, run_dir, run_name, stage, iteration, config):
        from mlflow.tracking import MlflowClient

        try:
            self.client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri or None)
            self.run_id = _shared_mlflow_run(self.client, settings.project, run_name,
                                             Path(run_dir) if run_dir is not None else None, config)
        except Exception as error:  # noqa: BLE001 - MLflow raises its own exception types for a bad store
            raise TrackerError(f"mlflow ({settings.mlflow_tracking_uri or 'default tracking URI'}): {error}") from None
        self.stage = stage

    def log(self, scalars: Mapping[str, float], frames: int, wall_time: float) -> None:
        from mlflow.entities import Metric

        stamp = int(wall_time * 1000)
        metrics = [Metric(key, float(value), stamp, int(frames)) for key, value in scalars.items()]
        for start in range(0, len(metrics), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def log_video_file(self, tag: str, path: Path, frames: int) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=f"videos/{tag.replace('/', '_')}")

    def close(self) -> None:
        # FINISHED marks this stage done; the next stage logs into the same run id, which MLflow accepts.
        self.client.set_terminated(self.run_id, "FINISHED")


def _shared_mlflow_run(client, experiment: str, run_name: str, run_dir: Path | None, config) -> str:
    """The MLflow run of this pipeline run: created once, its id kept in `run_dir/mlflow_run_id`."""
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    if run_dir is None:
        return client.create_run(experiment_id, run_name=run_name).info.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    id_file = run_dir / "mlflow_run_id"
    lock = os.open(run_dir / ".mlflow_run_id.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two stages starting at once must not create two runs
        if id_file.exists():
            return id_file.read_text().strip()
        run = client.create_run(experiment_id, run_name=run_name, tags={"dreamer_pipeline.run": run_name})
        for key, value in _flat(config or {}).items():
            client.log_param(run.info.run_id, key, value)
        atomic_write_text(id_file, run.info.run_id + "\n")
        return run.info.run_id
    finally:
        os.close(lock)


def _flat(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = str(value)[:500]  # MLflow's parameter value limit is generous; stay well under it
    return out
