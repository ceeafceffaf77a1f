"""`dreamer-pipeline pretrain-world-model`: a world model learnt without rewards, to start runs from.

The paper finds that stopping the reward gradients into the representation leaves Atari scores
about unchanged (Hafner et al. 2021, Sec. 4, ablations): the representation learns from images
(and discounts) alone. This stage makes use of that: it trains a world model on named datasets
with no reward learning at all,

- `pretrain.reward_free: true` (default): rewards are removed from every batch and the agent is
  built with `ablation.reward: absent`, so there is no reward head (datasets may be reward-free);
- `pretrain.reward_free: false`: rewards stay in the data, but `ablation.reward_grad: false`
  stops their gradients into the representation.

Runs with `pretrain.initialise_runs: true` start iteration 0 from it: every world-model weight is
copied except the reward head; the reward head, actor and critic learn in the loop.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..agent_io import build_agent, save_agent
from ..config import PretrainConfig, to_dict
from ..run_layout import metrics_file, tensorboard_dir
from ..tracking.metrics import MetricsLogger
from .stage_inputs import stage_inputs, training_settings
from .training import (
    batch_seed, batches, resumable_updates, setup, update_frames, write_resolved_config, write_videos,
)

STAGE = "pretrain_world_model"


def reward_free_agent_config(agent_config, reward_free: bool):
    """The agent configuration for pretraining: no reward head, or no reward gradients."""
    from dreamer_pipeline.models.config_schema import override

    change = {"reward": "absent"} if reward_free else {"reward_grad": False}
    return override(agent_config, {"ablation": change}, "agent")


@click.command("pretrain-world-model", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Pipeline configuration (YAML): the pretrain, train and agent sections apply.")
@click.option("--game", required=True, help="Game or Control Suite task, snake_case (recorded in metrics).")
@click.option("--updates", type=click.IntRange(min=1), default=None, help="World-model updates [default: pretrain.updates].")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="world_model.pt to write, e.g. results/pretrained/pong/reward-free/world_model.pt.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the initial weights and batches.")
@click.option("--device", default=None, help="Torch device [default: train.device].")
@click.argument("datasets", nargs=-1, required=True, type=click.Path(exists=True))
def pretrain_world_model_command(config_path, game, updates, out, seed, device, datasets):
    """Pretrain a world model without reward learning (reward-free).

    DATASETS are stores, directories of stores or manifests; rewards in them are not learnt.

    Metrics go to OUT's folder (metrics.jsonl, tensorboard/), with open-loop videos in videos/.
    Resumes mid-stage from world_model.partial.pt after a kill.

    Example: dreamer-pipeline pretrain-world-model --config config/debug.yaml --game pong
    --out results/pretrained/pong/reward-free/world_model.pt results/datasets/pong/random-debug.json
    """
    from dreamer_pipeline.datasets.dataset import open_dataset

    folder = out.parent  # a pretraining folder is no run's: its metrics, videos and caches stay beside OUT
    ctx = setup(config_path, device=device, run_dir=folder)
    cfg = ctx.cfg
    section = cfg.pretrain or PretrainConfig(datasets=list(datasets))
    updates = updates or section.updates
    dataset = open_dataset(*datasets)
    if not section.reward_free and not dataset.has_reward:
        raise click.ClickException(f"{dataset} has no rewards; set pretrain.reward_free: true to pretrain on it")
    agent_config = reward_free_agent_config(ctx.agent_config, section.reward_free)
    agent = build_agent(agent_config, dataset.action_space, ctx.device, batch_seed(seed, 7), dataset.image_shape)
    inputs = stage_inputs(agent_config=agent.config, stores=dataset.stores,
                          **training_settings(cfg, seed=seed, reward_free=section.reward_free))
    with MetricsLogger(metrics_file(folder), tensorboard_dir(folder), stage=STAGE, iteration=0,
                       logging=cfg.logging, config=to_dict(cfg)) as logger:
        logger.log({"replay/steps": dataset.num_steps, "replay/episodes": dataset.num_episodes}, frames=0, updates=0)
        resumable_updates(
            stores=[str(store.path) for store in dataset.stores],
            stage=STAGE, out=out, updates=updates, agent=agent, cfg=cfg, logger=logger, frames=0, updates_before=0,
            step=agent.train_world_model, inputs=inputs,
            make_batches=lambda done: batches(dataset, cfg, batch_seed(seed, 8, done), ctx.device,
                                              drop_reward=section.reward_free),
        )
        write_videos(agent, dataset, cfg, folder / "videos", logger,
                     seed=batch_seed(seed, 9), step=update_frames(cfg, 0, updates, updates, 0))
    save_agent(out, agent, pipeline_config=to_dict(cfg), extra={"game": game}, progress={
        "stage": STAGE, "iteration": 0, "frames": 0, "updates": updates, "reward_free": section.reward_free,
        "datasets": [str(d) for d in datasets],
    })
    write_resolved_config(cfg, folder)
    click.echo(f"{out}: {updates} reward-free world-model updates on {dataset.num_steps} steps")

