"""The planned wall time of a long run (200M frames), from the rates a short real run measured.

The pipeline runs iteration after iteration; inside an online iteration the learner and the
collectors run at once, each held to the other by the replay ratio. So one iteration takes

    overhead + max(updates / updates_per_s, agent_steps / agent_steps_per_s)

where `overhead` is what the iteration spends outside its update loop and its collection (a
stage's process start, compile-cache load and graph capture, the collectors finishing their
episodes, the checkpoint, Snakemake's hand-over). Iteration 0 trains on the prefill and collects
nothing. The run is the random prefill plus the sum over the plan's iterations (`pipelines.schedule`).
Evaluations run beside the next iteration, off this path.

The rates come from the short run's own iterations (`IterationMeasure`, read by
benchmarks/gpu_learning.py from its metrics, stores and checkpoints):

- updates/s: the online iterations' updates over their update loops' seconds, pooled;
- agent steps/s: their steps over their collection's seconds, pooled;
- overhead: the mean over online iterations of (iteration wall time - the longer of the two);
- prefill steps/s: the prefill's steps over its seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class IterationMeasure:
    """One finished iteration of the measured run."""

    iteration: int
    updates: int  # gradient updates the iteration made
    update_seconds: float  # its update loop's wall time
    agent_steps: int  # agent steps its collectors took (0 for iteration 0)
    collect_seconds: float  # its collection's wall time (first collector start to last collector end)
    wall_seconds: float  # from the previous iteration's checkpoint to this one's


@dataclass(frozen=True)
class Rates:
    updates_per_s: float
    agent_steps_per_s: float
    overhead_s: float  # per iteration
    prefill_steps_per_s: float


@dataclass(frozen=True)
class PlannedIteration:
    updates: int
    agent_steps: int


def measured_rates(iterations: Sequence[IterationMeasure], prefill_steps: int, prefill_seconds: float) -> Rates:
    """Pooled rates over the online iterations (k >= 1); raises ValueError if there is none."""
    online = [m for m in iterations if m.iteration >= 1 and m.update_seconds > 0 and m.collect_seconds > 0]
    if not online:
        raise ValueError("no finished online iteration to measure rates from")
    if prefill_seconds <= 0:
        raise ValueError(f"the prefill's seconds must be positive, got {prefill_seconds!r}")
    updates_per_s = sum(m.updates for m in online) / sum(m.update_seconds for m in online)
    agent_steps_per_s = sum(m.agent_steps for m in online) / sum(m.collect_seconds for m in online)
    overheads = [m.wall_seconds - max(m.updates / updates_per_s, m.agent_steps / agent_steps_per_s) for m in online]
    overhead = max(0.0, sum(overheads) / len(overheads))
    return Rates(updates_per_s, agent_steps_per_s, overhead, prefill_steps / prefill_seconds)


def iteration_seconds(iteration: PlannedIteration, rates: Rates) -> float:
    return rates.overhead_s + max(iteration.updates / rates.updates_per_s,
                                  iteration.agent_steps / rates.agent_steps_per_s)


def planned_seconds(iterations: Sequence[PlannedIteration], prefill_steps: int, rates: Rates) -> float:
    """The prefill, then every iteration in turn."""
    return prefill_steps / rates.prefill_steps_per_s + sum(iteration_seconds(it, rates) for it in iterations)


def plan_of(config: dict, frames: int) -> tuple[list[PlannedIteration], int]:
    """The iterations (and prefill steps) of `config` (a pipeline configuration mapping) run to `frames`."""
    from dreamer_pipeline.pipelines.config import config_from_mapping
    from dreamer_pipeline.pipelines.schedule import plan

    cfg = config_from_mapping({**config, "frames_budget": int(frames)})
    return [PlannedIteration(it.updates, it.collect_steps) for it in plan(cfg)], cfg.prefill.steps


def describe(iterations: Sequence[PlannedIteration], prefill_steps: int, rates: Rates, frames: int) -> str:
    """One paragraph: the planned hours and where they go."""
    updates = sum(it.updates for it in iterations)
    steps = sum(it.agent_steps for it in iterations)
    total = planned_seconds(iterations, prefill_steps, rates)
    return (
        f"planned wall time of a {frames / 1e6:g}M-frame run at this run's rates: {total / 3600:.1f} h "
        f"({len(iterations)} iterations; {updates:,} updates at {rates.updates_per_s:.1f}/s = "
        f"{updates / rates.updates_per_s / 3600:.1f} h; {steps:,} agent steps at {rates.agent_steps_per_s:.0f}/s = "
        f"{steps / rates.agent_steps_per_s / 3600:.1f} h; overhead {rates.overhead_s:.0f} s per iteration = "
        f"{len(iterations) * rates.overhead_s / 3600:.1f} h; prefill {prefill_steps / rates.prefill_steps_per_s / 60:.1f} min)"
    )
