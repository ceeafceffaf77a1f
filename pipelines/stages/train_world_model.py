"""`dreamer-pipeline train-world-model`: iteration k's world model alone, for staged training.

Staged training (`interleaved: false`) splits an iteration in two stages: this one trains only the
world model on the run's replay and writes `world_model.pt` (the whole agent, its actor and critic
as iteration k-1 left them); `train-actor-critic` then trains the actor and critic in imagination
on it and writes `actor_critic.pt`, iteration k's agent. The default, interleaved path trains all
three on every batch in one stage: `train-agent` (pipelines/stages/train_agent.py), which this
command shares its code with.

Before `train-agent` existed, this command also ran the interleaved loop (`--interleaved`); that
hidden flag still works and makes it the same as `train-agent`.
"""

from __future__ import annotations

from pathlib import Path

import click

from .train_agent import iteration_options, train_on_replay


@click.command("train-world-model", context_settings={"help_option_names": ["-h", "--help"]})
@iteration_options
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="world_model.pt to write.")
@click.option("--interleaved/--world-model-only", default=False, hidden=True,
              help="Compatibility: --interleaved is `train-agent`.")
def train_world_model_command(config_path, game, seed, iteration, updates, updates_before, frames, shared, device,
                              replay, videos, resume_from, init_world_model, out, interleaved):
    """Train iteration k's world model alone on the replay (staged training).

    REPLAY are the run's stores or their markers, oldest first.

    Resumes mid-stage from OUT's partial checkpoint (world_model.partial.pt) after a kill.

    Example: dreamer-pipeline train-world-model --config config/debug.yaml --game pong --updates 12
    --out /tmp/world_model.pt results/datasets/pong/random-debug.json
    """
    train_on_replay(config_path=config_path, game=game, seed=seed, iteration=iteration, updates=updates,
                    updates_before=updates_before, frames=frames, shared=shared, device=device, replay=replay,
                    out=out, videos=videos, resume_from=resume_from, init_world_model=init_world_model,
                    interleaved=interleaved)
