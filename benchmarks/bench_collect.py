"""Collector throughput against the bare emulator: is writing the store the bottleneck?

For each environment count, alternately (so both see the same machine load):
- raw: ale-py's `AtariVectorEnv` with the paper's settings (`make_vector_env`), stepping uniform
  random actions, nothing stored;
- collector: `pipelines.acting.collector.collect` with the random policy, writing whole episodes to a
  fresh zarr store (episode buffers, validation, compression, commits).

Reported: agent steps/s of each (medians over --repeats), their ratio (collector / raw; 1.0 means
the store costs nothing), the share of the collector's loop spent inside the emulator's step (a
within-run measure that other jobs' load does not skew: 1 - share is the collector's own cost:
policy, buffers, compression, commits), and the store's bytes per step (file sizes and allocated
blocks).

With --integrity, the collector runs alternately without checksums and fsync ("plain"), with
crc32c checksums only, and as it ships (checksums and fsynced commits), and the ratios of their
rates to the plain one's are the cost of each (same run, same load). Because whole-collector rates
on a shared machine are noisy, the commits are also timed alone: the episodes of a collected store
are appended one commit per episode to fresh stores of each variant, alternating, and the median
milliseconds per commit give the throughput ratio the commit costs imply at the measured rate.

    python benchmarks/bench_collect.py --game pong --envs 1 2 4 8 --steps 4000 --out collect.json
    python benchmarks/bench_collect.py --game breakout --envs 1 --integrity --repeats 7
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
    parser.add_argument("--integrity", action="store_true",
                        help="measure the cost of checksums and fsync instead of the raw-emulator ratio")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("bench_collect.json"))
    return parser.parse_args(argv)


INTEGRITY_VARIANTS = {  # name -> (checksum, fsync)
    "plain": (False, False),
    "crc32c": (True, False),
    "crc32c + fsync": (True, True),
}


def raw_steps_per_second(game: str, envs: int, steps: int, seed: int) -> float:
    from dreamer_pipeline.pipelines.envs.atari import EnvConfig, make_vector_env, resolve_game

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


def collector_run(game: str, envs: int, steps: int, seed: int, root: Path, checksum: bool = True,
                  fsync: bool = True) -> dict:
    from dreamer_pipeline.pipelines.acting.collector import collect

    path = root / f"{game}-{envs}-{seed}-{checksum}-{fsync}.zarr"
    result = collect(path, game, steps, num_envs=envs, seed=seed, progress=False, checksum=checksum, fsync=fsync)
    sizes = blocks = 0
    for file in path.rglob("*"):
        if file.is_file():
            stat = file.stat()
            sizes += stat.st_size
            blocks += stat.st_blocks * 512
    return {
        "steps_per_s": result.env_steps / result.loop_seconds,
        "episodes": result.new_episodes,
        "seconds_per_commit": (result.loop_seconds - result.env_seconds) / max(1, result.new_episodes),
        "emulator_share": result.env_seconds / result.loop_seconds,
        "committed_steps": result.committed_steps,
        "bytes_per_step": sizes / result.committed_steps,
        "disk_bytes_per_step": blocks / result.committed_steps,
    }


def integrity_main(args) -> int:
    """Collector rates without / with checksums / with checksums and fsync, alternating per repeat."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:  # fsync costs depend on the file system: check that of $TMPDIR
        for envs in args.envs:
            runs: dict[str, list[dict]] = {name: [] for name in INTEGRITY_VARIANTS}
            for repeat in range(args.repeats):
                names = list(INTEGRITY_VARIANTS)
                for name in names[repeat % 3:] + names[: repeat % 3]:  # rotate who goes first
                    checksum, fsync = INTEGRITY_VARIANTS[name]
                    runs[name].append(collector_run(args.game, envs, args.steps, repeat, Path(tmp), checksum, fsync))
                    print(f"envs {envs} repeat {repeat} {name}: {runs[name][-1]['steps_per_s']:.0f} steps/s",
                          file=sys.stderr, flush=True)
            plain = [run["steps_per_s"] for run in runs["plain"]]
            row = {"envs": envs}
            for name, results in runs.items():
                rates = [run["steps_per_s"] for run in results]
                row[name] = {"steps_per_s": statistics.median(rates),
                             "ratio_to_plain": statistics.median(r / p for r, p in zip(rates, plain)),
                             "ms_outside_emulator_per_episode": 1e3 * statistics.median(
                                 run["seconds_per_commit"] for run in results),
                             "episodes": statistics.median(run["episodes"] for run in results), "all": rates}
            rows.append(row)
            commits = commit_milliseconds(Path(tmp) / f"{args.game}-{envs}-0-False-False.zarr", Path(tmp),
                                          max(3, args.repeats))
            episode_seconds = statistics.median(run["episodes"] and args.steps / run["episodes"] / run["steps_per_s"]
                                                for run in runs["plain"])
            for name, milliseconds in commits.items():
                row[name]["ms_per_commit"] = milliseconds
                extra = (milliseconds - commits["plain"]) / 1e3
                row[name]["implied_ratio_to_plain"] = episode_seconds / (episode_seconds + extra)
    lines = [f"game {args.game}, {args.steps} agent steps per run, medians of {args.repeats}, load {os.getloadavg()[0]:.1f}",
             "| envs | variant | collector steps/s | ratio to plain (paired) | ms per commit (alone) | "
             "ratio implied by the commit cost |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        for name in INTEGRITY_VARIANTS:
            cell = row[name]
            lines.append(f"| {row['envs']} | {name} | {cell['steps_per_s']:.0f} | {cell['ratio_to_plain']:.3f} | "
                         f"{cell['ms_per_commit']:.1f} | {cell['implied_ratio_to_plain']:.3f} |")
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"game": args.game, "steps": args.steps, "integrity": rows,
                                    "load": os.getloadavg()}, indent=2))
    print(f"wrote {args.out}")
    return 0


def commit_milliseconds(source: Path, root: Path, repeats: int) -> dict[str, float]:
    """Median ms of one `append_episode` (one commit) per variant, re-appending `source`'s episodes."""
    from dreamer_pipeline.datasets.store import ExperienceStore, StoreWriter

    store = ExperienceStore(source)
    index = store.episodes()
    episodes = [{key: store.read(key, int(s), int(s + n)) for key in store.arrays} for s, n in zip(index.starts, index.lengths)]
    times: dict[str, list[float]] = {name: [] for name in INTEGRITY_VARIANTS}
    names = list(INTEGRITY_VARIANTS)
    for repeat in range(repeats):
        for name in names[repeat % 3:] + names[: repeat % 3]:
            checksum, fsync = INTEGRITY_VARIANTS[name]
            with StoreWriter.open(root / f"commits-{name}-{repeat}.zarr", dict(store.attrs), checksum=checksum,
                                  fsync=fsync) as writer:
                for episode in episodes:
                    start = time.perf_counter()
                    writer.append_episode(episode)
                    times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.integrity:
        return integrity_main(args)
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
