"""The iteration plan of a run: what each iteration collects, how many updates it makes, which
stores its replay reads, and how many frames the run has seen when it ends.

The paper's loop (Hafner et al. 2021) collects one agent step at a time and updates every 16 steps
after a 50k-step random prefill. The pipeline cuts that loop into iterations, each ending in a
checkpoint and an evaluation: iteration 0 trains on the prefill (`prefill.updates` updates), and
iteration k >= 1 collects steps with the newest actor and makes `steps / train_every` updates,
which keeps the paper's replay ratio. Iteration sizes start at `loop.first_iteration_steps` and
grow by `loop.growth` up to `steps_per_iteration`, so early iterations keep the acting policy
fresh and a 200M-frame run stays at about 200 iterations. The frame budget counts the prefill, so
a run ends at `frames_budget` (the last iteration collects the rest).

The planned steps are the steps the collectors take (pipelines/acting/collector.py): a collector
steps its environments together and stops at its target, so every target here is a whole number of
vector steps (a multiple of `collect.envs`, of `prefill.envs` for the prefill), rounded up where
the configuration's numbers are not. The frames each iteration reports (`steps_after` times the
action repeat) are then the frames the agent played, every step of every collector included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import PipelineConfig, budget_steps


@dataclass(frozen=True)
class Iteration:
    index: int
    collect_steps: int  # agent steps collected at the start of this iteration (0 for iteration 0)
    shard_steps: tuple[int, ...]  # how collect_steps split over the collector jobs
    updates: int  # gradient updates this iteration makes
    steps_after: int  # agent steps the run's collectors took up to this iteration's collection
    # (prefill included): the frames axis is steps_after * action_repeat

    @property
    def num_shards(self) -> int:
        return len(self.shard_steps)


def split_steps(total: int, parts: int, envs: int = 1) -> tuple[int, ...]:
    """`total` steps over at most `parts` collectors of `envs` environments each, as evenly as
    possible, none empty. Each part is a whole number of vector steps (a multiple of `envs`), so the
    parts add up to `total` rounded up to a multiple of `envs`."""
    vector_steps = whole_vector_steps(total, envs) // envs
    parts = max(1, min(parts, vector_steps))
    base, extra = divmod(vector_steps, parts)
    return tuple((base + (1 if j < extra else 0)) * envs for j in range(parts))


def whole_vector_steps(steps: int, envs: int) -> int:
    """`steps` rounded up to a multiple of `envs`: what a collector of `envs` environments takes."""
    return -(-steps // envs) * envs


def prefill_steps(cfg: PipelineConfig) -> int:
    """Agent steps the prefill collector takes for `prefill.steps` with `prefill.envs` environments."""
    return whole_vector_steps(cfg.prefill.steps, cfg.prefill.envs)


def iteration_size(cfg: PipelineConfig, k: int) -> int:
    """Agent steps iteration k >= 1 collects before the budget cuts it: the first size grown
    geometrically, capped at `steps_per_iteration`."""
    first = cfg.loop.first_iteration_steps or cfg.steps_per_iteration
    size = first * cfg.loop.growth ** min(k - 1, 64)  # finite: grown past any cap long before
    return int(min(cfg.steps_per_iteration, round(size)))


def plan(cfg: PipelineConfig) -> list[Iteration]:
    """Every iteration of one run, in order (the same for every game and seed)."""
    updates_of = lambda steps: max(1, steps // cfg.train_every)  # noqa: E731
    if cfg.offline:
        count = cfg.iterations or -(-budget_steps(cfg) // cfg.steps_per_iteration)
        return [Iteration(k, 0, (), updates_of(cfg.steps_per_iteration), 0) for k in range(count)]
    prefill = prefill_steps(cfg)
    first_updates = cfg.prefill.updates if cfg.prefill.updates is not None else updates_of(prefill)
    iterations = [Iteration(0, 0, (), first_updates, prefill)]
    remaining = max(0, budget_steps(cfg) - prefill)
    k = 1
    while (remaining > 0 and not cfg.iterations) or (cfg.iterations and k < cfg.iterations):
        size = iteration_size(cfg, k)
        steps = size if cfg.iterations else min(size, remaining)
        if not cfg.iterations and 0 < remaining - steps < max(cfg.train_every, cfg.collectors * cfg.collect.envs):
            steps = remaining  # no iteration too small for an update or a vector step per collector
        shards = split_steps(steps, cfg.collectors, cfg.collect.envs)
        steps = sum(shards)  # whole vector steps: what the collectors take
        before = iterations[-1].steps_after
        iterations.append(Iteration(k, steps, shards, updates_of(steps), before + steps))
        remaining -= steps
        k += 1
    return iterations


def replay_iterations(cfg: PipelineConfig, iterations: list[Iteration], k: int) -> tuple[bool, list[int]]:
    """Which of the run's own stores iteration k's replay can reach: (prefill?, [iterations]).

    The replay holds the most recent `replay_steps` steps (paper: 2M). Stores that lie entirely
    before that window are not inputs, so the DAG stays small over 200 iterations.
    """
    if cfg.offline:
        return False, []
    window_start = iterations[k].steps_after - cfg.replay_steps
    collected = [i for i in range(1, k + 1) if iterations[i].steps_after > window_start]
    return prefill_steps(cfg) > window_start, collected


SEED_LIMIT = 2**30  # ale-py takes int32 seeds; evaluation adds the environment index to its seed


def shard_seed(run_seed: int, iteration: int, shard: int) -> int:
    """A distinct, reproducible environment/policy seed for every collector job."""
    return int(np.random.SeedSequence([run_seed, iteration, shard]).generate_state(1)[0]) % SEED_LIMIT


def eval_seed(run_seed: int, iteration: int) -> int:
    """The seed of iteration k's evaluation environments (independent of the collectors')."""
    return int(np.random.SeedSequence([run_seed, iteration, 10**6]).generate_state(1)[0]) % SEED_LIMIT
