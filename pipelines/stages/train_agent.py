"""`dreamer-pipeline train-agent`: iteration k's agent (world model, actor, critic), trained on the run's replay.

This is the default path (`interleaved: true`, the paper's loop, Hafner et al. 2021, Algorithm 1):
every batch trains the world model, then the actor, then the critic, and the output (`agent.pt`)
holds iteration k's whole agent; no train-actor-critic stage follows. With `--world-model-only`
(iteration 0's warm-up, `prefill.world_model_only`) only the world model learns, and the output is
still the agent the next iteration continues. Staged training (`interleaved: false`) runs
`train-world-model` (pipelines/stages/train_world_model.py), then `train-actor-critic`, instead.

Iteration k resumes from iteration k-1's agent (weights and optimiser states), or, at k = 0, from
scratch or from a reward-free pretrained world model. The replay is the most recent
`replay_steps` steps of the run's own stores (prefill and collected shards, oldest first) plus
the shared datasets the configuration names. It makes `--updates` updates: the paper's replay
ratio, steps_per_iteration / train_every.

Metrics go to the run's folder (`RunLayout.run_dir` of the configuration's `paths.results` and
`variant`). At the end it writes open-loop prediction videos (truth, model, error; the paper's
Figure 3 layout) for a training batch and for the newest experience, then the checkpoint, atomically.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..agent_io import build_agent, load_agent, load_pretrained_world_model, save_agent
from ..config import to_dict
from ..run_layout import metrics_file, tensorboard_dir
from ..tracking.metrics import MetricsLogger
from .actor_gate import checkpoint_extra, gated_step, stage_gate
from .stage_inputs import resume_partial, stage_inputs, training_settings
from .training import (
    batch_seed, batches, log_new_experience, open_replay, previous_partials, resumable_updates, setup,
    write_resolved_config, write_videos,
)
from .training_options import training_options

AGENT_STAGE = "train_agent"  # the metrics' stage name of interleaved updates
WORLD_MODEL_STAGE = "train_world_model"  # ... of world-model-only updates (staged, or iteration 0's warm-up)


def train_on_replay(*, config_path, game, seed, iteration, updates, updates_before, frames, shared, device, replay,
                    out: Path, videos: Path | None, resume_from, init_world_model, interleaved: bool) -> None:
    """Train iteration k's agent (`interleaved`) or its world model alone on the replay; write `out`."""
    if resume_from and init_world_model:
        raise click.UsageError("give --resume-from or --init-world-model, not both")
    ctx = setup(config_path, device=device, game=game, seed=seed)
    cfg, run_dir = ctx.cfg, ctx.run_dir
    dataset = open_replay(cfg, replay, shared)
    if not dataset.has_reward:
        raise click.ClickException(
            f"the replay holds reward-free data ({dataset}); the loop needs rewards. Reward-free datasets belong "
            "in the pretrain section."
        )
    carried = {}  # the extra metadata of the checkpoint the stage continues (the actor gate's state)
    if resume_from:
        agent, carried = load_agent(resume_from, ctx.agent_config, ctx.device, dataset.action_space)
    else:
        agent = build_agent(ctx.agent_config, dataset.action_space, ctx.device, batch_seed(seed, iteration, 1),
                            dataset.image_shape)
        if init_world_model:
            fresh = load_pretrained_world_model(agent, init_world_model)
            click.echo(f"initialised from {init_world_model}; learning from scratch: {sorted({k.split('.')[0] for k in fresh})}")
    stage = AGENT_STAGE if interleaved else WORLD_MODEL_STAGE
    for old in previous_partials(cfg, game, seed, out, iteration):
        old.unlink(missing_ok=True)
    inputs = stage_inputs(agent_config=agent.config, stores=dataset.stores, start=resume_from or init_world_model,
                          **training_settings(cfg, seed=seed, iteration=iteration, init=bool(init_world_model)))
    resumed = resume_partial(agent, out, stage=stage, updates=updates, inputs=inputs)
    with MetricsLogger(metrics_file(run_dir), tensorboard_dir(run_dir), stage=stage, iteration=iteration,
                       logging=cfg.logging, config=to_dict(cfg)) as logger:
        if not resumed.done:
            log_new_experience(logger, replay, iteration, frames=frames, updates=updates_before)
        logger.log({"replay/steps": dataset.num_steps, "replay/episodes": dataset.num_episodes}, frames=frames,
                   updates=updates_before)
        gate = stage_gate(cfg, game, carried=carried, logger=logger, frames=frames, updates=updates,
                          updates_before=updates_before)
        step = gated_step(gate, agent, agent.update if interleaved else agent.train_world_model)
        resumable_updates(
            stage_state=gate, resumed=resumed,
            stores=[str(store.path) for store in dataset.stores],
            stage=stage, out=out, updates=updates, agent=agent, cfg=cfg, logger=logger, frames=frames,
            updates_before=updates_before, step=step, inputs=inputs,
            make_batches=lambda done: batches(dataset, cfg, batch_seed(seed, iteration, 2, done), ctx.device),
        )
        if videos is not None:
            write_videos(agent, dataset, cfg, videos, logger, seed=batch_seed(seed, iteration, 3), step=frames)
    save_agent(out, agent, pipeline_config=to_dict(cfg), extra={"game": game, **checkpoint_extra(gate)}, progress={
        "stage": stage, "iteration": iteration, "frames": frames, "updates": updates_before + updates,
    })
    write_resolved_config(cfg, out.parent, run_dir)
    click.echo(f"{out}: {updates} updates on {dataset.num_steps} replay steps")


def iteration_options(function):
    """The options of train-agent and train-world-model beyond `training_options`."""
    options = [
        training_options,
        click.option("--videos", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Folder for the open-loop prediction GIFs (train.gif, eval.gif)."),
        click.option("--resume-from", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Iteration k-1's agent checkpoint: weights and optimiser states continue from it."),
        click.option("--init-world-model", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="A pretrained world model to start from (reward head excluded); for iteration 0."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.command("train-agent", context_settings={"help_option_names": ["-h", "--help"]})
@iteration_options
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="agent.pt to write (the whole agent).")
@click.option("--interleaved/--world-model-only", default=True, show_default=True,
              help="Train world model, actor and critic on every batch (the paper's loop), or, for iteration 0's "
                   "warm-up (prefill.world_model_only), the world model only.")
def train_agent_command(config_path, game, seed, iteration, updates, updates_before, frames, shared, device,
                        replay, videos, resume_from, init_world_model, out, interleaved):
    """Train iteration k's agent (world model, actor and critic on every batch) on the replay.

    REPLAY are the run's stores or their markers, oldest first.

    Resumes mid-stage from OUT's partial checkpoint (agent.partial.pt) after a kill.

    Example: dreamer-pipeline train-agent --config config/small.yaml --game road_runner --updates 12
    --out /tmp/agent.pt results/datasets/road_runner/random5k.json
    """
    train_on_replay(config_path=config_path, game=game, seed=seed, iteration=iteration, updates=updates,
                    updates_before=updates_before, frames=frames, shared=shared, device=device, replay=replay,
                    out=out, videos=videos, resume_from=resume_from, init_world_model=init_world_model,
                    interleaved=interleaved)
