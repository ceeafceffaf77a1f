"""`dreamer-pipeline prefill`: uniform random-policy experience for one game, a shared dataset.

The paper collects 50,000 steps with a uniform random policy before the first update (Hafner et
al. 2021). Here that experience is a shared store, `{paths.datasets}/{game}/{name}.zarr`, built
once and read by every seed and variant that names it. The store is not a Snakemake output: its
marker `{name}.json` is, written atomically once the store holds the requested steps. A killed
prefill resumes its store on the next run (see pipelines/acting/collector.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dreamer_pipeline.datasets.durable import atomic_write_text
from ..config import dump_config, load_config
from ..dataset_refs import write_store_marker
from ..limits import MAX_ENVS, MAX_STEPS

PREFILL_SEED = 0  # one shared dataset per (game, name): its seed does not depend on the run's


@click.command("prefill", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Pipeline configuration (YAML); its env section sets the environment protocol.")
@click.option("--game", required=True, help="Game or Control Suite task, snake_case (e.g. pong, walker_walk).")
@click.option("--store", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The store to create or resume, e.g. results/datasets/pong/random50k.zarr.")
@click.option("--marker", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Manifest written once the store is complete (the Snakemake output).")
@click.option("--steps", type=click.IntRange(1, MAX_STEPS), default=None,
              help="Agent steps to collect [default: prefill.steps].")
@click.option("--envs", type=click.IntRange(1, MAX_ENVS), default=None, help="Parallel environments [default: prefill.envs].")
@click.option("--seed", type=click.IntRange(min=0), default=PREFILL_SEED, show_default=True,
              help="Environment and policy seed.")
@click.option("--break-lock", is_flag=True, default=False,
              help="Take over the store's writer lock held by a writer on another host (make sure it is dead).")
def prefill_command(config_path, game, store, marker, steps, envs, seed, break_lock):
    """Collect the shared random-policy dataset of one game.

    Plays GAME with a uniform random policy into STORE until it holds --steps agent steps, then
    writes MARKER (a dataset manifest listing the store). A rerun resumes the store.

    Example: dreamer-pipeline prefill --config config/debug.yaml --game pong
    --store results/datasets/pong/random-debug.zarr --marker results/datasets/pong/random-debug.json
    """
    from ..acting.collector import collect
    from ..envs.registry import env_config_of

    cfg = load_config(config_path)
    steps = steps or cfg.prefill.steps
    envs = envs or cfg.prefill.envs
    env_config = env_config_of(cfg)
    result = collect(store, game, steps, num_envs=envs, seed=seed, env_config=env_config, policy=None,
                     break_lock=break_lock)
    if not result.complete:
        click.echo(f"prefill of {store} stopped by {result.stopped_by} at {result.agent_steps}/{steps} steps; "
                   "rerun to resume", err=True)
        sys.exit(1)
    settings = store.with_suffix(".config.yaml")  # the configuration that built the shared store
    if not settings.exists():
        atomic_write_text(settings, dump_config(cfg))
    write_store_marker(marker, store, name=store.stem)
    click.echo(f"{store}: {result.agent_steps} agent steps, {result.committed_episodes} episodes")
