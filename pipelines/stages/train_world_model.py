"""`dreamer-pipeline train-world-model`: iteration k's world model, trained on the run's replay.

Iteration k resumes from iteration k-1's agent (weights and optimiser states), or, at k = 0, from
scratch or from a reward-free pretrained world model. The replay is the most recent
`replay_steps` steps of the run's own stores (prefill and collected shards, oldest first) plus
the shared datasets the configuration names. It makes `--updates` updates: the paper's replay
ratio, steps_per_iteration / train_every.

With `--interleaved` every batch trains the world model, then the actor, then the critic, exactly
like the paper's loop (Hafner et al. 2021, Algorithm 1); the output then holds iteration k's whole
agent and no train-actor-critic stage follows. Without it only the world model learns here.

At the end it writes open-loop prediction videos (truth, model, error; the paper's Figure 3
layout) for a training batch and for the newest experience, then the checkpoint, atomically.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..agent_io import build_agent, load_agent, load_pretrained_world_model, save_agent
from ..tracking.metrics import MetricsLogger
from ..run_layout import partial_checkpoint, run_dir_of_iteration_file
from .actor_gate import checkpoint_extra, gated_step, stage_gate
from .training import (
    batch_seed, batches, open_replay, resumable_updates, setup, write_resolved_config,
    write_videos, log_new_experience, previous_partials,
)
from .stage_inputs import resume_partial, stage_inputs, training_settings

STAGE = "train_world_model"


def common_options(function):
    """Options shared by both training stages."""
    options = [
        click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
                     help="Pipeline configuration (YAML): train, agent and replay settings."),
        click.option("--game", required=True, help="Game or Control Suite task, snake_case (recorded in metrics)."),
        click.option("--seed", default=0, show_default=True, type=int, help="Run seed (seeds the batches)."),
        click.option("--iteration", default=0, show_default=True, type=int, help="Iteration k of the run."),
        click.option("--updates", required=True, type=click.IntRange(min=1), help="Gradient updates to make."),
        click.option("--updates-before", default=0, show_default=True, type=int,
                     help="Updates the run made before this stage (for the metrics' x-axis)."),
        click.option("--frames", default=0, show_default=True, type=int,
                     help="Environment frames the run has collected (for metrics)."),
        click.option("--shared", multiple=True, type=click.Path(exists=True),
                     help="A shared dataset (store, directory of stores or manifest) added to the replay. Repeatable."),
        click.option("--device", default=None, help="Torch device [default: train.device]."),
        click.argument("replay", nargs=-1, type=click.Path(exists=True)),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.command("train-world-model", context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="world_model.pt to write.")
@click.option("--videos", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the open-loop prediction GIFs (train.gif, eval.gif).")
@click.option("--resume-from", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Iteration k-1's agent checkpoint: weights and optimiser states continue from it.")
@click.option("--init-world-model", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A pretrained world model to start from (reward head excluded); for iteration 0.")
@click.option("--interleaved/--world-model-only", default=False, show_default=True,
              help="Train world model, actor and critic on every batch (the paper's loop), or the world model only.")
def train_world_model_command(config_path, game, seed, iteration, updates, updates_before, frames, shared, device,
                              replay, out, videos, resume_from, init_world_model, interleaved):
    """Train iteration k's world model (or whole agent) on the replay.

    REPLAY are the run's stores or their markers, oldest first.

    Resumes mid-stage from OUT's partial checkpoint (world_model.partial.pt) after a kill.

    Example: dreamer-pipeline train-world-model --config config/debug.yaml --game pong --updates 12
    --out /tmp/world_model.pt results/datasets/pong/random-debug.json
    """
    ctx = setup(config_path, device=device, run_dir=_run_dir(out))
    cfg = ctx.cfg
    if resume_from and init_world_model:
        raise click.UsageError("give --resume-from or --init-world-model, not both")
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
    run_dir = _run_dir(out)
    stage = "train_agent" if interleaved else STAGE
    for old in previous_partials(out, iteration):
        old.unlink(missing_ok=True)
    inputs = stage_inputs(agent_config=agent.config, stores=dataset.stores, start=resume_from or init_world_model,
                          **training_settings(cfg, seed=seed, iteration=iteration, init=bool(init_world_model)))
    resumed = resume_partial(agent, out, stage=stage, updates=updates, inputs=inputs)
    with MetricsLogger(run_dir / "metrics.jsonl", run_dir / "tensorboard", stage=stage, iteration=iteration,
                       logging=cfg.logging, config=_plain(cfg)) as logger:
        if not resumed:
            log_new_experience(logger, replay, iteration, frames=frames, updates=updates_before)
        logger.log({"replay/steps": dataset.num_steps, "replay/episodes": dataset.num_episodes}, frames=frames,
                   updates=updates_before)
        gate = stage_gate(cfg, game, carried=carried, logger=logger, frames=frames, updates=updates,
                          updates_before=updates_before)
        step = gated_step(gate, agent, agent.update if interleaved else agent.train_world_model)
        resumable_updates(
            stage_state=gate,
            stores=[str(store.path) for store in dataset.stores],
            stage=stage, out=out, updates=updates, agent=agent, cfg=cfg, logger=logger, frames=frames,
            updates_before=updates_before, step=step, inputs=inputs,
            make_batches=lambda done: batches(dataset, cfg, batch_seed(seed, iteration, 2, done), ctx.device),
        )
        if videos is not None:
            write_videos(agent, dataset, cfg, videos, logger, seed=batch_seed(seed, iteration, 3), step=frames)
    save_agent(out, agent, pipeline_config=_plain(cfg), extra={"game": game, **checkpoint_extra(gate)}, progress={
        "stage": stage, "iteration": iteration, "frames": frames, "updates": updates_before + updates,
    })
    write_resolved_config(cfg, out.parent, run_dir)
    click.echo(f"{out}: {updates} updates on {dataset.num_steps} replay steps")


def _run_dir(out: Path) -> Path:
    try:
        return run_dir_of_iteration_file(out)
    except ValueError:
        return out.parent


def _plain(cfg):
    from ..config import to_dict

    return to_dict(cfg)
