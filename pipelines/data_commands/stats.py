"""`dreamer-pipeline stats`: statistics of a dataset (stores, directories, manifests) through dask."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("stats", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("datasets", nargs=-1, required=True, metavar="DATASET...", type=click.Path(path_type=Path))
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Where dask computes: 'threads' (default, this machine), 'synchronous', 'processes', or the "
    "address of a dask.distributed scheduler, e.g. tcp://10.0.0.5:8786 (its workers must see the same files).",
)
@click.option(
    "--json",
    "json_path",
    default=None,
    metavar="PATH",
    help="Also write the statistics as JSON to PATH ('-' prints JSON instead of the table).",
)
@click.option("--recent-steps", type=int, default=None, metavar="K",
              help="Only the most recent K steps (whole episodes), as the training replay sees them.")
@click.option("--block-steps", type=int, default=2048, show_default=True, help="Steps per dask task.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a dask progress bar.")
def stats_command(datasets, scheduler, json_path, recent_steps, block_steps, progress) -> None:
    """Statistics of datasets: episodes, returns, actions, rewards, pixels.

    DATASET is any number of stores, directories of stores or manifests (combined).

    Prints episode count, episode length and return distributions (min, percentiles, mean, max),
    how episodes ended (terminal or truncated), the action histogram and reward statistics over
    transitions (each episode's first step holds a placeholder action 0 and reward 0, so it is left
    out), pixel mean and std, and the steps of each store. Reward-free data reports no rewards.

    \b
    Examples:
      dreamer-pipeline stats results/datasets/pong/random50k.zarr
      dreamer-pipeline stats results/runs/pong/default/seed0 \\
          --recent-steps 2000000 --json stats.json
      dreamer-pipeline stats data.yaml --scheduler tcp://scheduler:8786 --json -
    """
    from dreamer_pipeline.datasets.dataset import Replay, open_dataset
    from dreamer_pipeline.datasets.stats import SchedulerError, dataset_stats, format_stats

    from dreamer_pipeline.datasets.durable import atomic_write_text

    data = Replay(list(datasets), recent_steps) if recent_steps is not None else open_dataset(*datasets)
    try:
        stats = dataset_stats(data, scheduler=scheduler, block_steps=block_steps,
                              progress=progress and json_path != "-")
    except OSError as error:  # e.g. an unreachable scheduler address (no path: say which address)
        if error.filename is not None:
            raise
        raise SchedulerError(f"dask scheduler {scheduler!r}: {error}") from None
    text = json.dumps(stats, indent=2)
    if json_path == "-":
        click.echo(text)
        return
    click.echo(format_stats(stats))
    if json_path:
        atomic_write_text(json_path, text + "\n")  # never through a link planted at PATH
        click.echo(f"\nwrote {json_path}")
