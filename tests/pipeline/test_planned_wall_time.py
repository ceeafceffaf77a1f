"""benchmarks/planned_wall_time.py against hand calculations (issue 15: a 200M-frame run planned
from the measured pipeline's rates)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from planned_wall_time import (  # noqa: E402
    IterationMeasure, PlannedIteration, Rates, measured_rates, plan_of, planned_seconds,
)


def test_rates_pool_the_online_iterations():
    measures = [
        IterationMeasure(0, updates=1000, update_seconds=10.0, agent_steps=0, collect_seconds=0.0, wall_seconds=60.0),
        IterationMeasure(1, updates=300, update_seconds=10.0, agent_steps=6000, collect_seconds=20.0, wall_seconds=35.0),
        IterationMeasure(2, updates=900, update_seconds=20.0, agent_steps=14000, collect_seconds=20.0, wall_seconds=45.0),
    ]
    rates = measured_rates(measures, prefill_steps=50_000, prefill_seconds=25.0)
    # by hand: (300 + 900) / (10 + 20) = 40 updates/s; (6000 + 14000) / (20 + 20) = 500 steps/s;
    # iteration 1: 35 - max(300/40 = 7.5, 6000/500 = 12) = 23; iteration 2: 45 - max(22.5, 28) = 17
    assert rates.updates_per_s == pytest.approx(40.0)
    assert rates.agent_steps_per_s == pytest.approx(500.0)
    assert rates.overhead_s == pytest.approx(20.0)
    assert rates.prefill_steps_per_s == pytest.approx(2000.0)


def test_rates_need_an_online_iteration():
    only_prefill = [IterationMeasure(0, 1000, 10.0, 0, 0.0, 60.0)]
    with pytest.raises(ValueError, match="online iteration"):
        measured_rates(only_prefill, prefill_steps=50_000, prefill_seconds=25.0)


def test_planned_seconds_by_hand():
    rates = Rates(updates_per_s=50.0, agent_steps_per_s=1000.0, overhead_s=20.0, prefill_steps_per_s=5000.0)
    iterations = [PlannedIteration(1250, 0), PlannedIteration(625, 10_000), PlannedIteration(1250, 25_000)]
    # prefill 20000 / 5000 = 4 s; iteration 0: 20 + 1250/50 = 45; iteration 1: 20 + max(625/50 = 12.5,
    # 10000/1000 = 10) = 32.5; iteration 2: 20 + max(25, 25) = 45
    assert planned_seconds(iterations, 20_000, rates) == pytest.approx(4 + 45 + 32.5 + 45)
    acting_bound = [*iterations[:2], PlannedIteration(1250, 30_000)]
    assert planned_seconds(acting_bound, 20_000, rates) == pytest.approx(4 + 45 + 32.5 + 50)  # 20 + 30000/1000


def test_plan_of_the_gpu_config_at_200M_frames():
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "config/gpu_boxing.yaml").read_text())
    iterations, prefill = plan_of(config, 200_000_000)
    # 50M agent steps: 50k prefill, then 5k, 10k, ..., 160k (315k), then 250k-step iterations
    assert prefill == 50_000
    assert sum(it.agent_steps for it in iterations) == 50_000_000 - 50_000
    assert [it.agent_steps for it in iterations[:8]] == [0, 5000, 10_000, 20_000, 40_000, 80_000, 160_000, 250_000]
    assert iterations[0].updates == 50_000 // 16
    assert sum(it.updates for it in iterations) == pytest.approx(50_000_000 / 16, abs=len(iterations))
    # (50M - 50k - 315k) / 250k = 198.54: 198 full iterations and a last of 135k steps
    assert len(iterations) == 1 + 6 + 198 + 1
    assert iterations[-1].agent_steps == 135_000
