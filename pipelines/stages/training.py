"""What the training stages share: configuration, the replay, batches, and a resumable update loop.

`resumable_updates(...)` runs a stage's gradient updates with a progress bar and metrics, saves a
mid-stage checkpoint (`*.partial.pt`, never a declared Snakemake output) every
`train.checkpoint_every` updates, resumes from it after a kill, and writes the declared output
atomically at the end. A killed stage therefore loses at most `checkpoint_every` updates, and an
output file that exists is always complete. A non-finite loss stops it before anything is saved
from that update (`loss_guard.check_finite_losses`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from dreamer_pipeline.datasets.durable import write_if_changed
from ..config import PipelineConfig, dump_config, load_config
from .loss_guard import check_finite_losses
from ..tracking.metrics import MetricsLogger
from ..run_layout import RunLayout, compile_cache_dir, partial_checkpoint, stage_run_dir
from .stage_inputs import Resumed, resume_partial

STAGE_FORMAT = 2  # 2: the partial records the digests of its inputs (stage_inputs.py)


@dataclass
class StageContext:
    cfg: PipelineConfig
    agent_config: Any
    device: str
    run_dir: Path | None = None  # where the stage logs (metrics.jsonl, tensorboard/) and torch.compile caches


def setup(config_path: str | os.PathLike, *, device: str | None = None, game: str | None = None,
          seed: int = 0, run_dir: str | os.PathLike | None = None) -> StageContext:
    """Load the pipeline configuration and the agent's, pick the device and the torch threads.

    A training stage of a run gives its `game` and `seed`: its run folder is then the layout's
    (`RunLayout.run_dir` of the configuration's `paths.results` and `variant`). A stage outside a run
    (pretraining) gives its own `run_dir`. torch.compile keeps its caches there (`use_compile_cache`)."""
    import torch

    from dreamer_pipeline.models.config import preset

    from ..machine import check_machine

    cfg = load_config(config_path)
    agent_config = preset(cfg.agent.preset, cfg.agent.overrides)
    if cfg.train.torch_threads:
        torch.set_num_threads(cfg.train.torch_threads)
    chosen = check_machine(cfg, agent_config, device)  # the device exists here and the stage fits
    if game is not None:
        run_dir = stage_run_dir(cfg, game, seed)
    if run_dir is not None:
        run_dir = Path(run_dir)
        use_compile_cache(run_dir, agent_config.runtime, chosen)
    return StageContext(cfg, agent_config, chosen, run_dir)


def use_compile_cache(run_dir: str | os.PathLike, runtime: Any, device: str) -> Path | None:
    """Where the agent compiles (`runtime.mode` compile or compile_cuda_graph, or auto on CUDA),
    point torch.compile's persistent caches (Inductor's compiled graphs and kernels, AOTAutograd's
    graphs, Triton's kernels) into the run's folder, before anything compiles. Each stage is its
    own process: without a cache every training stage of every iteration compiled again (about
    40 s on an H200), and torch's default folder is outside the run. Torch keys entries by code,
    inputs and versions, so a stale entry is never reused. Returns the folder, or None."""
    import torch

    if not runtime.uses_compile(torch.device(device).type):
        return None
    folder = compile_cache_dir(run_dir)
    if folder.is_symlink():
        raise ValueError(f"{folder}: the compile cache is a symbolic link; remove it (torch writes into this folder)")
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)  # read by Inductor whenever it opens its cache
    os.environ["TRITON_CACHE_DIR"] = str(folder / "triton")
    import torch._functorch.config
    import torch._inductor.config

    torch._inductor.config.fx_graph_cache = True  # the defaults, set in case the environment turned them off
    torch._functorch.config.enable_autograd_cache = True
    return folder


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


def batches(dataset, cfg: PipelineConfig, seed: int, device: str, *, drop_reward: bool = False,
            workers: int | None = None, resident: bool = True) -> Iterable[dict]:
    """Endless torch batches (B, T, ...) on `device` from `dataset` (see datasets.sampler).

    With `train.replay_device` other than "cpu" the whole replay is loaded onto that device once
    and sampled there (datasets.device_replay; the same batches as `loader_workers: 0`). Else,
    with `train.loader_workers` > 0, DataLoader worker processes sample and decode batches while
    the device trains (datasets.torch_loader); otherwise the stage's own process samples them.
    """
    from dreamer_pipeline.datasets.sampler import SequenceSampler
    from dreamer_pipeline.datasets.torch_loader import make_loader, to_torch

    from ..machine import resolve_device

    workers = cfg.train.loader_workers if workers is None else workers
    kwargs = dict(batch_size=cfg.train.batch_size, seq_len=cfg.train.sequence_length,
                  prioritize_ends=cfg.train.prioritize_ends)
    if cfg.train.replay_device != "cpu" and resident:
        from dreamer_pipeline.datasets.device_replay import DeviceSequenceSampler

        sampler = DeviceSequenceSampler(dataset, resolve_device(cfg.train.replay_device, "train.replay_device"), seed=seed, progress=True,
                                        **kwargs)
        try:
            while True:
                batch = sampler.sample()
                if drop_reward:
                    batch.pop("reward", None)
                yield {key: value.to(device, non_blocking=True) for key, value in batch.items()}
        finally:
            sampler.close()
    if workers > 0:
        pin = str(device).startswith("cuda")
        for batch in make_loader(dataset, num_workers=workers, seed=seed, pin_memory=pin, **kwargs):
            if drop_reward:
                batch.pop("reward", None)
            yield {key: value.to(device, non_blocking=pin) for key, value in batch.items()}
        return
    sampler = SequenceSampler(dataset, seed=seed, threads=1, **kwargs)
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
    """The window's mean metrics. The agent's metrics stay on its device until here: the whole
    window is copied to the host once, every `log_every` updates, not once per update."""
    from dreamer_pipeline.models.update_metrics import mean_metrics

    return mean_metrics(records)


def previous_partials(cfg: PipelineConfig, game: str, seed: int, out: str | os.PathLike, iteration: int) -> list[Path]:
    """Partial checkpoints of the same stage (named after `out`'s) in earlier iterations of the run
    (safe to delete once iteration k runs: their outputs exist, and Snakemake has recorded them as
    complete)."""
    layout = RunLayout.from_config(cfg)
    name = partial_checkpoint(out).name
    found = []
    for k in range(iteration):
        partial = Path(layout.iteration_dir(game, cfg.variant, seed, k)) / name
        if partial.exists() and partial != partial_checkpoint(out):
            found.append(partial)
    return found


def resumable_updates(
    *,
    stage: str,
    out: str | os.PathLike,
    updates: int,
    agent,
    cfg: PipelineConfig,
    make_batches: Callable[[int], Iterable[dict]],
    step: Callable[[dict], Mapping[str, Any]],
    logger: MetricsLogger,
    frames: int,
    updates_before: int,
    log_every: int = 0,
    stores: Sequence[str] = (),
    inputs: Mapping[str, str] | None = None,
    stage_state=None,
    resumed: Resumed | None = None,
) -> int:
    """Run `updates` calls of `step(batch)`, resuming from `out`'s partial checkpoint if present.

    Every `train.checkpoint_every` updates, and once more at the end, the agent and the stage's
    progress go to the partial checkpoint (atomically). The final one stays until the same stage
    of the next iteration starts, so a stage killed after its last update (even before Snakemake
    recorded it as done) never redoes its updates. `make_batches(done)` returns the batch stream
    of a stage that has done `done` updates (seeded by it: a resumed stage draws fresh windows).
    Returns the number of updates this call made. A non-finite loss raises `NonFiniteLossError`
    naming the first bad update and `stores` (the replay's) before anything from it is logged or
    saved (losses are checked at each log or checkpoint, so the device never waits per update).
    `stage_state` (e.g. the actor gate) has `state_dict()`/`load_state_dict()`: it is saved in
    every partial checkpoint and resumed with the agent. A stage that must know before its loop
    whether it resumes (to publish the resumed actor, or to log once) calls `resume_partial`
    itself and passes its result as `resumed`; the partial is then not read a second time.
    """
    from dreamer_pipeline.models import checkpoint as ckpt

    partial = partial_checkpoint(out)
    if resumed is None:
        resumed = resume_partial(agent, out, stage=stage, updates=updates, inputs=inputs)
    done = resumed.done
    if done and stage_state is not None:
        stage_state.load_state_dict(resumed.stage_state)
    if done:
        tqdm.write(f"{stage}: resuming from {partial} after {done}/{updates} updates")

    def save_partial() -> None:
        ckpt.save_checkpoint(agent, partial, extra={"stage_progress": {
            "stage": stage, "updates": updates, "done": done, "format": STAGE_FORMAT, "inputs": dict(inputs or {})},
            **({"stage_state": stage_state.state_dict()} if stage_state is not None else {})})

    log_every = log_every or max(1, min(100, updates // 20 or 1))
    window: list[Mapping[str, Any]] = []
    started, made = time.time(), 0
    if done < updates:
        stream = iter(make_batches(done))
        bar = tqdm(total=updates, initial=done, desc=stage, unit="update", dynamic_ncols=True, mininterval=5)
        unchecked: list[tuple[int, Mapping[str, Any]]] = []
        while done < updates:
            metrics = step(next(stream))
            done += 1
            made += 1
            bar.update(1)
            window.append(metrics)
            unchecked.append((updates_before + done, metrics))
            logging_now = done % log_every == 0 or done == updates
            if logging_now or done % cfg.train.checkpoint_every == 0:
                # checked here, not after every update: reading the losses waits for the device,
                # and nothing from an update is logged or saved before its check
                for number, record in unchecked:
                    check_finite_losses(record, stage=stage, update=number, stores=stores)
                unchecked.clear()
            if logging_now:
                averaged = _mean(window)
                averaged[f"time/{stage}_updates_per_s"] = made / max(time.time() - started, 1e-9)
                logger.log(averaged, frames=update_frames(cfg, frames, updates, done, updates_before),
                           updates=updates_before + done)
                window.clear()
            if done % cfg.train.checkpoint_every == 0 or done == updates:
                save_partial()
        bar.close()
    return made


def update_frames(cfg: PipelineConfig, frames: int, updates: int, done: int, updates_before: int) -> int:
    """The environment frame at which the paper's loop makes a stage's `done`-th update: the x-axis
    of training metrics, so they share one axis with evaluation and with other implementations.

    The paper updates once per `train_every` agent steps while collecting. Iteration k's stage makes
    its `updates` after collecting up to `frames`, so update `done` corresponds to frame
    `frames - (updates - done) * train_every * action_repeat`: the updates spread over the frames
    collected for them. Stages without environment frames (pretraining, offline runs: `frames` 0)
    use the frames the paper's loop would have collected for the run's updates so far.
    """
    per_update = cfg.train_every * cfg.action_repeat
    if frames <= 0:
        return (updates_before + done) * per_update
    return max(0, frames - (updates - done) * per_update)


def write_videos(agent, dataset, cfg: PipelineConfig, folder: str | os.PathLike, logger: MetricsLogger, *,
                 seed: int, step: int) -> list[Path]:
    """Open-loop predictions (truth, model, error) as GIFs: `train.gif` for a batch of the replay,
    `eval.gif` for windows of the newest experience (the last store of the replay)."""
    import imageio.v2 as imageio

    from dreamer_pipeline.datasets.durable import atomic_write

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    count = cfg.train.video_sequences
    if count == 0:
        return []
    written = []
    newest = _newest_part(dataset)
    for name, data in (("train", dataset), ("eval", newest)):
        try:
            batch = next(iter(batches(data, cfg, seed + (name == "eval"), "cpu", workers=0, resident=False)))
        except Exception as error:  # noqa: BLE001 - e.g. no episode long enough in the newest store
            tqdm.write(f"no {name} video: {error}")
            continue
        batch = {key: value[:count] for key, value in batch.items()}
        video = agent.open_loop(batch, context=min(5, cfg.train.sequence_length - 1), max_sequences=count)
        frames = video[..., 0] if video.shape[-1] == 1 else video
        path = folder / f"{name}.gif"
        atomic_write(path, lambda tmp: imageio.mimsave(tmp, list(frames), format="GIF", duration=0.1, loop=0))
        logger.add_video(f"video/{name}_open_loop", video, step)
        written.append(path)
    return written


def _newest_part(dataset):
    """The episodes of the dataset's last store: the most recent experience of the run."""
    from dreamer_pipeline.datasets.dataset import Dataset

    last = len(dataset.stores) - 1
    rows = np.flatnonzero(dataset.episodes.store == last)
    if len(rows) == 0:
        return dataset
    table = dataset.episodes.take(rows)
    table = type(table)(np.zeros(len(rows), np.int32), table.start, table.length)
    return Dataset([dataset.stores[last]], table, "newest")


def log_new_experience(logger: MetricsLogger, sources: Sequence[str], iteration: int, *, frames: int, updates: int) -> None:
    """Episode returns of the experience collected for this iteration (its shard stores), as env/*."""
    from ..run_layout import iteration_name

    from dreamer_pipeline.datasets.dataset import resolve_stores
    from dreamer_pipeline.datasets.store import ExperienceStore

    returns, lengths = [], []
    for source in sources:
        if iteration_name(iteration) not in Path(source).parts:
            continue  # only this iteration's collected shards; older, prefill and shared data are not new
        for path in resolve_stores(source)[0]:
            store = ExperienceStore(path)
            if store.reward_free:
                continue
            index = store.episodes()
            reward = store.read("reward")
            # episodes the collector cut at its target are not whole games: their returns would bias these
            cut = {k for run in store.attrs.get("runs", []) for k in run.get("cut_episodes", [])}
            finished = [(s, n) for k, (s, n) in enumerate(zip(index.starts, index.lengths)) if k not in cut]
            returns += [float(reward[s:s + n].sum()) for s, n in finished]
            lengths += [int(n) for _, n in finished]
    if returns:
        logger.log({"env/return_mean": float(np.mean(returns)), "env/return_max": float(np.max(returns)),
                    "env/length_mean": float(np.mean(lengths)), "env/episodes": len(returns)},
                   frames=frames, updates=updates)
