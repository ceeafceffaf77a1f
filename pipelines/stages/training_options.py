"""The command-line options every training stage on a run's replay shares (train-agent,
train-world-model, train-actor-critic, train-online)."""

from __future__ import annotations

import click


def training_options(function):
    """Options shared by the training stages of an iteration."""
    options = [
        click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
                     help="Pipeline configuration (YAML): train, agent and replay settings; paths.results and "
                          "variant place the run's folder (metrics.jsonl, tensorboard/)."),
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
