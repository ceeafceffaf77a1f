"""Time one full DreamerV2 update of sheeprl (the public PyTorch implementation) on this machine.

This is the reference side of `bench_update_compare.py`. It runs sheeprl's own code paths, unchanged: its
hydra configuration is composed from its packaged configs, the agent is built by
`sheeprl.algos.dreamer_v2.agent.build_agent` on a lightning `Fabric`, the optimisers by its
`build_optimizer`, and one update is one call of `sheeprl.algos.dreamer_v2.dreamer_v2.train` (world
model, then actor, then critic) on a random batch of B sequences of T steps, time-major as its replay
buffer hands them over.

It needs sheeprl, which the project does not depend on: run it with the python of a separate
environment that has sheeprl installed (see `benchmarks/README.md`), never from the tests:

    /work/sheeprl-venv/bin/python benchmarks/bench_update_sheeprl.py --runs 5 --out sheeprl.json

The default experiment is sheeprl's `exp=dreamer_v2_ms_pacman`: its `dreamer_v2` defaults (the paper's
sizes: 32x32 categorical latents, a 600-unit GRU and hidden layers, 4x400 ELU heads, CNN multiplier 48)
with its Atari recipe on top (64x64 grayscale, a learned discount head, KL scale 0.1, no free nats).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# The thread count must be fixed before torch starts its thread pools; --threads is applied below too.
_DEFAULT_THREADS = int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or (os.cpu_count() or 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=16, help="B, sequences per batch (paper: 16)")
    parser.add_argument("--seq-len", type=int, default=50, help="T, steps per sequence (paper: 50)")
    parser.add_argument("--actions", type=int, default=6, help="size of the discrete action set")
    parser.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    parser.add_argument("--runs", type=int, default=5, help="timed updates; the median is reported")
    parser.add_argument("--threads", type=int, default=_DEFAULT_THREADS, help="torch intra-op threads")
    parser.add_argument("--exp", default="dreamer_v2_ms_pacman", help="sheeprl experiment config to compose")
    parser.add_argument(
        "--override", action="append", default=[], help="extra hydra override for sheeprl, e.g. algo.horizon=15"
    )
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="disable sheeprl's metric aggregator (a real sheeprl run keeps it on: metric.log_level=1)",
    )
    parser.add_argument(
        "--with-ours",
        metavar="PRESET",
        help="also build our Agent at this preset (imported from this working tree) and alternate its updates "
        "with sheeprl's in this one process, so both see the same machine load",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).with_name("bench_update_sheeprl.json")))
    return parser.parse_args(argv)


def compose_config(exp: str, overrides: list[str], metrics: bool):
    """sheeprl's configuration, composed and resolved exactly as its CLI does (`sheeprl.cli.run`)."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf
    from sheeprl.utils.utils import dotdict

    base = [
        f"exp={exp}",
        "env.id=PongNoFrameskip-v4",  # only named; no environment is made
        "env.grayscale=True",
        "env.num_envs=1",
        "algo.cnn_keys.encoder=[rgb]",
        "algo.mlp_keys.encoder=[]",
        "algo.per_rank_batch_size=16",
        "algo.per_rank_sequence_length=50",
        "fabric.accelerator=cpu",
        "fabric.devices=1",
        "model_manager.disabled=True",
        f"metric.log_level={1 if metrics else 0}",
    ]
    with initialize_config_module(config_module="sheeprl.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=base + overrides)
    return dotdict(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))


def build(cfg, num_actions: int, image_size: int = 64):
    """The fabric, the models and the optimisers, built by sheeprl's own functions."""
    import gymnasium as gym
    import hydra
    import numpy as np
    from sheeprl.algos.dreamer_v2.agent import build_agent
    from sheeprl.algos.dreamer_v2.utils import AGGREGATOR_KEYS, build_optimizer
    from sheeprl.utils.metric import MetricAggregator

    fabric = hydra.utils.instantiate(cfg.fabric, strategy="auto", _convert_="all")
    fabric.seed_everything(cfg.seed)
    channels = 1 if cfg.env.grayscale else 3
    obs_space = gym.spaces.Dict(
        {"rgb": gym.spaces.Box(0, 255, (channels, image_size, image_size), dtype=np.uint8)}
    )
    actions_dim = (num_actions,)
    world_model, actor, critic, target_critic, _player = build_agent(fabric, actions_dim, False, cfg, obs_space)
    world_optimizer = build_optimizer(cfg.algo.world_model.optimizer, world_model.parameters())
    actor_optimizer = build_optimizer(cfg.algo.actor.optimizer, actor.parameters())
    critic_optimizer = build_optimizer(cfg.algo.critic.optimizer, critic.parameters())
    world_optimizer, actor_optimizer, critic_optimizer = fabric.setup_optimizers(
        world_optimizer, actor_optimizer, critic_optimizer
    )
    # As sheeprl.cli.run_algorithm: only the algorithm's own metric keys, disabled at log_level 0.
    aggregator = None
    if cfg.metric.log_level > 0:
        for key in set(cfg.metric.aggregator.metrics) - set(AGGREGATOR_KEYS):
            cfg.metric.aggregator.metrics.pop(key, None)
        MetricAggregator.disabled = len(cfg.metric.aggregator.metrics) == 0
        if not MetricAggregator.disabled:
            aggregator = hydra.utils.instantiate(cfg.metric.aggregator, _convert_="all").to(fabric.device)
    else:
        MetricAggregator.disabled = True
    return dict(
        fabric=fabric,
        world_model=world_model,
        actor=actor,
        critic=critic,
        target_critic=target_critic,
        world_optimizer=world_optimizer,
        actor_optimizer=actor_optimizer,
        critic_optimizer=critic_optimizer,
        aggregator=aggregator,
        actions_dim=actions_dim,
    )


def random_batch(seq_len: int, batch_size: int, num_actions: int, channels: int, generator):
    """A batch as sheeprl's `sample_batches` yields it: time-major (T, B, ...), every value float32."""
    import torch

    shape = (seq_len, batch_size)
    actions = torch.nn.functional.one_hot(
        torch.randint(num_actions, shape, generator=generator), num_actions
    ).float()
    terminated = (torch.rand((*shape, 1), generator=generator) < 0.01).float()
    is_first = torch.zeros((*shape, 1))
    is_first[0] = 1.0
    return {
        "rgb": torch.randint(0, 256, (*shape, channels, 64, 64), generator=generator).float(),
        "actions": actions,
        "rewards": torch.randn((*shape, 1), generator=generator),
        "terminated": terminated,
        "truncated": torch.zeros((*shape, 1)),
        "is_first": is_first,
    }


def our_update(preset_name: str, batch_size: int, seq_len: int, num_actions: int, seed: int):
    """Our Agent's update on a random batch, imported from this working tree (`models/` needs only
    torch and numpy, so the sheeprl environment can run it): (update function, parameter counts)."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from models.agent import Agent
    from models.config import preset

    agent = Agent(preset(preset_name), num_actions, "cpu", seed=seed)
    from bench_update import random_batch  # same folder; the batch both benchmarks time

    batch = random_batch(batch_size, seq_len, num_actions, seed)

    def update() -> float:
        start = time.perf_counter()
        agent.update(batch)
        return time.perf_counter() - start

    return update, agent.parameter_counts()


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    import sheeprl
    from sheeprl.algos.dreamer_v2.dreamer_v2 import train

    overrides = [f"algo.per_rank_batch_size={args.batch_size}", f"algo.per_rank_sequence_length={args.seq_len}"]
    cfg = compose_config(args.exp, overrides + args.override, metrics=not args.no_metrics)
    cfg.seed = args.seed
    # As sheeprl.cli.run_algorithm does before it starts an algorithm.
    torch.distributions.Distribution.set_default_validate_args(cfg.distribution.validate_args)
    torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    parts = build(cfg, args.actions)
    torch.set_num_threads(args.threads)  # lightning may have touched it
    generator = torch.Generator().manual_seed(args.seed)
    channels = 1 if cfg.env.grayscale else 3

    def one_update() -> float:
        batch = random_batch(args.seq_len, args.batch_size, args.actions, channels, generator)
        start = time.perf_counter()
        train(
            parts["fabric"],
            parts["world_model"],
            parts["actor"],
            parts["critic"],
            parts["target_critic"],
            parts["world_optimizer"],
            parts["actor_optimizer"],
            parts["critic_optimizer"],
            batch,
            parts["aggregator"],
            cfg,
            parts["actions_dim"],
        )
        return time.perf_counter() - start

    # The target critic starts as a copy of the critic, as sheeprl's loop does at gradient step 0.
    for cp, tcp in zip(parts["critic"].module.parameters(), parts["target_critic"].module.parameters()):
        tcp.data.copy_(cp.data)
    ours, our_parameters = None, None
    if args.with_ours:
        ours, our_parameters = our_update(args.with_ours, args.batch_size, args.seq_len, args.actions, args.seed)
        torch.set_num_threads(args.threads)
    for _ in range(args.warmup):
        one_update()
        if ours:
            ours()
    runs, our_runs = [], []
    for i in range(args.runs):
        # With --with-ours the two sides alternate, swapping which goes first every run.
        if ours and i % 2 == 1:
            our_runs.append(ours())
        runs.append(one_update())
        if ours and i % 2 == 0:
            our_runs.append(ours())
        line = f"update {i + 1}/{args.runs}: sheeprl {runs[-1]:.3f} s"
        if ours:
            line += f", ours {our_runs[-1]:.3f} s, ratio {runs[-1] / our_runs[-1]:.2f}"
        print(line, file=sys.stderr, flush=True)

    wm = cfg.algo.world_model
    result = {
        "implementation": "sheeprl",
        "sheeprl_version": sheeprl.__version__ if hasattr(sheeprl, "__version__") else _dist_version("sheeprl"),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "seconds_per_update_median": statistics.median(runs),
        "seconds_per_update_min": min(runs),
        "runs": runs,
        "warmup": args.warmup,
        "config": {
            "exp": args.exp,
            "overrides": args.override,
            "batch_size": args.batch_size,
            "seq_len": args.seq_len,
            "num_actions": args.actions,
            "image": [channels, 64, 64],
            "stochastic": [wm.stochastic_size, wm.discrete_size],
            "recurrent": wm.recurrent_model.recurrent_state_size,
            "hidden": wm.transition_model.hidden_size,
            "dense_units": cfg.algo.dense_units,
            "mlp_layers": cfg.algo.mlp_layers,
            "cnn_multiplier": wm.encoder.cnn_channels_multiplier,
            "horizon": cfg.algo.horizon,
            "use_continues": wm.use_continues,
            "layer_norm": cfg.algo.layer_norm,
            "precision": cfg.fabric.precision,
            "compile": bool((cfg.algo.get("compile") or {}).get("enabled", False)),
            "metrics": not args.no_metrics,
        },
        "parameters": {
            "world_model": count_parameters(parts["world_model"]),
            "actor": count_parameters(parts["actor"]),
            "critic": count_parameters(parts["critic"]),
        },
    }
    if ours:
        result["ours"] = {
            "preset": args.with_ours,
            "seconds_per_update_median": statistics.median(our_runs),
            "runs": our_runs,
            "parameters": our_parameters,
            "ratio_sheeprl_over_ours": statistics.median(runs) / statistics.median(our_runs),
            "ratio_per_run": [s / o for s, o in zip(runs, our_runs)],
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'implementation':<16}{'B':>4}{'T':>4}{'threads':>9}{'median s/update':>18}{'min':>9}")
    print(
        f"{'sheeprl ' + result['sheeprl_version']:<16}{args.batch_size:>4}{args.seq_len:>4}"
        f"{result['torch_threads']:>9}{result['seconds_per_update_median']:>18.3f}{min(runs):>9.3f}"
    )
    if ours:
        print(
            f"{'ours ' + args.with_ours:<16}{args.batch_size:>4}{args.seq_len:>4}{result['torch_threads']:>9}"
            f"{result['ours']['seconds_per_update_median']:>18.3f}{min(our_runs):>9.3f}"
        )
        print(f"ratio sheeprl / ours (medians): {result['ours']['ratio_sheeprl_over_ours']:.2f}")
    print(f"wrote {out}")
    return result


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
