"""`dreamer-pipeline evaluate`: greedy episodes with iteration k's agent, sticky actions on.

The paper evaluates the actor's most likely action (its mode) with sticky actions kept on
(Hafner et al. 2021, Sec. 4, following Machado et al. 2018). With `--video` one more greedy
episode is recorded as MP4 (`episode_video.py`); its return goes to `info.video`, not into the
score. Episodes are split over `--envs`
parallel environments with a fixed quota each, so short episodes are not over-represented. The
result is `eval.json` (schema: docs/scores.md), written atomically: a killed evaluation leaves
no file, and Snakemake reruns it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from pathlib import Path

import click
import numpy as np
from tqdm.auto import tqdm

from dreamer_pipeline.datasets.durable import atomic_write_json, file_sha256
from ..config import load_config, to_dict
from ..tracking.metrics import MetricsLogger
from ..run_layout import RunLayout, metrics_file, tensorboard_dir

EVAL_FORMAT_VERSION = 1


def run_episodes(env, policy, episodes: int, seed: int, progress: bool = True) -> tuple[list[float], list[int]]:
    """Play `episodes` whole episodes; env row i plays its quota of episodes one after another."""
    n = env.num_envs
    quota = np.array([episodes // n + (1 if i < episodes % n else 0) for i in range(n)])
    returns: list[list[float]] = [[] for _ in range(n)]
    lengths: list[list[int]] = [[] for _ in range(n)]
    image = env.reset(np.asarray([seed + i for i in range(n)]))
    is_first = np.ones(n, bool)
    state = policy.initial_state(n)
    running_return = np.zeros(n, np.float64)
    running_length = np.zeros(n, np.int64)
    bar = tqdm(total=episodes, desc="evaluate", unit="episode", disable=not progress)
    while any(len(returns[i]) < quota[i] for i in range(n)):
        action, state = policy.act(image, is_first, state)
        step = env.step(np.asarray(action))
        running_return += step.reward
        running_length += 1
        done = step.terminated | step.truncated
        for i in np.flatnonzero(done):
            if len(returns[i]) < quota[i]:
                returns[i].append(float(running_return[i]))
                lengths[i].append(int(running_length[i]))
                bar.update(1)
            running_return[i] = 0.0
            running_length[i] = 0
        image, is_first = step.image, done
    bar.close()
    flat_returns = [r for row in returns for r in row]
    flat_lengths = [length for row in lengths for length in row]
    return flat_returns, flat_lengths


def evaluation_env_config(cfg):
    """The run's environment settings; `evaluate.max_steps` (if set) shortens the time limit."""
    from ..envs.registry import env_config_of

    env_config = env_config_of(cfg)
    if cfg.evaluate.max_steps:
        env_config = dataclasses.replace(
            env_config, max_episode_steps=min(env_config.max_episode_steps, cfg.evaluate.max_steps)
        )
    return env_config


@click.command("evaluate", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Pipeline configuration (YAML); its env and evaluate sections apply.")
@click.option("--agent", "agent_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The agent checkpoint to evaluate (iteration k's agent.pt when interleaved, actor_critic.pt when staged).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="eval.json to write.")
@click.option("--game", required=True, help="Game or Control Suite task, snake_case (e.g. pong, walker_walk).")
@click.option("--variant", default="default", show_default=True, help="Run variant, recorded in eval.json.")
@click.option("--seed", default=0, show_default=True, type=int, help="Run seed, recorded in eval.json.")
@click.option("--iteration", default=0, show_default=True, type=int, help="Iteration, recorded in eval.json.")
@click.option("--frames", default=0, show_default=True, type=int, help="Environment frames of training so far.")
@click.option("--env-seed", default=0, show_default=True, type=int, help="Seed of the evaluation environments.")
@click.option("--episodes", type=int, default=None, help="Episodes to play [default: evaluate.episodes].")
@click.option("--mode", type=click.Choice(["greedy", "sample"]), default="greedy", show_default=True,
              help="greedy = the actor's mode (the paper's evaluation).")
@click.option("--device", default=None,
              help="Torch device for the actor: cpu, cuda, cuda:N or auto [default: evaluate.device].")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for the emulators and, on the CPU, torch [default: one per environment].")
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also play one more greedy episode and record it here as MP4 (pipelines/acting/episode_video.py).")
def evaluate_command(config_path, agent_path, out, game, variant, seed, iteration, frames, env_seed, episodes, mode, device,
                     threads, video):
    """Evaluate an agent with greedy episodes and write eval.json.

    Sticky actions stay on, as in the paper. Metrics (eval/return_mean, ...) are appended to the
    run's metrics.jsonl when OUT is the run's own eval.json (the configuration's paths.results with
    --game, --variant, --seed and --iteration: pipelines/run_layout.py).

    Example: dreamer-pipeline evaluate --config config/debug.yaml --game pong
    --agent results/runs/pong/debug/seed0/iter0001/actor_critic.pt --out /tmp/eval.json
    """
    from ..acting.agent_policy import load_agent_policy
    from ..acting.policy import action_space_mismatch, action_space_of
    from ..envs.registry import vector_env

    from ..agent_io import cap_torch_threads
    from ..machine import resolve_device

    cfg = load_config(config_path)
    episodes = episodes or cfg.evaluate.episodes
    env_config = evaluation_env_config(cfg)
    device = resolve_device(device or cfg.evaluate.device, "--device" if device else "evaluate.device")
    envs = max(1, min(cfg.evaluate.envs, episodes))  # all episodes at once by default: one forward pass per step
    cap_torch_threads(device, threads or envs)
    policy = load_agent_policy(agent_path, mode=mode, device=device)
    with vector_env(game, envs, env_config, num_threads=threads) as env:
        mismatch = action_space_mismatch(action_space_of(policy), env.action_space)
        if mismatch:
            raise click.ClickException(f"{agent_path} cannot play {game}: {mismatch}")
        check_trained_game(agent_path, env.game, cfg.suite)
        started = time.perf_counter()
        returns, lengths = run_episodes(env, policy, episodes, env_seed)
        evaluate_seconds = time.perf_counter() - started
        canonical_game = env.game
    recorded = None
    if video is not None:
        from ..acting.episode_video import record_episodes

        recorded = record_episodes(game, env_config, policy, video, episodes=1, seed=env_seed + envs,
                                   title=f"{canonical_game} · {variant} · seed {seed} · iteration {iteration}")
    result = {
        "format_version": EVAL_FORMAT_VERSION,
        "game": canonical_game,
        "variant": variant,
        "seed": int(seed),
        "iteration": int(iteration),
        "frames": int(frames),
        "agent_steps": int(frames // env_config.action_repeat),
        "returns": returns,
        "lengths": lengths,
        "episodes": len(returns),
        "mean_return": float(np.mean(returns)),
        "policy": mode,
        "checkpoint": str(agent_path),
        "checkpoint_sha256": file_sha256(agent_path),
        **_environment_version(cfg.suite),
        "env": env_config.to_dict(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    }
    timing = {"evaluate_s": round(evaluate_seconds, 3)}
    if recorded is not None:
        timing["video_s"] = round(recorded.seconds, 3)
        result["info"] = {"video": {"path": Path(video).name, "return": recorded.returns[0],
                                    "length": recorded.lengths[0], "seed": env_seed + envs}, "time": timing}
    layout = RunLayout.from_config(cfg)
    if Path(out).resolve() == Path(layout.eval_json(game, variant, seed, iteration)).resolve():
        run_dir = layout.run_dir(game, variant, seed)  # OUT is the run's own eval.json: log into the run
        with MetricsLogger(metrics_file(run_dir), tensorboard_dir(run_dir), stage="evaluate", iteration=iteration,
                           logging=cfg.logging, config=to_dict(cfg)) as log:
            log.log(
                {
                    "eval/return_mean": result["mean_return"],
                    "eval/return_std": float(np.std(returns)),
                    "eval/return_max": float(np.max(returns)),
                    "eval/length_mean": float(np.mean(lengths)),
                    "eval/episodes": len(returns),
                    "time/evaluate_s": timing["evaluate_s"],
                    **({"eval/video_return": recorded.returns[0], "time/video_s": timing["video_s"]} if recorded else {}),
                },
                frames=frames,
                updates=_updates_of(agent_path),
            )
            if recorded is not None:
                log.add_video_file("video/eval_episode", video, frames=frames)
        from .training import write_resolved_config

        write_resolved_config(cfg, Path(out).parent)
    atomic_write_json(out, result)
    click.echo(f"{game} iteration {iteration}: mean return {result['mean_return']:.2f} over {len(returns)} episode(s)")


def check_trained_game(agent_path, game: str, suite: str) -> None:
    """Refuse a checkpoint trained on another game: with the same action count it would play, and
    its score be reported under the wrong game's name. Checkpoints written before they recorded
    their game (no `extra.game`) are taken as they are."""
    from ..agent_io import read_payload
    from ..envs.registry import canonical_game

    trained = read_payload(agent_path).get("extra", {}).get("game")
    if trained is None:
        return
    try:
        trained = canonical_game(str(trained), suite)
    except ValueError:
        pass  # a game this suite does not know: it differs from `game`, which it knows
    if trained != game:
        raise click.ClickException(f"{agent_path} was trained on {trained!r}, not {game!r}: evaluate it on "
                                   f"{trained!r}, or give the checkpoint of a {game!r} run")


def _environment_version(suite: str) -> dict[str, str]:
    if suite != "atari":
        return {}
    import ale_py

    return {"ale_py_version": str(ale_py.__version__)}


def _updates_of(agent_path) -> int:
    """The run's update count when the checkpoint was written (0 if it does not say)."""
    from ..agent_io import read_payload

    return int(read_payload(agent_path).get("extra", {}).get("progress", {}).get("updates", 0))
