"""`dreamer-pipeline train-online`: iteration k's collectors and learner at the same time.

The online stage replaces iteration k's `collect` and `train_agent` stages (`loop.online`).
The learner (this process) starts from iteration k-1's agent, publishes its actor, and starts one
`dreamer-pipeline collect --follow` process per shard. The collectors write whole episodes to the
iteration's stores under the usual commit protocol; each store keeps exactly one writer. Each
collector takes exactly its planned share of the iteration's steps and commits the episodes still
running then as truncated, so the frames the stage reports are the frames played. The
learner samples the replay (earlier iterations, the prefill, shared datasets, and whatever the
collectors have committed so far, re-read every `REFRESH_SECONDS`) and trains the paper's
interleaved step (world model, actor, critic) on every batch. Both sides hold the replay ratio
through the files of `pipelines.acting.online_link`: at most one update per `train_every` steps taken,
and the collectors at most `loop.lead_updates` updates ahead. Every `loop.publish_every` updates
the learner publishes its actor, which the collectors load before their next step, so the acting
policy is at most about `publish_every * train_every` agent steps old (the paper's loop: 16).

The end of the iteration is the checkpoint and evaluation boundary, as in the staged loop. A
killed stage resumes: the learner from its partial checkpoint, each collector from its store.
Why separate processes talking through atomically replaced, polled files rather than pipes or
shared memory (resume after a kill decides it): docs/pipeline.md, "The online stage".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import click

from ..agent_io import load_agent, save_agent
from ..config import to_dict
from .loss_guard import check_finite_losses
from ..tracking.metrics import MetricsLogger
from ..acting.online_link import OnlineLink
from ..run_layout import RunLayout, metrics_file, store_for_marker, tensorboard_dir
from .actor_gate import checkpoint_extra, gated_step, stage_gate
from .training_options import training_options
from .training import (
    batch_seed, log_new_experience, open_replay, previous_partials, resumable_updates, setup,
    write_resolved_config, write_videos,
)
from .stage_inputs import resume_partial, stage_inputs, training_settings

STAGE = "train_online"
REFRESH_SECONDS = 10.0  # how often the learner re-reads the growing stores (and at most once per update)
POLL_SECONDS = 0.02


class OnlineStageError(RuntimeError):
    """A collector of the online stage failed, or the stage cannot start."""


class OnlineSamplingWarning(UserWarning):
    """A batch-loading setting the online learner does not use (`train.loader_workers`, `train.replay_device`)."""


def unused_loader_settings(cfg) -> list[str]:
    """The train settings the online learner cannot honour. Its replay grows while it trains (re-read
    every REFRESH_SECONDS): DataLoader workers or a device-resident copy would be rebuilt at every
    refresh, so it samples in its own process (`learner_batches`). The staged stages (iteration 0's
    train-agent among them) do use them."""
    unused = []
    if cfg.train.loader_workers:
        unused.append(f"train.loader_workers: {cfg.train.loader_workers}")
    if cfg.train.replay_device != "cpu":
        unused.append(f"train.replay_device: {cfg.train.replay_device}")
    return unused


@dataclass
class CollectorJob:
    """One collector process of the online stage: its store, marker, target and seed."""

    shard: int
    marker: Path
    steps: int
    seed: int
    process: subprocess.Popen | None = None

    @property
    def store(self) -> Path:
        return store_for_marker(self.marker)

    @property
    def finished(self) -> bool:
        return self.marker.exists()


class OnlineLearner:
    """The learner's side of the link: collectors, rate limiting, publication, the growing replay."""

    def __init__(self, link: OnlineLink, jobs: list[CollectorJob], *, train_every: int, target_updates: int,
                 publish_every: int, lead_updates: int):
        self.link, self.jobs = link, jobs
        self.train_every, self.target_updates = train_every, target_updates
        self.publish_every, self.lead_updates = publish_every, lead_updates
        self.waited_seconds = 0.0

    # ---- collectors ----
    def start(self, agent, done: int, command: list[str], env: dict[str, str], lineage: str | None = None) -> None:
        """Publish the actor, write the plan, and start a collector for every unfinished shard."""
        self.link.folder.mkdir(parents=True, exist_ok=True)
        self.link.write_plan(self.train_every, self.lead_updates, [job.steps for job in self.jobs], lineage)
        self.link.publish_actor(agent, done)
        self.link.write_learner(done, self.target_updates)
        for job in self.jobs:
            if job.finished:
                continue
            args = [*command, "--store", str(job.store), "--steps", str(job.steps), "--seed", str(job.seed),
                    "--marker", str(job.marker), "--follow", str(self.link.folder), "--follow-shard", str(job.shard)]
            log = open(self.link.collector_log(job.shard), "ab")
            job.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
            log.close()

    def check_collectors(self) -> None:
        """Raise if a collector exited without finishing its store."""
        for job in self.jobs:
            if job.process is None:
                continue
            code = job.process.poll()
            if code is not None and (code != 0 or not job.finished):
                raise OnlineStageError(
                    f"collector {job.shard} ({job.store}) exited with code {code}; see {self.link.collector_log(job.shard)}")

    def stop_collectors(self) -> None:
        for job in self.jobs:
            if job.process is not None and job.process.poll() is None:
                job.process.terminate()
        for job in self.jobs:
            if job.process is not None:
                try:
                    job.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    job.process.kill()

    def wait_for_collectors(self) -> None:
        """After the last update: let the collectors reach their targets, then check them."""
        self.link.write_learner(self.target_updates, self.target_updates, finished=True)
        for job in self.jobs:
            if job.process is not None:
                job.process.wait()
        self.check_collectors()
        missing = [str(job.marker) for job in self.jobs if not job.finished]
        if missing:
            raise OnlineStageError(f"collectors ended without their markers: {missing}")

    # ---- rate limiting ----
    def steps_taken(self) -> int:
        return sum(job.steps if job.finished else int(self.link.read_collector(job.shard)["steps"]) for job in self.jobs)

    def allowed_updates(self) -> int:
        if all(job.finished for job in self.jobs):
            return self.target_updates
        return min(self.target_updates, self.steps_taken() // self.train_every)

    def wait_for_steps(self, done: int) -> None:
        """Block until update `done + 1` is allowed by the steps the collectors have taken."""
        if done < self.allowed_updates():
            return
        self.link.write_learner(done, self.target_updates)  # the collectors may be waiting for us
        started = time.monotonic()
        while done >= self.allowed_updates():
            self.check_collectors()
            time.sleep(POLL_SECONDS)
        self.waited_seconds += time.monotonic() - started

    def after_update(self, agent, done: int) -> None:
        if done % self.publish_every == 0:
            self.link.publish_actor(agent, done)
        if done % 5 == 0 or done % self.publish_every == 0:
            self.link.write_learner(done, self.target_updates)

    # ---- the growing replay ----
    def committed_steps(self) -> tuple[int, ...]:
        return tuple(self._committed(job) for job in self.jobs)

    @staticmethod
    def _committed(job: "CollectorJob") -> int:
        from dreamer_pipeline.datasets.store import ExperienceStore, StoreError

        if not (job.store / "zarr.json").exists():
            return 0
        try:
            return ExperienceStore(job.store).num_steps
        except StoreError:
            # a running collector creates its store in several writes (zarr.json before the
            # attributes): nothing is committed yet. Once it has exited, the error stands.
            if job.process is not None and job.process.poll() is None:
                return 0
            raise

    def stores_with_experience(self, committed: tuple[int, ...]) -> list[str]:
        """The collectors' stores that `committed` (a `committed_steps()` reading) found readable and
        non-empty. A store still being created has zarr.json before its attributes, so listing by
        zarr.json alone let the learner open a half-made store and fail."""
        return [str(job.store) for job, steps in zip(self.jobs, committed) if steps > 0]

    def collectors_running(self) -> bool:
        return any(job.process is not None and job.process.poll() is None for job in self.jobs)


def learner_batches(learner: OnlineLearner, done: int, cfg, replay: tuple[str, ...], shared: tuple[str, ...],
                    seed: int, device: str) -> Iterator[dict]:
    """Rate-limited batches from a replay that grows as the collectors commit episodes."""
    from dreamer_pipeline.datasets.sampler import SequenceSampler
    from dreamer_pipeline.datasets.dataset import DatasetError
    from dreamer_pipeline.datasets.store import StoreError
    from dreamer_pipeline.datasets.torch_loader import to_torch

    sampler, seen, refreshed, version = None, None, 0.0, 0
    try:
        while True:
            learner.wait_for_steps(done)
            if sampler is None or time.monotonic() - refreshed >= REFRESH_SECONDS:
                committed = learner.committed_steps()
                dataset = None
                if committed != seen:
                    try:
                        dataset = open_replay(cfg, [*replay, *learner.stores_with_experience(committed)], shared)
                    except (StoreError, DatasetError):
                        # a running collector set its store aside and began a new one between the
                        # reading and the opening: keep sampling the old replay, read again next time
                        if sampler is None or not learner.collectors_running():
                            raise
                if dataset is not None:
                    if sampler is not None:
                        sampler.close()
                    version += 1
                    sampler = SequenceSampler(dataset, batch_size=cfg.train.batch_size, seq_len=cfg.train.sequence_length,
                                              prioritize_ends=cfg.train.prioritize_ends, seed=batch_seed(seed, done, version),
                                              threads=1)
                    seen = committed
                refreshed = time.monotonic()
            yield to_torch(sampler.sample(), device)
            done += 1
    finally:
        if sampler is not None:
            sampler.close()


@click.command("train-online", context_settings={"help_option_names": ["-h", "--help"]})
@training_options
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="agent.pt to write (the whole agent).")
@click.option("--videos", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the open-loop prediction GIFs (train.gif, eval.gif).")
@click.option("--resume-from", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Iteration k-1's agent checkpoint: the learner continues from it and the collectors start acting with it.")
@click.option("--marker", "markers", multiple=True, required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Shard j's marker (the store shard{j}.zarr beside it), in shard order. Repeatable.")
def train_online_command(config_path, game, seed, iteration, updates, updates_before, frames, shared, device,
                         replay, out, videos, resume_from, markers):
    """Collect iteration k's experience and train on it at the same time (the online stage).

    REPLAY are the run's stores or markers before this iteration, oldest first. The collectors'
    logs and the exchange files are in the iteration's online/ folder. Resumes after a kill.

    Example: dreamer-pipeline train-online --config results/configs/small.yaml --game road_runner
    --iteration 1 --updates 312 --resume-from .../iter0000/agent.pt
    --marker .../iter0001/experience/shard0.json --out .../iter0001/agent.pt results/datasets/road_runner/random5k.json
    """
    from ..workflow_plan import WorkflowPlan

    ctx = setup(config_path, device=device, game=game, seed=seed)
    cfg, run_dir = ctx.cfg, ctx.run_dir
    for setting in unused_loader_settings(cfg):
        warnings.warn(f"{setting} is not used by the online stage: its replay grows while it trains, so it samples "
                      "batches in its own process (docs/pipeline.md, \"The online stage\")", OnlineSamplingWarning)
    layout = RunLayout.from_config(cfg)
    workflow = WorkflowPlan(cfg, layout)  # the Snakefile's own plan: the same shard targets and seeds as its rules
    if not 1 <= iteration <= workflow.last_iteration:
        raise click.BadParameter(f"the plan has iterations 1..{workflow.last_iteration} to train online, not {iteration}",
                                 param_hint="--iteration")
    shards = range(workflow.iterations[iteration].num_shards)
    if len(markers) != len(shards):
        raise click.BadParameter(f"iteration {iteration} has {len(shards)} shards, got {len(markers)} markers",
                                 param_hint="--marker")
    jobs = [CollectorJob(j, Path(m), workflow.shard_steps(iteration, j), workflow.shard_seed(seed, iteration, j))
            for j, m in zip(shards, markers)]
    dataset = open_replay(cfg, replay, shared)
    agent, carried = load_agent(resume_from, ctx.agent_config, ctx.device, dataset.action_space)
    learner = OnlineLearner(OnlineLink.at(layout.online_dir(game, cfg.variant, seed, iteration)), jobs,
                            train_every=cfg.train_every, target_updates=updates, publish_every=cfg.loop.publish_every,
                            lead_updates=cfg.loop.lead_updates)
    for old in previous_partials(cfg, game, seed, out, iteration):
        old.unlink(missing_ok=True)
    command = [sys.executable, "-m", "dreamer_pipeline.pipelines.cli", "collect", "--game", game, "--config",
               str(config_path), "--envs", str(cfg.collect.envs), "--threads", str(cfg.collect.threads),
               "--policy-mode", cfg.collect.policy_mode, "--device", collector_device(cfg.collect.device, ctx.device),
               "--no-progress", "--set-aside-superseded"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # collectors leave the cores to the learner
    inputs = stage_inputs(agent_config=agent.config, stores=dataset.stores, start=resume_from,
                          **training_settings(cfg, seed=seed, iteration=iteration, shards=[j.steps for j in jobs]))
    # the actor published to the collectors is the resumed one; resumable_updates takes it as is
    resumed = resume_partial(agent, out, stage=STAGE, updates=updates, inputs=inputs)
    done_before = resumed.done
    with MetricsLogger(metrics_file(run_dir), tensorboard_dir(run_dir), stage=STAGE, iteration=iteration,
                       logging=cfg.logging, config=to_dict(cfg)) as logger:
        gate = stage_gate(cfg, game, carried=carried, logger=logger, frames=frames, updates=updates,
                          updates_before=updates_before)
        full_step = gated_step(gate, agent, agent.update)  # world model only while the actor gate is closed
        learner.start(agent, done_before, command, env, lineage=inputs["checkpoint"])  # stores of another start are set aside
        try:
            made = [0]

            stores = [*replay, *(str(job.store) for job in jobs)]

            def step(batch):
                metrics = full_step(batch)
                made[0] += 1
                done = done_before + made[0]
                if done % cfg.loop.publish_every == 0:
                    # a non-finite update poisons every later one: checking the update that
                    # publishes keeps a damaged actor from the collectors
                    check_finite_losses(metrics, stage=STAGE, update=updates_before + done, stores=stores)
                learner.after_update(agent, done)
                return metrics

            resumable_updates(
                stage=STAGE, out=out, updates=updates, agent=agent, cfg=cfg, logger=logger, frames=frames,
                updates_before=updates_before, step=step, stores=stores, inputs=inputs, stage_state=gate,
                resumed=resumed,
                make_batches=lambda done: learner_batches(learner, done, cfg, replay, shared,
                                                          batch_seed(seed, iteration, 2), ctx.device),
            )
            learner.wait_for_collectors()
        finally:
            learner.stop_collectors()
        logger.log({"time/learner_wait_s": learner.waited_seconds}, frames=frames, updates=updates_before + updates)
        log_new_experience(logger, [str(j.marker) for j in jobs], iteration, frames=frames, updates=updates_before + updates)
        final = open_replay(cfg, [*replay, *(str(j.marker) for j in jobs)], shared)
        if videos is not None:
            write_videos(agent, final, cfg, videos, logger, seed=batch_seed(seed, iteration, 3), step=frames)
    save_agent(out, agent, pipeline_config=to_dict(cfg), extra={"game": game, **checkpoint_extra(gate)}, progress={
        "stage": STAGE, "iteration": iteration, "frames": frames, "updates": updates_before + updates,
    })
    write_resolved_config(cfg, out.parent, run_dir)
    click.echo(f"{out}: {updates} updates while collecting {sum(j.steps for j in jobs)} steps "
               f"(learner waited {learner.waited_seconds:.0f} s for experience)")


def collector_device(configured: str, learner: str) -> str:
    """Where the online stage's collectors act: `collect.device`, whose "auto" means the learner's
    GPU when it trains on one (batched acting there is cheap beside training), else the CPU."""
    if configured != "auto":
        return configured
    return learner if str(learner).startswith("cuda") else "cpu"
