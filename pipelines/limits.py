"""The bounds of every size and count a configuration or a command may ask for, lower and upper.

`BOUNDS` holds them all for a pipeline configuration, by dotted key (the sections' `validate()`
keep only the rules that relate two settings). The upper bounds are generous for the paper's
protocol (Hafner et al. 2021: 200 iterations, batches of 16 x 50, one environment per collector)
and for large machines, but a typo such as `batch_size: 1e12` or `--envs 20000` is one clear error
instead of a hang, an out-of-memory kill or a Snakemake plan that never finishes (measured:
`iterations: 1e9` made `snakemake -n` run past 60 s at 4.9 GB).
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


POSITIVE, NON_NEGATIVE = 1, 0  # lower bounds of counts
# key: (lowest, highest); None = no bound. frames_budget's upper bound depends on env.action_repeat.
BOUNDS: dict[str, tuple[int | float, int | float | None]] = {
    "frames_budget": (POSITIVE, None),
    "steps_per_iteration": (POSITIVE, MAX_STEPS),
    "train_every": (POSITIVE, MAX_STEPS),
    "replay_steps": (POSITIVE, MAX_STEPS),
    "collectors": (POSITIVE, MAX_COLLECTORS),
    "iterations": (NON_NEGATIVE, MAX_ITERATIONS),  # 0 = as many as the budget allows
    "loop.first_iteration_steps": (NON_NEGATIVE, MAX_STEPS),  # 0 = steps_per_iteration
    "loop.growth": (1.0, None),
    "loop.publish_every": (POSITIVE, MAX_UPDATES),
    "loop.lead_updates": (POSITIVE, MAX_UPDATES),
    "prefill.steps": (POSITIVE, MAX_STEPS),
    "prefill.envs": (POSITIVE, MAX_ENVS),
    "prefill.updates": (POSITIVE, MAX_UPDATES),  # None = steps / train_every
    "collect.envs": (POSITIVE, MAX_ENVS),
    "collect.threads": (POSITIVE, MAX_THREADS),
    "train.batch_size": (POSITIVE, MAX_BATCH_SIZE),
    "train.sequence_length": (POSITIVE, MAX_SEQUENCE_LENGTH),
    "train.checkpoint_every": (POSITIVE, MAX_UPDATES),
    "train.video_sequences": (NON_NEGATIVE, MAX_VIDEO_SEQUENCES),
    "train.torch_threads": (NON_NEGATIVE, MAX_THREADS),  # 0 = torch's default
    "train.loader_workers": (NON_NEGATIVE, MAX_WORKERS),  # 0 = in the stage's process
    "train.actor_gate.every": (POSITIVE, MAX_UPDATES),
    "train.actor_gate.held_out_steps": (NON_NEGATIVE, MAX_STEPS),
    "train.actor_gate.windows": (POSITIVE, MAX_BATCH_SIZE),
    "evaluate.episodes": (POSITIVE, MAX_EPISODES),
    "evaluate.envs": (POSITIVE, MAX_ENVS),
    "evaluate.max_steps": (NON_NEGATIVE, MAX_STEPS),  # 0 = the environment's time limit
    "pretrain.updates": (POSITIVE, MAX_UPDATES),
}


def check_at_least(where: str, value: int | float, lowest: int | float) -> None:
    """Raise ValueError naming `where` if `value` is below `lowest`."""
    if value < lowest:
        count = type(lowest) is int  # counts: 1 is "positive", 0 "not negative"; a float bound is written out
        rule = ("be positive" if count and lowest == POSITIVE else "not be negative" if count and lowest == NON_NEGATIVE
                else f"be at least {lowest}")
        raise ValueError(f"{where} must {rule}, got {value!r}")


def check_at_most(where: str, value: int | float, limit: int | float) -> None:
    """Raise ValueError naming `where` if `value` exceeds `limit`."""
    if value > limit:
        raise ValueError(f"{where} is {value:,}, more than the limit {limit:,} (see pipelines/limits.py)")


def _value_at(cfg, key: str):
    value = cfg
    for part in key.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


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
    """Every bound of a `PipelineConfig` (its sections included): `BOUNDS`, the counts of games and
    seeds, and the iterations the budget makes; one ValueError naming the key."""
    for where, (lowest, highest) in BOUNDS.items():
        value = _value_at(cfg, where)
        if value is None:  # an optional setting left unset (prefill.updates) or an absent section (pretrain)
            continue
        check_at_least(where, value, lowest)
        if highest is not None:
            check_at_most(where, value, highest)
    check_at_most("frames_budget", cfg.frames_budget, MAX_STEPS * max(1, cfg.action_repeat))
    check_at_most("games (count)", len(cfg.games), MAX_GAMES)
    check_at_most("seeds (count)", len(cfg.seeds), MAX_SEEDS)
    iterations = planned_iterations(cfg)
    if iterations > MAX_ITERATIONS:
        raise ValueError(f"frames_budget {cfg.frames_budget:,} in steps_per_iteration {cfg.steps_per_iteration:,} "
                         f"makes {iterations:,} iterations, more than the limit {MAX_ITERATIONS:,} "
                         "(see pipelines/limits.py); collect more steps per iteration")
