"""What the training stages share: configuration, the replay, batches, and a resumable update loop.

`resumable_updates(...)` runs a stage's gradient updates with a progress bar and metrics, saves a
mid-stage checkpoint (`*.partial.pt`, never a declared Snakemake output) every
`train.checkpoint_every` updates, resumes from it after a kill, and writes the declared output
atomically at the end. A killed stage therefore loses at most `checkpoint_every` updates, and an
output file that exists is always complete.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from .atomic import write_if_changed
from .config import PipelineConfig, dump_config, load_config
from .metrics import MetricsLogger
from .run_layout import partial_checkpoint

STAGE_FORMAT = 1


@dataclass
class StageContext:
    cfg: PipelineConfig
    agent_config: Any
    device: str


def setup(config_path: str | os.PathLike, *, device: str | None = None) -> StageContext:
    """Load the pipeline configuration and the agent's, pick the device and the torch threads."""
    import torch

    from dreamer_pipeline.models.config import preset

    cfg = load_config(config_path)
    agent_config = preset(cfg.agent.preset, cfg.agent.overrides)
    if cfg.train.torch_threads:
        torch.set_num_threads(cfg.train.torch_threads)
    chosen = device or cfg.train.device
    if chosen == "auto":
        chosen = "cuda" if torch.cuda.is_available() else "cpu"
    return StageContext(cfg, agent_config, chosen)


def write_resolved_config(cfg: PipelineConfig, *folders: str | os.PathLike) -> None:
    """The resolved configuration next to every output (rewritten only when it changed)."""
    text = dump_config(cfg)
    for folder in folders:
        write_if_changed(Path(folder) / "config.yaml", text)


def open_replay(cfg: PipelineConfig, recent: Sequence[str], shared: Sequence[str]):
    """The paper's replay: the most recent `replay_steps` of the run's stores, plus shared datasets."""
    from dreamer_pipeline.datasets.dataset import Replay, open_dataset

    if recent:
        return Replay(list(recent), cfg.replay_steps, list(shared))
    return open_dataset(*shared, name="shared")


def batches(dataset, cfg: PipelineConfig, seed: int, device: str, *, drop_reward: bool = False) -> Iterable[dict]:
    """Endless torch batches (B, T, ...) on `device` from `dataset` (see datasets.sampler)."""
    from dreamer_pipeline.datasets.sampler import SequenceSampler
    from dreamer_pipeline.datasets.torch_loader import to_torch

    sampler = SequenceSampler(
        dataset,
        batch_size=cfg.train.batch_size,
        seq_len=cfg.train.sequence_length,
        prioritize_ends=cfg.train.prioritize_ends,
        seed=seed,
        threads=1,
    )
    try:
        while True:
            batch = sampler.sample()
            if drop_reward:
                batch.pop("reward", None)
            yield to_torch(batch, device)
    finally:
        sampler.close()


def batch_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def _mean(records: list[Mapping[str, Any]]) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    for record in records:
        for key, value in record.items():
            if hasattr(value, "item"):
                value = value.item()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(key, []).append(float(value))
    return {key: float(np.mean(values)) for key, values in out.items()}


def resumable_updates(
    *,
    stage: str,
    out: str | os.PathLike,
    updates: int,
    agent,
    save: Callable[[str | os.PathLike, dict], None],
    load: Callable[[str | os.PathLike], dict],
    make_batches: Callable[[int], Iterable[dict]],
    step: Callable[[dict], Mapping[str, Any]],
    logger: MetricsLogger,
    frames: int,
    updates_before: int,
    checkpoint_every: int,
    log_every: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> int:
    """Run `updates` calls of `step(batch)`, resuming from `out`'s partial checkpoint if present.

    `save(path, payload)` must write atomically; `payload["agent"]` is `agent.state_dict()`,
    `payload["stage"]` the stage's progress. `make_batches(done)` returns the batch stream for a
    stage that has done `done` updates (seeded by it, so a resumed stage draws fresh windows).
    Returns the number of updates this call made.
    """
    partial = partial_checkpoint(out)
    done = 0
    if partial.exists():
        payload = load(partial)
        progress = payload.get("stage", {})
        if progress.get("stage") == stage and progress.get("updates") == updates:
            agent.load_state_dict(payload["agent"])
            done = int(progress.get("done", 0))
            tqdm.write(f"{stage}: resuming from {partial} after {done}/{updates} updates")
    log_every = log_every or max(1, min(100, updates // 20 or 1))
    stream = iter(make_batches(done))
    window: list[Mapping[str, Any]] = []
    started, made = time.time(), 0
    bar = tqdm(total=updates, initial=done, desc=stage, unit="update", dynamic_ncols=True, mininterval=5)
    while done < updates:
        metrics = step(next(stream))
        done += 1
        made += 1
        bar.update(1)
        window.append(metrics)
        if done % log_every == 0 or done == updates:
            averaged = _mean(window)
            averaged[f"time/{stage}_updates_per_s"] = made / max(time.time() - started, 1e-9)
            logger.log(averaged, frames=frames, updates=updates_before + done, step=updates_before + done)
            window.clear()
        if done % checkpoint_every == 0 and done < updates:
            save(partial, {"agent": agent.state_dict(), "stage": {"stage": stage, "updates": updates, "done": done, "format": STAGE_FORMAT}, **(extra or {})})
    bar.close()
    return made


def finish(out: str | os.PathLike, save: Callable[[str | os.PathLike, dict], None], payload: dict) -> None:
    """Write the declared output atomically, then drop the partial checkpoint it supersedes."""
    save(out, payload)
    partial_checkpoint(out).unlink(missing_ok=True)
