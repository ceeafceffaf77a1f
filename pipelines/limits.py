"""Upper bounds on the sizes and counts a configuration or a command may ask for.

Generous for the paper's protocol (Hafner et al. 2021: 200 iterations, batches of 16 x 50, one
environment per collector) and for large machines, but a typo such as `batch_size: 1e12` or
`--envs 20000` is one clear error instead of a hang, an out-of-memory kill or a Snakemake plan that
never finishes (measured: `iterations: 1e9` made `snakemake -n` run past 60 s at 4.9 GB).
"""

from __future__ import annotations

MAX_ENVS = 256  # environments of one vector env (collector, prefill, evaluation): more than any node has cores
MAX_THREADS = 1024
MAX_STEPS = 10**10  # agent steps of one store or stage (the paper's whole run is 5 * 10**7)
MAX_ITERATIONS = 1000  # iterations of one run (the paper: 200); `snakemake -n` plans 1000 staged ones in ~30 s
MAX_GAMES = 100  # the paper's benchmark has 55
MAX_SEEDS = 100
MAX_COLLECTORS = 256
MAX_BATCH_SIZE = 4096  # sequences per batch (the paper: 16 in the published code, 50 in the text)
MAX_SEQUENCE_LENGTH = 10_000  # steps per sequence (the paper: 50)
MAX_UPDATES = 10**9
MAX_EPISODES = 100_000  # evaluation episodes per iteration
MAX_WORKERS = 64  # DataLoader worker processes
MAX_VIDEO_SEQUENCES = 64


def check_at_most(where: str, value: int | float, limit: int | float) -> None:
    """Raise ValueError naming `where` if `value` exceeds `limit`."""
    if value > limit:
        raise ValueError(f"{where} is {value:,}, more than the limit {limit:,} (see pipelines/limits.py)")


def planned_iterations(cfg) -> int:
    """About how many iterations `schedule.plan(cfg)` will make, computed without making them
    (iteration sizes grow from `loop.first_iteration_steps` to `steps_per_iteration`)."""
    if cfg.iterations:
        return cfg.iterations
    budget = cfg.frames_budget // max(1, cfg.action_repeat)
    if cfg.offline:
        return -(-budget // cfg.steps_per_iteration)
    loop = getattr(cfg, "loop", None)
    size = min(cfg.steps_per_iteration, (loop.first_iteration_steps if loop else 0) or cfg.steps_per_iteration)
    growth = loop.growth if loop else 1.0
    remaining, count = max(0, budget - cfg.prefill.steps), 1
    while remaining > 0 and count <= MAX_ITERATIONS:
        if size >= cfg.steps_per_iteration or growth <= 1.0:
            return count + -(-remaining // size)  # every further iteration has this size
        remaining -= size
        count += 1
        size = min(cfg.steps_per_iteration, int(round(size * growth)))
    return count


def check_limits(cfg) -> None:
    """Every bound of a `PipelineConfig` (its sections included); ValueError naming the key."""
    checks = [
        ("games (count)", len(cfg.games), MAX_GAMES),
        ("seeds (count)", len(cfg.seeds), MAX_SEEDS),
        ("frames_budget", cfg.frames_budget, MAX_STEPS * max(1, cfg.action_repeat)),
        ("steps_per_iteration", cfg.steps_per_iteration, MAX_STEPS),
        ("replay_steps", cfg.replay_steps, MAX_STEPS),
        ("collectors", cfg.collectors, MAX_COLLECTORS),
        ("iterations", cfg.iterations, MAX_ITERATIONS),
        ("prefill.steps", cfg.prefill.steps, MAX_STEPS),
        ("prefill.envs", cfg.prefill.envs, MAX_ENVS),
        ("collect.envs", cfg.collect.envs, MAX_ENVS),
        ("collect.threads", cfg.collect.threads, MAX_THREADS),
        ("train.batch_size", cfg.train.batch_size, MAX_BATCH_SIZE),
        ("train.sequence_length", cfg.train.sequence_length, MAX_SEQUENCE_LENGTH),
        ("train.checkpoint_every", cfg.train.checkpoint_every, MAX_UPDATES),
        ("train.video_sequences", cfg.train.video_sequences, MAX_VIDEO_SEQUENCES),
        ("train.torch_threads", cfg.train.torch_threads, MAX_THREADS),
        ("train.loader_workers", cfg.train.loader_workers, MAX_WORKERS),
        ("evaluate.episodes", cfg.evaluate.episodes, MAX_EPISODES),
        ("evaluate.envs", cfg.evaluate.envs, MAX_ENVS),
        ("evaluate.max_steps", cfg.evaluate.max_steps, MAX_STEPS),
    ]
    if cfg.pretrain is not None:
        checks.append(("pretrain.updates", cfg.pretrain.updates, MAX_UPDATES))
    loop = getattr(cfg, "loop", None)
    if loop is not None:
        checks += [("loop.first_iteration_steps", loop.first_iteration_steps, MAX_STEPS),
                   ("loop.publish_every", loop.publish_every, MAX_UPDATES),
                   ("loop.lead_updates", loop.lead_updates, MAX_UPDATES)]
    updates = getattr(cfg.prefill, "updates", None)
    if updates is not None:
        checks.append(("prefill.updates", updates, MAX_UPDATES))
    for where, value, limit in checks:
        check_at_most(where, value, limit)
    iterations = planned_iterations(cfg)
    if iterations > MAX_ITERATIONS:
        raise ValueError(f"frames_budget {cfg.frames_budget:,} in steps_per_iteration {cfg.steps_per_iteration:,} "
                         f"makes {iterations:,} iterations, more than the limit {MAX_ITERATIONS:,} "
                         "(see pipelines/limits.py); collect more steps per iteration")
