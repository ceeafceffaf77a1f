"""Does reward-free pretraining help? World-model loss of a run initialised from a reward-free
pretrained world model against the same run from scratch, on small Pong data.

1. Collect random-policy Pong experience: a pretraining set (its rewards are dropped) and a
   separate run set (another seed), with the real collector and environment.
2. Pretrain a world model without a reward head (`ablation.reward: absent`) on the pretraining set.
3. Train two fresh agents on the run set with identical batches: one from scratch, one initialised
   with every pretrained world-model weight except the reward head (as the pipeline does).
4. Print the total world-model loss (image + reward + discount + KL, the paper's Eq. 2) along the
   way, and the updates each needs to reach the loss the scratch run ends with.

    python benchmarks/bench_pretrain.py [--preset small] [--pretrain-updates 300] [--updates 200]

Writes JSON to --out (default benchmarks/bench_pretrain.json). Timing is not the point here.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def collect_data(folder: Path, game: str, steps: int, seed: int, max_episode_steps: int) -> Path:
    from dreamer_pipeline.pipelines.envs.atari import EnvConfig
    from dreamer_pipeline.pipelines.acting.collector import collect

    path = folder / f"{game}_{seed}.zarr"
    collect(path, game, steps, num_envs=2, seed=seed, env_config=EnvConfig(max_episode_steps=max_episode_steps),
            progress=False)
    return path


def batch_stream(dataset, batch_size: int, seq_len: int, seed: int, drop_reward: bool = False):
    from dreamer_pipeline.datasets.sampler import SequenceSampler

    sampler = SequenceSampler(dataset, batch_size=batch_size, seq_len=seq_len, seed=seed, threads=1)
    while True:
        batch = sampler.sample()
        if drop_reward:
            batch.pop("reward", None)
        yield batch


def train(agent, batches: list[dict]) -> list[float]:
    return [float(agent.train_world_model(batch)["wm/loss"]) for batch in batches]


def smooth(values: list[float], window: int) -> np.ndarray:
    values = np.asarray(values)
    return np.array([np.median(values[max(0, i - window + 1): i + 1]) for i in range(len(values))])


def first_reaching(curve: np.ndarray, level: float) -> int | None:
    hits = np.flatnonzero(curve <= level)
    return int(hits[0]) + 1 if len(hits) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--game", default="pong")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--pretrain-steps", type=int, default=4000, help="random agent steps to pretrain on")
    parser.add_argument("--run-steps", type=int, default=1500, help="random agent steps of the run's own data")
    parser.add_argument("--pretrain-updates", type=int, default=300)
    parser.add_argument("--updates", type=int, default=200, help="world-model updates of each run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/bench_pretrain.json")
    args = parser.parse_args()

    import torch

    from dreamer_pipeline.datasets.dataset import open_dataset
    from dreamer_pipeline.models.config import preset
    from dreamer_pipeline.pipelines.agent_io import build_agent
    from dreamer_pipeline.pipelines.stages.pretrain_world_model import reward_free_agent_config

    torch.set_num_threads(args.threads)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pre_data = open_dataset(collect_data(folder, args.game, args.pretrain_steps, 100 + args.seed, 400))
        run_data = open_dataset(collect_data(folder, args.game, args.run_steps, 200 + args.seed, 400))
        config = preset(args.preset)
        num_actions = run_data.num_actions

        pretrained = build_agent(reward_free_agent_config(config, True), num_actions, "cpu", seed=args.seed)
        stream = batch_stream(pre_data, args.batch_size, args.seq_len, seed=1, drop_reward=True)
        pretrain_losses = train(pretrained, [next(stream) for _ in range(args.pretrain_updates)])

        stream = batch_stream(run_data, args.batch_size, args.seq_len, seed=2)
        run_batches = [next(stream) for _ in range(args.updates)]
        scratch = build_agent(config, num_actions, "cpu", seed=args.seed + 1)
        initialised = build_agent(config, num_actions, "cpu", seed=args.seed + 1)
        kept = {k: v for k, v in pretrained.world_model.state_dict().items() if not k.startswith("reward_head.")}
        missing = initialised.world_model.load_state_dict(kept, strict=False).missing_keys
        assert all(k.startswith("reward_head.") for k in missing), missing
        scratch_losses = train(scratch, run_batches)
        init_losses = train(initialised, run_batches)

    window = max(1, args.updates // 20)
    scratch_curve, init_curve = smooth(scratch_losses, window), smooth(init_losses, window)
    target = float(scratch_curve[-1])
    marks = sorted({1, *range(window, args.updates + 1, max(1, args.updates // 8)), args.updates})
    rows = [{"update": m, "scratch": float(scratch_curve[m - 1]), "pretrained": float(init_curve[m - 1])} for m in marks]
    result = {
        "game": args.game, "preset": args.preset, "pretrain_steps": args.pretrain_steps, "run_steps": args.run_steps,
        "pretrain_updates": args.pretrain_updates, "updates": args.updates, "batch_size": args.batch_size,
        "seq_len": args.seq_len, "smoothing_window": window, "curve": rows,
        "scratch_final_loss": target,
        "updates_to_scratch_final": {"scratch": first_reaching(scratch_curve, target),
                                     "pretrained": first_reaching(init_curve, target)},
        "pretrain_final_loss": float(np.median(pretrain_losses[-window:])),
        "seconds": time.time() - started,
    }
    print(f"world-model loss (running median over {window} updates), {args.game}, preset {args.preset}")
    print(f"{'update':>8} {'scratch':>10} {'pretrained':>11} {'ratio':>7}")
    for row in rows:
        print(f"{row['update']:>8} {row['scratch']:>10.2f} {row['pretrained']:>11.2f} {row['pretrained'] / row['scratch']:>7.3f}")
    reach = result["updates_to_scratch_final"]
    print(f"updates to reach the scratch run's final loss {target:.2f}: scratch {reach['scratch']}, "
          f"pretrained {reach['pretrained']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
