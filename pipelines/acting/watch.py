"""`dreamer-pipeline watch`: play any agent checkpoint for N episodes and write one MP4.

The environment is the run's (the configuration stored in the checkpoint, or `--config`), with
evaluation's settings: sticky actions on, `evaluate.max_steps` as time limit. The video shows the
colour screen beside the agent's 64x64 view, with the return and frame count
(`pipelines/acting/episode_video.py`).
"""

from __future__ import annotations

from pathlib import Path

import click


class WatchError(ValueError):
    """What `watch` cannot play; printed as one line, `error: ...`, like every project error (cli.py)."""


def _stored_config(payload: dict):
    """The pipeline configuration a training stage stored in the checkpoint, or None."""
    from dreamer_pipeline.models.config_schema import ConfigError

    from ..config import config_from_mapping

    stored = payload.get("extra", {}).get("pipeline_config")
    if not isinstance(stored, dict):
        return None
    try:
        return config_from_mapping(stored)
    except ConfigError:
        return None


@click.command("watch", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="MP4 to write [default: CHECKPOINT's name with .mp4, beside it].")
@click.option("--episodes", default=1, show_default=True, type=click.IntRange(min=1), help="Episodes to play.")
@click.option("--game", default=None, help="Game [default: the checkpoint's, when its configuration names one].")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Pipeline configuration for the environment [default: the one stored in the checkpoint].")
@click.option("--mode", type=click.Choice(["greedy", "sample"]), default="greedy", show_default=True,
              help="greedy = the actor's most likely action (evaluation); sample = as when collecting.")
@click.option("--seed", default=0, show_default=True, type=int, help="Environment seed of the first episode.")
@click.option("--device", default="cpu", show_default=True, help="Torch device for the actor.")
def watch_command(checkpoint, out, episodes, game, config_path, mode, seed, device):
    """Watch a saved agent play: N episodes as one MP4 video.

    Works with any agent checkpoint: a run's agent.pt (interleaved; world_model.pt in runs made before
    it was renamed) or actor_critic.pt (staged).

    Example: dreamer-pipeline watch results/runs/pong/default/seed0/iter0010/agent.pt --episodes 3
    """
    from ..agent_io import read_payload
    from .agent_policy import load_agent_policy
    from ..config import PipelineConfig, load_config
    from .episode_video import record_episodes
    from ..stages.evaluate import evaluation_env_config

    try:
        payload = read_payload(checkpoint)
        cfg = load_config(config_path) if config_path else (_stored_config(payload) or PipelineConfig())
        if game is None:
            if len(cfg.games) != 1:
                raise WatchError(f"{checkpoint}: its configuration names games {cfg.games}; choose one with --game")
            game = cfg.games[0]
        policy = load_agent_policy(checkpoint, mode=mode, device=device)
        out = out or checkpoint.with_suffix(".mp4")
        progress = payload.get("extra", {}).get("progress", {})
        title = f"{game} · {checkpoint.parent.name} · {progress.get('frames', 0) / 1e6:g}M frames · {mode}"
        video = record_episodes(game, evaluation_env_config(cfg), policy, out, episodes=episodes, seed=seed, title=title)
    except ValueError as error:
        if type(error).__module__.startswith("dreamer_pipeline"):
            raise  # the project's errors (checkpoint, video, configuration) are one line already (cli.py)
        raise WatchError(" ".join(str(error).split())) from None
    returns = ", ".join(f"{r:g}" for r in video.returns)
    click.echo(f"wrote {out}: {episodes} episode(s), returns {returns}, {video.video_frames} video frames "
               f"in {video.seconds:.1f} s")
