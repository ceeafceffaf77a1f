"""`dreamer-pipeline collect`: play Atari with a policy and append whole episodes to one store.

Thin command-line layer over `pipelines.acting.collector.collect`; see that module for the alignment,
commit and resume rules.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path
from typing import Any, Mapping

import click

from ..limits import MAX_ENVS, MAX_STEPS, MAX_THREADS

SIGNAL_EXIT_CODES = {"SIGINT": 128 + signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM}


def env_config_from_file(path: str | Path):
    """Environment settings from YAML: either Atari `EnvConfig` fields at the top level, or a pipeline
    configuration (config/*.yaml), whose suite's settings with its `env` section apply."""
    from dreamer_pipeline.models.config_schema import ConfigError, override

    from ..config_yaml import load_yaml

    from ..envs.atari import EnvConfig

    path = Path(path)
    data = load_yaml(path.read_text(), str(path)) or {}  # no aliases, bounded nesting
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path} must hold a mapping of keys, got {type(data).__name__}")
    from ..config import PipelineConfig, load_config

    from ..envs.registry import env_config_of

    pipeline_fields = {f.name for f in dataclasses.fields(PipelineConfig)}
    try:
        if pipeline_fields & set(data):
            return env_config_of(load_config(path))  # a pipeline configuration
        return override(EnvConfig(), data, "")  # EnvConfig fields only
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def _link(folder: Path):
    from ..acting.online_link import OnlineLink

    return OnlineLink.at(folder)


def load_policy(spec: str, mode: str, device: str):
    """None for the random policy (the collector seeds it), else the agent of a checkpoint."""
    if spec == "random":
        return None
    path = Path(spec)
    if not path.is_file():
        raise click.BadParameter(f"{spec!r} is neither 'random' nor an existing checkpoint file", param_hint="--policy")
    try:
        from ..acting.agent_policy import load_agent_policy
    except ImportError as error:
        raise click.ClickException(
            f"cannot load the checkpoint policy {spec}: this installation has no "
            f"dreamer_pipeline.pipelines.acting.agent_policy.load_agent_policy ({error})"
        ) from None
    return load_agent_policy(path, mode=mode, device=device)


@click.command("collect", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--game", required=True, help="Game or task, snake_case: an Atari game (one of the paper's 55, "
              "pong, ms_pacman, ..., or any ROM ale-py ships), catch or catch-N, or a Control Suite "
              "task (walker_walk).")
@click.option("--store", "store", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The zarr store to create, or to resume if it exists (e.g. results/datasets/pong/random.zarr).")
@click.option("--steps", required=True, type=click.IntRange(min=1, max=MAX_STEPS),
              help="Target number of agent steps (actions; one = 4 frames on Atari) in the store, counting "
              "steps already there. Reached exactly when the steps still to take are a multiple of --envs.")
@click.option("--envs", default=1, show_default=True, type=click.IntRange(min=1, max=MAX_ENVS),
              help="Environments stepped together (ale-py's C++ vector env).")
@click.option("--threads", default=None, type=click.IntRange(min=1, max=MAX_THREADS),
              help="Emulator threads [default: min(envs, CPU cores)].")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seed of the environments and the random policy. Collectors that run in parallel need "
              "distinct seeds (and distinct stores).")
@click.option("--policy", "policy_spec", default="random", show_default=True,
              help="'random' (uniform, the paper's prefill) or the path of an agent checkpoint.")
@click.option("--policy-mode", type=click.Choice(["sample", "greedy"]), default="sample", show_default=True,
              help="For a checkpoint: sample from the actor (exploration) or take its mode.")
@click.option("--follow", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Online stage: act with the actor a learner publishes in this folder, at the run's replay "
              "ratio (pipelines/acting/online_link.py). Replaces --policy.")
@click.option("--follow-shard", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --follow: this collector's index in the learner's plan.")
@click.option("--device", default="cpu", show_default=True,
              help="Torch device for a checkpoint policy: cpu, cuda, cuda:N, or auto (the GPU if there is one). "
              "On the CPU, torch uses at most --threads threads.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML with environment settings: EnvConfig fields at the top level, or a pipeline "
              "configuration whose `env` section applies. The options below override it.")
@click.option("--sticky", type=click.FloatRange(0.0, 1.0, max_open=True), default=None,
              help="Sticky-action probability [paper: 0.25].")
@click.option("--full-action-space/--minimal-action-space", default=None,
              help="All 18 actions, or the game's minimal set [paper: minimal].")
@click.option("--max-episode-steps", type=click.IntRange(min=1), default=None,
              help="Time limit in agent steps [paper: 27000 = 108,000 frames].")
@click.option("--noop-max", type=click.IntRange(min=0), default=None, help="Random no-op frames on reset [paper: 30].")
@click.option("--chunk-steps", type=click.IntRange(min=1), default=None,
              help="Steps per zarr chunk for a new store [default: the store's DEFAULT_CHUNK_STEPS].")
@click.option("--commit-every", "commit_steps", type=click.IntRange(min=1), default=None,
              help="Batch commits: commit finished episodes once this many of their steps wait (or every "
              "10 s) [default: 1, every episode as it finishes]. A SIGKILL loses at most these plus the "
              "unfinished episodes.")
@click.option("--marker", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write this dataset manifest (listing the store) once the store is complete "
              "(used by the Snakemake rules).")
@click.option("--break-lock", is_flag=True, default=False,
              help="Take over the store's writer lock held by a writer on another host (make sure it is dead). "
              "A dead writer on this host is taken over without it.")
@click.option("--set-aside-superseded", is_flag=True, default=False,
              help="A store at --store made with other settings (another policy, seed or environment) is renamed "
              "to .NAME.superseded-TIME beside it and collected anew, instead of refused (the workflow's collect "
              "rule: a retrained upstream agent supersedes the store).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def collect_command(game, store, steps, envs, threads, seed, policy_spec, policy_mode, follow, follow_shard, device,
                    config_path, sticky, full_action_space, max_episode_steps, noop_max, chunk_steps, commit_steps,
                    marker, break_lock, set_aside_superseded, progress):
    """Play GAME with a policy and store whole episodes in a zarr experience store.

    Runs until the store holds at least --steps agent steps (actions; each episode's reset step is
    stored besides them). Every step taken is stored: the episodes still running at the target are
    committed as truncated (is_last without is_terminal, as at a time limit). Rerunning the same
    command on an existing store resumes it (a SIGKILLed run loses at most its unfinished episodes);
    the environment settings, policy and seed must then be the same. SIGINT (Ctrl-C) or SIGTERM
    stop cleanly after the current step, commit the episodes still running as truncated, and exit
    with 130 / 143.

    Defaults are the paper's Atari protocol: sticky actions 0.25, action repeat 4 with a max-pool
    over the last two frames, up to 30 no-op starts, 64x64 grayscale images, a 27,000-step time
    limit, raw rewards, and no episode end on a lost life.

    \b
    Examples:
      dreamer-pipeline collect --game pong --store results/datasets/pong/random50k.zarr --steps 50000 --envs 4
      dreamer-pipeline collect --game breakout --store /tmp/agent.zarr --steps 10000 \\
          --policy results/runs/breakout/default/seed0/iter0001/actor_critic.pt --seed 7
    """
    from dreamer_pipeline.datasets.store import DEFAULT_CHUNK_STEPS
    from dreamer_pipeline.models.config_schema import ConfigError

    from ..envs.atari import EnvConfig
    from ..acting.collector import DEFAULT_COMMIT_STEPS, collect

    # Errors (a bad store, configuration, game or policy; another writer) are mapped to one line by
    # the command group (pipelines/cli.py).
    env_config = env_config_from_file(config_path) if config_path else EnvConfig()
    changes: dict[str, Any] = {
        "sticky_action_probability": sticky,
        "full_action_space": full_action_space,
        "max_episode_steps": max_episode_steps,
        "noop_max": noop_max,
    }
    try:
        env_config = dataclasses.replace(env_config, **{k: v for k, v in changes.items() if v is not None})
    except TypeError:  # an Atari option given for another suite
        given = sorted(k for k, v in changes.items() if v is not None)
        raise ConfigError(f"environment settings: {type(env_config).__name__} has no {', '.join(given)}") from None
    except ValueError as error:
        raise ConfigError(f"environment settings: {error}") from None
    from ..agent_io import cap_torch_threads
    from ..machine import resolve_device

    device = resolve_device(device, "--device")
    if follow is not None or policy_spec != "random":
        cap_torch_threads(device, threads or min(envs, os.cpu_count() or 1))
    if follow is not None:
        from ..acting.online_policy import following_policy

        if policy_spec != "random":
            raise click.UsageError("give --policy or --follow, not both")
        policy = following_policy(_link(follow), follow_shard, store, mode=policy_mode, device=device)
    else:
        policy = load_policy(policy_spec, policy_mode, device)
    result = collect(
        store, game, steps, num_envs=envs, seed=seed, env_config=env_config, policy=policy,
        chunk_steps=chunk_steps or DEFAULT_CHUNK_STEPS, num_threads=threads, progress=progress,
        commit_steps=commit_steps or DEFAULT_COMMIT_STEPS, break_lock=break_lock,
        set_aside_superseded=set_aside_superseded,
    )

    if result.stopped_by:
        click.echo(
            f"{store}: stopped by {result.stopped_by} with {result.agent_steps}/{steps} agent steps in "
            f"{result.committed_episodes} episodes committed (the {result.cut_episodes} still running committed as "
            "truncated). Rerun the same command to resume.", err=True,
        )
        sys.exit(SIGNAL_EXIT_CODES.get(result.stopped_by, 1))
    if follow is not None:
        policy.report_finished(result.agent_steps)  # the exact count, for the learner and the run's record
    if marker is not None:
        from ..dataset_refs import write_store_marker

        write_store_marker(marker, store, name=Path(store).stem)
    rate = result.env_steps / result.loop_seconds if result.loop_seconds and result.env_steps else 0.0
    click.echo(
        f"{store}: {result.agent_steps} agent steps in {result.committed_episodes} episodes "
        f"(+{result.env_steps} agent steps, +{result.new_episodes} episodes this run, {rate:.0f} agent steps/s; "
        f"{result.cut_episodes} episodes still running at the target committed as truncated)"
    )
