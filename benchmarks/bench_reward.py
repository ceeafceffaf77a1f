"""The reward-learning screen: does a world-model setting learn a game's rare reward, in minutes?

Issue 7's diagnosis, turned into a benchmark (issue 17). A world model trains on a fixed store of
random-policy play and is read on a second, held-out store of the same game. That tells in
minutes what a 2-hour learning run tells only at its end: whether the reward head leaves
predict-zero.

1. Random-policy stores per game, `--train-steps` to train on and `--held-out-steps` to read on
   (other seeds). They are made with the real collector once and kept under `--stores`. A rerun
   reuses them, and the collector's provenance check refuses a store made with other settings.
2. For each setting and seed: a fresh agent (the `small` preset plus the setting's overrides)
   makes `--updates` world-model updates on B x T windows of the training store.
3. Every `--every` updates, and at the end, the held-out store is cut into T-step windows that
   start with `is_first`, as the sampler's windows do, and the reward head is read on the
   posterior features of every step. The screen reports:
   - the correlation of the prediction with the target (tanh of the reward, the head's target);
   - the mean prediction at positive, negative and zero-reward steps;
   - the error ratio: held-out squared error over predict-zero's squared error. Below 1 means
     the head knows more than "nothing happens".

    python benchmarks/bench_reward.py --games boxing --settings recipe,paper --seeds 0,1 --updates 600
    python benchmarks/bench_reward.py --settings recipe --set world_model.reward_scale=30

Each result is appended as one JSON line to `{--out}/results.jsonl`, and the table is printed.
Settings are named override sets (SETTINGS below). `--set KEY=VALUE` (YAML values, dotted keys
into the agent config) adds one more setting, named after its overrides.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from dreamer_pipeline.pipelines.held_out_reward import held_out_windows, reward_predictions, reward_scores

RECIPE = {  # config/boxing_cpu.yaml's world model: free nats against early collapse (docs/learning.md)
    "world_model": {"free_nats": 1.0, "kl_scale": 0.6, "kl_balance": 0.833, "reward_scale": 10.0,
                    "opt": {"lr": 6e-4}},
}


def _with(base: dict, **sections: dict) -> dict:
    merged = copy.deepcopy(base)
    for section, values in sections.items():
        merged.setdefault(section, {}).update(values)
    return merged


SETTINGS: dict[str, dict[str, Any]] = {
    "paper": {},  # the `small` preset as published: free nats 0, lr 2e-4, reward scale 1
    "recipe": RECIPE,
    "recipe-scale1": _with(RECIPE, world_model={"reward_scale": 1.0}),
    "recipe-scale30": _with(RECIPE, world_model={"reward_scale": 30.0}),
    "recipe-lr1e-3": _with(RECIPE, world_model={"opt": {"lr": 1e-3}}),
    "recipe-kl1": _with(RECIPE, world_model={"kl_scale": 1.0, "kl_balance": 0.8}),
    "recipe-twohot": _with(RECIPE, world_model={"reward_head_dist": "symlog_twohot"}),
    "recipe-twohot-scale1": _with(RECIPE, world_model={"reward_head_dist": "symlog_twohot", "reward_scale": 1.0}),
}


def parse_set(items: list[str]) -> tuple[str, dict]:
    """`["world_model.reward_scale=30", ...]` -> (a name, the nested overrides on top of the recipe).
    The pipeline's one override syntax (`pipelines/config_overrides.py`), keys under `agent.overrides`,
    typed by the agent's schema."""
    from dreamer_pipeline.models.config import AgentConfig
    from dreamer_pipeline.models.config_schema import ConfigError, from_mapping
    from dreamer_pipeline.pipelines.config_overrides import apply_overrides, parse_settings

    base = {"agent": {"overrides": copy.deepcopy(RECIPE)}}
    try:
        settings = {f"agent.overrides.{key}": value for key, value in parse_settings(items).items()}
        overrides = apply_overrides(base, settings)["agent"]["overrides"]
        from_mapping(AgentConfig, overrides, "agent.overrides")  # unknown keys named before any run
    except ConfigError as error:
        raise SystemExit(f"error: {error}") from None
    return "recipe+" + ",".join(items), overrides


def make_stores(stores: Path, game: str, train_steps: int, held_out_steps: int, envs: int) -> tuple[Path, Path]:
    """The game's training and held-out random-play stores, made once and reused (the collector
    resumes a short store and refuses one of other provenance)."""
    from dreamer_pipeline.pipelines.acting.collector import collect

    folder = stores / game
    train = folder / f"random_train_s0_{train_steps}.zarr"
    held_out = folder / f"random_heldout_s1000_{held_out_steps}.zarr"
    for path, steps, seed in ((train, train_steps, 0), (held_out, held_out_steps, 1000)):
        started = time.time()
        result = collect(path, game, steps, num_envs=envs, seed=seed, progress=False)
        if result.new_steps:
            print(f"  {game}: collected {path.name} in {time.time() - started:.0f} s")
    return train, held_out


def screen_one(game: str, setting: str, overrides: dict, seed: int, train: Path, windows: dict, args) -> dict:
    import torch

    from dreamer_pipeline.datasets.dataset import open_dataset
    from dreamer_pipeline.datasets.sampler import SequenceSampler
    from dreamer_pipeline.models.agent import Agent
    from dreamer_pipeline.models.config import preset

    dataset = open_dataset(train)
    torch.manual_seed(seed)
    agent = Agent(preset(args.preset, overrides), num_actions=dataset.num_actions, seed=seed)
    sampler = SequenceSampler(dataset, batch_size=args.batch_size, seq_len=args.seq_len, seed=seed, threads=1)
    curve, train_nll = [], []
    started_wall, started_cpu = time.time(), time.process_time()
    for update in range(1, args.updates + 1):
        metrics = agent.train_world_model(sampler.sample())
        train_nll.append(float(metrics["wm/reward_nll"]))
        if update % args.every == 0 or update == args.updates:
            point = {"updates": update, **reward_scores(*reward_predictions(agent, windows)),
                     "train_reward_nll": float(np.mean(train_nll[-args.every:])),
                     "wall_s": round(time.time() - started_wall, 1)}
            curve.append(point)
            print(f"  {game} {setting} seed {seed} @ {update}: corr {point['correlation']:.3f}, "
                  f"+{point['mean_at_positive']:.3f} / {point['mean_at_negative']:.3f} / {point['mean_at_zero']:.4f}, "
                  f"error ratio {point['error_ratio']:.3f}, {point['wall_s']:.0f} s", flush=True)
    return {"game": game, "setting": setting, "overrides": overrides, "seed": seed, "preset": args.preset,
            "batch_size": args.batch_size, "seq_len": args.seq_len, "train_store": str(train),
            "cpu_s": round(time.process_time() - started_cpu, 1), "curve": curve, **curve[-1]}


def print_table(rows: list[dict]) -> None:
    if rows and "setting" not in rows[0]:
        print("\n| game | random play: steps with a reward |\n|---|---|")
        for row in rows:
            print(f"| {row['game']} | {100 * row['reward_density']:.2f}% |")
        return
    print("\n| game | setting | seed | updates | correlation | mean at +1 / -1 / 0 | error ratio | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['game']} | {row['setting']} | {row['seed']} | {row['updates']} | {row['correlation']:.3f} | "
              f"{row['mean_at_positive']:+.3f} / {row['mean_at_negative']:+.3f} / {row['mean_at_zero']:+.4f} | "
              f"{row['error_ratio']:.3f} | {row['wall_s']:.0f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", default="boxing", help="comma-separated Atari games")
    parser.add_argument("--settings", default="recipe", help=f"comma-separated, from: {', '.join(SETTINGS)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="one more setting: the recipe with these agent overrides (repeatable)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--updates", type=int, default=600, help="0: only random play's reward density per game")
    parser.add_argument("--every", type=int, default=200, help="updates between held-out readings")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--train-steps", type=int, default=40_000)
    parser.add_argument("--held-out-steps", type=int, default=10_000)
    parser.add_argument("--collect-envs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--stores", default="results/bench_reward/stores", help="where the random stores are kept")
    parser.add_argument("--out", default="results/bench_reward", help="results.jsonl goes here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    settings = {}
    for name in filter(None, args.settings.split(",")):
        if name not in SETTINGS:
            raise SystemExit(f"--settings: unknown setting {name!r}; choose from {', '.join(SETTINGS)}")
        settings[name] = SETTINGS[name]
    if args.set:
        name, overrides = parse_set(args.set)
        settings[name] = overrides
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for game in filter(None, args.games.split(",")):
        train, held_out = make_stores(Path(args.stores), game, args.train_steps, args.held_out_steps, args.collect_envs)
        windows = held_out_windows(held_out, args.seq_len)
        density = float((np.abs(windows["reward"]) > 0).mean())
        print(f"{game}: {len(windows['image'])} held-out windows, reward on {100 * density:.2f}% of steps", flush=True)
        if args.updates == 0:  # the density screen only
            rows.append({"game": game, "reward_density": density})
            continue
        for name, overrides in settings.items():
            for seed in (int(s) for s in args.seeds.split(",")):
                row = screen_one(game, name, overrides, seed, train, windows, args)
                row["reward_density"] = density
                rows.append(row)
                with open(out / "results.jsonl", "a") as handle:
                    handle.write(json.dumps(row) + "\n")
    print_table(rows)


if __name__ == "__main__":
    main()
