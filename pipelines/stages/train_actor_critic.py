"""`dreamer-pipeline train-actor-critic`: iteration k's actor and critic, in imagination.

Starts from iteration k's world-model checkpoint (which carries iteration k-1's actor, critic and
their optimisers) and makes `--updates` behaviour updates. Each update observes a replay batch
with the frozen world model and imagines H = 15 steps from every posterior state (B*T starts;
Hafner et al. 2021, Sec. 2.2). Used when `interleaved: false`, after `train-world-model`; with
`interleaved: true` (the default) `train-agent` trains the actor and critic on every batch itself
and this stage does not run.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..agent_io import load_agent, save_agent
from ..config import to_dict
from ..run_layout import metrics_file, tensorboard_dir
from ..tracking.metrics import MetricsLogger
from .actor_gate import behaviour_allowed, checkpoint_extra, stage_gate
from .stage_inputs import stage_inputs, training_settings
from .training import batch_seed, batches, open_replay, previous_partials, resumable_updates, setup, write_resolved_config
from .training_options import training_options

STAGE = "train_actor_critic"


@click.command("train-actor-critic", context_settings={"help_option_names": ["-h", "--help"]})
@training_options
@click.option("--world-model", "world_model_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Iteration k's world_model.pt (the whole agent after world-model training).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="actor_critic.pt to write.")
def train_actor_critic_command(config_path, game, seed, iteration, updates, updates_before, frames, shared, device,
                               replay, world_model_path, out):
    """Train iteration k's actor and critic in imagination.

    Imagination starts from the posterior states of batches drawn from REPLAY.

    Resumes mid-stage from OUT's partial checkpoint (actor_critic.partial.pt) after a kill.

    Example: dreamer-pipeline train-actor-critic --config config/debug.yaml --game pong --updates 12
    --world-model /tmp/world_model.pt --out /tmp/actor_critic.pt results/datasets/pong/random-debug.json
    """
    ctx = setup(config_path, device=device, game=game, seed=seed)
    cfg, run_dir = ctx.cfg, ctx.run_dir
    dataset = open_replay(cfg, replay, shared)
    agent, carried = load_agent(world_model_path, ctx.agent_config, ctx.device, dataset.action_space)
    for old in previous_partials(cfg, game, seed, out, iteration):
        old.unlink(missing_ok=True)
    inputs = stage_inputs(agent_config=agent.config, stores=dataset.stores, start=world_model_path,
                          **training_settings(cfg, seed=seed, iteration=iteration))
    with MetricsLogger(metrics_file(run_dir), tensorboard_dir(run_dir), stage=STAGE, iteration=iteration,
                       logging=cfg.logging, config=to_dict(cfg)) as logger:
        gate = stage_gate(cfg, game, carried=carried, logger=logger, frames=frames, updates=updates,
                          updates_before=updates_before)
        made = updates if behaviour_allowed(gate, agent, updates_before + updates) else 0  # 0: the gate is closed
        resumable_updates(
            stores=[str(store.path) for store in dataset.stores],
            stage=STAGE, out=out, updates=made, agent=agent, cfg=cfg, logger=logger, frames=frames,
            updates_before=updates_before, step=agent.train_behaviour, inputs=inputs,
            make_batches=lambda done: batches(dataset, cfg, batch_seed(seed, iteration, 4, done), ctx.device),
        )
    save_agent(out, agent, pipeline_config=to_dict(cfg), extra={"game": game, **checkpoint_extra(gate)}, progress={
        "stage": STAGE, "iteration": iteration, "frames": frames, "updates": updates_before + updates,
    })
    write_resolved_config(cfg, out.parent, run_dir)
    click.echo(f"{out}: {made} behaviour updates" + ("" if made else " (the actor gate is closed)"))
