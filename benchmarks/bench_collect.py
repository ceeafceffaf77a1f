"""Collector throughput against the bare emulator: is writing the store the bottleneck?

For each environment count, alternately (so both see the same machine load):
- raw: ale-py's `AtariVectorEnv` with the paper's settings (`make_vector_env`), stepping uniform
  random actions, nothing stored;
- collector: `pipelines.collector.collect` with the random policy, writing whole episodes to a
  fresh zarr store (episode buffers, validation, compression, commits).

Reported: agent steps/s of each (medians over --repeats), their ratio (collector / raw; 1.0 means
the store costs nothing), the share of the collector's loop spent inside the emulator's step (a
within-run measure that other jobs' load does not skew: 1 - share is the collector's own cost:
policy, buffers, compression, commits), and the store's bytes per step (file sizes and allocated
blocks).

    python benchmarks/bench_collect.py --game pong --envs 1 2 4 8 --steps 4000 --out collect.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--game", default="pong")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--steps", type=int, default=4000, help="agent steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("bench_collect.json"))
    return parser.parse_args(argv)


def raw_steps_per_second(game: str, envs: int, steps: int, seed: int) -> float:
    from dreamer_pipeline.pipelines.atari import EnvConfig, make_vector_env, resolve_game

    env = make_vector_env(resolve_game(game)[1], envs, EnvConfig())
    env.reset(seed=np.arange(seed, seed + envs))
    rng = np.random.default_rng(seed)
    num_actions = env.single_action_space.n
    vector_steps = max(1, steps // envs)
    start = time.perf_counter()
    for _ in range(vector_steps):
        env.step(rng.integers(0, num_actions, size=envs))
    seconds = time.perf_counter() - start
    env.close()
    return vector_steps * envs / seconds


def collector_run(game: str, envs: int, steps: int, seed: int, root: Path) -> dict:
    from dreamer_pipeline.pipelines.collector import collect

    path = root / f"{game}-{envs}-{seed}.zarr"
    result = collect(path, game, steps, num_envs=envs, seed=seed, progress=False)
    sizes = blocks = 0
    for file in path.rglob("*"):
        if file.is_file():
            stat = file.stat()
            sizes += stat.st_size
            blocks += stat.st_blocks * 512
    return {
        "steps_per_s": result.env_steps / result.loop_seconds,
        "emulator_share": result.env_seconds / result.loop_seconds,
        "committed_steps": result.committed_steps,
        "bytes_per_step": sizes / result.committed_steps,
        "disk_bytes_per_step": blocks / result.committed_steps,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for envs in args.envs:
            raw, ours, stores = [], [], []
            for repeat in range(args.repeats):
                raw.append(raw_steps_per_second(args.game, envs, args.steps, seed=repeat))
                run = collector_run(args.game, envs, args.steps, repeat, Path(tmp))
                ours.append(run["steps_per_s"])
                stores.append(run)
                print(f"envs {envs} repeat {repeat}: raw {raw[-1]:.0f}/s, collector {ours[-1]:.0f}/s",
                      file=sys.stderr, flush=True)
            ratios = [o / r for o, r in zip(ours, raw)]
            rows.append({
                "envs": envs,
                "raw_steps_per_s": statistics.median(raw),
                "collector_steps_per_s": statistics.median(ours),
                "ratio_median": statistics.median(ratios),
                "emulator_share_median": statistics.median(s["emulator_share"] for s in stores),
                "bytes_per_step": statistics.median(s["bytes_per_step"] for s in stores),
                "disk_bytes_per_step": statistics.median(s["disk_bytes_per_step"] for s in stores),
                "raw_all": raw, "collector_all": ours,
            })
    lines = [f"game {args.game}, {args.steps} agent steps per measurement, medians of {args.repeats}",
             "| envs | raw env steps/s | collector steps/s | ratio | emulator share of collector loop | "
             "store B/step | disk B/step |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['envs']} | {row['raw_steps_per_s']:.0f} | {row['collector_steps_per_s']:.0f} | "
                     f"{row['ratio_median']:.2f} | {row['emulator_share_median']:.3f} | {row['bytes_per_step']:.0f} | "
                     f"{row['disk_bytes_per_step']:.0f} |")
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"game": args.game, "steps": args.steps, "cpus": os.cpu_count(), "rows": rows},
                                   indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
