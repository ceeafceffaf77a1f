"""Import speed (steps/s) of import-dqn-replay and import-minari-atari, and the cost of the
evaluation video.

Data are real Pong frames, so compression behaves as on the real datasets:
- DQN replay: one checkpoint file set of `--dqn-entries` entries in the exact format (84x84 frames
  from ale-py's vector env with the DQN protocol, random actions, Dopamine's padding, gzip level 9
  as Dopamine wrote it);
- Minari Atari: a dataset written by minari's DataCollector around ALE/Pong-v5 (210x160 RGB), JPEG
  (Minari's default) and raw;
- video: per agent step, the evaluation's cost (policy + environment) against the video's (policy,
  two emulators, frame composition, H.264 encoding), for the `small` and `atari` agents on CPU;
  the cost per evaluation is one video episode against `evaluate.episodes` (10) scored ones.

    python benchmarks/bench_imports.py                 # prints a table, writes benchmarks/bench_imports.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def dqn_files(folder: Path, entries: int, seed: int = 0) -> None:
    from dreamer_pipeline.pipelines.envs.atari import EnvConfig, make_vector_env

    env = make_vector_env("pong", 1, EnvConfig(noop_max=0), num_threads=1, screen=(84, 84))
    rng = np.random.default_rng(seed)
    observation = np.zeros((entries, 84, 84), np.uint8)
    action = np.zeros(entries, np.int32)
    reward = np.zeros(entries, np.float32)
    terminal = np.zeros(entries, np.uint8)
    obs, _ = env.reset(seed=np.array([seed]))
    i, start = 0, True
    while i < entries:
        if start:
            i += 3  # Dopamine's zero padding
            start = False
            continue
        a = int(rng.integers(6))
        nxt, r, term, trunc, _ = env.step(np.array([a]))
        observation[i], action[i], reward[i] = obs[0, 0], a, np.clip(r[0], -1, 1)
        terminal[i] = bool(term[0] or trunc[0])
        start = bool(terminal[i])
        obs = nxt
        i += 1
    env.close()
    arrays = {"$store$_observation": observation, "$store$_action": action, "$store$_reward": reward,
              "$store$_terminal": terminal, "add_count": np.array(entries - 1)}
    for name, array in arrays.items():
        with gzip.open(folder / f"{name}_ckpt.0.gz", "wb") as file:
            np.save(file, array, allow_pickle=False)


def bench_dqn(entries: int, repeats: int) -> dict:
    from dreamer_pipeline.datasets.interop.dqn_replay import import_dqn_replay
    from dreamer_pipeline.pipelines.data_commands.dqn_replay_command import dqn_replay_attrs

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "Pong/1/replay_logs"
        folder.mkdir(parents=True)
        dqn_files(folder, entries)
        size = (folder / "$store$_observation_ckpt.0.gz").stat().st_size
        attrs = dqn_replay_attrs("pong", folder)
        times, report = [], None
        for r in range(repeats):
            started = time.perf_counter()
            report = import_dqn_replay(folder, Path(tmp) / f"s{r}.zarr", attrs, progress=False)
            times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    return {"entries": entries, "steps": report.steps, "episodes": report.episodes, "gz_bytes_per_frame": size / entries,
            "seconds": seconds, "entries_per_s": entries / seconds, "steps_per_s": report.steps / seconds}


def bench_minari(steps: int, repeats: int) -> dict:
    import ale_py
    import gymnasium as gym
    from minari import DataCollector

    from dreamer_pipeline.datasets.frames import to_store_frames
    from dreamer_pipeline.datasets.interop.hdf5 import import_minari, read_minari_metadata
    from dreamer_pipeline.pipelines.data_commands.minari_env import ale_identity, minari_protocol

    gym.register_envs(ale_py)
    out = {}
    for jpeg in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["MINARI_DATASETS_PATH"] = tmp
            env = DataCollector(gym.make("ALE/Pong-v5", repeat_action_probability=0, max_episode_steps=1000),
                                jpeg_encoding=jpeg)
            done, collected, seed = True, 0, 0
            while collected < steps:
                if done:
                    env.reset(seed=seed)
                    seed += 1
                _, _, term, trunc, _ = env.step(env.action_space.sample())
                done = term or trunc
                collected += 1
            while not done:
                _, _, term, trunc, _ = env.step(env.action_space.sample())
                done = term or trunc
            env.create_dataset(dataset_id="atari/pong/bench-v0", algorithm_name="random", author="bench",
                               author_email="bench", description="benchmark", code_permalink="-")
            source = Path(tmp) / "atari/pong/bench-v0"
            identity = ale_identity(read_minari_metadata(source))
            attrs = {"game": identity["game"], "env": minari_protocol(identity["env_spec"])}
            times, total = [], 0
            for r in range(repeats):
                started = time.perf_counter()
                [path] = import_minari(source, Path(tmp) / f"s{r}.zarr", action_set=identity["action_set"], attrs=attrs,
                                       convert=to_store_frames, progress=False)
                times.append(time.perf_counter() - started)
            from dreamer_pipeline.datasets.store import ExperienceStore

            total = ExperienceStore(path).num_steps
        seconds = statistics.median(times)
        out["jpeg" if jpeg else "raw"] = {"steps": total, "seconds": seconds, "steps_per_s": total / seconds}
    return out


def bench_video(steps: int, preset: str) -> dict:
    import dataclasses

    import torch

    from dreamer_pipeline.models.config import preset as agent_preset
    from dreamer_pipeline.pipelines.agent_io import build_agent
    from dreamer_pipeline.pipelines.acting.agent_policy import AgentPolicy
    from dreamer_pipeline.pipelines.envs.atari import EnvConfig, VectorAtari
    from dreamer_pipeline.pipelines.acting.episode_video import record_episodes
    from dreamer_pipeline.pipelines.stages.evaluate import run_episodes

    torch.set_num_threads(1)
    config = dataclasses.replace(EnvConfig(), max_episode_steps=steps)
    policy = AgentPolicy(build_agent(agent_preset(preset), 6, "cpu", 0), mode="greedy")
    with VectorAtari("pong", 1, config) as env:
        started = time.perf_counter()
        run_episodes(env, policy, 1, 0, progress=False)
        evaluate = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        video = record_episodes("pong", config, policy, Path(tmp) / "e.mp4", seed=0, title="bench")
        size = (Path(tmp) / "e.mp4").stat().st_size
    per_step_eval, per_step_video = evaluate / steps, video.seconds / steps
    return {"preset": preset, "steps": steps, "evaluate_ms_per_step": 1000 * per_step_eval,
            "video_ms_per_step": 1000 * per_step_video, "video_overhead_ms_per_step": 1000 * (per_step_video - per_step_eval),
            "mp4_kib_per_1000_steps": size / 1024 * 1000 / steps,
            "video_cost_per_evaluation_of_10_episodes": per_step_video / (10 * per_step_eval)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dqn-entries", type=int, default=50_000)
    parser.add_argument("--minari-steps", type=int, default=3_000)
    parser.add_argument("--video-steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    results = {"load_average": os.getloadavg(), "dqn_replay": bench_dqn(args.dqn_entries, args.repeats),
               "minari_atari": bench_minari(args.minari_steps, args.repeats),
               "video": [bench_video(args.video_steps, preset) for preset in ("small", "atari")]}
    results["load_average_after"] = os.getloadavg()
    dqn = results["dqn_replay"]
    print(f"load average {results['load_average'][0]:.1f} -> {results['load_average_after'][0]:.1f}")
    print(f"import-dqn-replay    {dqn['entries_per_s']:9,.0f} entries/s  {dqn['steps_per_s']:9,.0f} steps/s  "
          f"({dqn['entries']:,} entries, {dqn['gz_bytes_per_frame']:.0f} B/frame gzipped)")
    for kind, value in results["minari_atari"].items():
        print(f"import-minari-atari  {value['steps_per_s']:9,.0f} steps/s  ({kind}, {value['steps']:,} steps)")
    for value in results["video"]:
        print(f"video ({value['preset']:5s})  evaluate {value['evaluate_ms_per_step']:.1f} ms/step, "
              f"with video {value['video_ms_per_step']:.1f} ms/step; one video episode = "
              f"{value['video_cost_per_evaluation_of_10_episodes']:.0%} of a 10-episode evaluation; "
              f"{value['mp4_kib_per_1000_steps']:.0f} KiB per 1000 steps")
    args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
