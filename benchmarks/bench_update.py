"""Seconds per full agent update (world model, actor, critic) at B=16, T=50.

    python benchmarks/bench_update.py                      # presets small and atari, CPU
    python benchmarks/bench_update.py --presets atari --repeats 5 --mode compile --out bench.json

Random uint8 images and actions stand in for replay data (the update's cost does not depend on
the pixels). Reports the median of `--repeats` timed updates after `--warmup` untimed ones, plus
the world-model and behaviour halves measured separately. Machines shared with other jobs give
noisy numbers: compare medians taken in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def random_batch(batch: int, length: int, num_actions: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    is_first = np.zeros((batch, length), bool)
    is_first[:, 0] = True
    return {
        "image": rng.integers(0, 256, (batch, length, 64, 64, 1), dtype=np.uint8),
        "action": rng.integers(0, num_actions, (batch, length)).astype(np.int64),
        "reward": rng.normal(size=(batch, length)).astype(np.float32),
        "is_first": is_first,
        "is_last": np.zeros((batch, length), bool),
        "is_terminal": np.zeros((batch, length), bool),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, batch, device, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn(batch)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn(batch)  # returns floats, so the work is finished when it returns
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def bench(name: str, args) -> dict:
    overrides = {"runtime": {"mode": args.mode, "channels_last": not args.no_channels_last}}
    # Imported here so bench_update_sheeprl.py (another venv) can reuse random_batch.
    from dreamer_pipeline.models.agent import Agent
    from dreamer_pipeline.models.config import preset

    agent = Agent(preset(name, overrides), args.num_actions, args.device, seed=0)
    batch = random_batch(args.batch, args.length, args.num_actions)
    device = agent.device
    update = time_calls(agent.update, batch, device, args.warmup, args.repeats)
    result = {
        "preset": name,
        "update_s": statistics.median(update),
        "update_all_s": update,
    }
    if not args.skip_parts:
        result["world_model_s"] = statistics.median(time_calls(agent.train_world_model, batch, device, 0, args.repeats))
        result["behaviour_s"] = statistics.median(time_calls(agent.train_behaviour, batch, device, 0, args.repeats))
    result["parameters"] = agent.parameter_counts()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small", "atari"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--num-actions", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mode", default="auto", choices=["auto", "eager", "cuda_graph", "compile", "compile_cuda_graph"],
                        help="runtime.mode (auto: eager on the CPU, compile + CUDA graphs on CUDA)")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--skip-parts", action="store_true", help="time only the full update")
    parser.add_argument("--out", default=str(Path(__file__).with_name("bench_update.json")))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [bench(name, args) for name in args.presets]
    print(f"{'preset':8} {'update s':>9} {'wm s':>8} {'behaviour s':>12}  (B={args.batch}, T={args.length}, "
          f"{args.device}, {torch.get_num_threads()} threads, mode={args.mode})")
    for r in results:
        print(f"{r['preset']:8} {r['update_s']:9.3f} {r.get('world_model_s', float('nan')):8.3f} "
              f"{r.get('behaviour_s', float('nan')):12.3f}")
    report = {
        "benchmark": "agent_update",
        "batch": args.batch, "length": args.length, "num_actions": args.num_actions, "device": args.device,
        "threads": torch.get_num_threads(), "mode": args.mode, "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(), "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
