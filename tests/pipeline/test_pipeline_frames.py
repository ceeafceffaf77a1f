"""The frames axis counts every step played: a real online run through the Snakefile, counted from its stores.

Catch (`catch-1`: 20-step episodes) with the tiny `debug` agent: a random prefill of 30 steps on 4
environments (the plan rounds it to 32, whole vector steps), then two online iterations whose two
collectors of 3 environments each stop mid-episode. Every iteration's eval.json must report as
agent steps exactly the steps the run's collectors took, counted here from what the stores hold
(every stored step but each episode's reset step) and from the collectors' own counters, and as
frames those steps times the action repeat. Before the collectors stopped at their targets and kept
the episodes still running (as truncated), they took two to three times the planned steps and
threw a third of them away, while eval.json reported the plan.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GAME = "catch-1"


def write_config(tmp_path: Path) -> Path:
    config = {
        "games": [GAME], "seeds": [0], "variant": "frames-test",
        "frames_budget": 4 * 150, "steps_per_iteration": 80, "train_every": 8, "collectors": 2,
        "replay_steps": 100_000, "interleaved": True,
        "loop": {"online": True, "first_iteration_steps": 40, "growth": 2.0, "publish_every": 2, "lead_updates": 2},
        "prefill": {"name": "random30", "steps": 30, "envs": 4, "updates": 2},
        "collect": {"envs": 3, "threads": 1},
        "train": {"batch_size": 2, "sequence_length": 4, "checkpoint_every": 5, "video_sequences": 1,
                  "device": "cpu", "torch_threads": 1, "loader_workers": 0},
        "evaluate": {"episodes": 2, "envs": 2, "device": "cpu", "video": False},
        "agent": {"preset": "debug"},
    }
    path = tmp_path / "frames.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def agent_steps_in(store_path: Path) -> int:
    """Actions stored: every step but the first of each episode (the reset image no action led to)."""
    from dreamer_pipeline.datasets.store import ExperienceStore

    return int((~ExperienceStore(store_path).read("is_first")).sum())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_eval_frames_are_the_steps_the_collectors_took(tmp_path):
    from dreamer_pipeline.datasets.store import ExperienceStore
    from dreamer_pipeline.pipelines.config import load_config

    config = write_config(tmp_path)
    cfg = load_config(config)
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
               "--cores", "2", "train_all", "--configfile", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=850)
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted((tmp_path / "results/logs").rglob("*.log")))
        pytest.fail(f"snakemake failed:\n{result.stderr[-5000:]}\n{logs[-10000:]}")
    results = tmp_path / "results"
    run = results / f"runs/{GAME}/frames-test/seed0"

    played = agent_steps_in(results / f"datasets/{GAME}/random30.zarr")
    assert played == 32  # 30 steps asked of 4 environments: 8 vector steps
    cut = 0
    evaluated = {}
    for k in (0, 1, 2):
        folder = run / f"iter{k:04d}"
        for shard in (0, 1) if k else ():
            store_path = folder / f"experience/shard{shard}.zarr"
            steps = agent_steps_in(store_path)
            counter = json.loads((folder / f"online/collector{shard}.json").read_text())
            assert counter["finished"] and counter["steps"] == steps == counter["target"]
            played += steps
            store = ExperienceStore(store_path)
            last = store.read("is_last") & ~store.read("is_terminal")  # Catch ends terminal: these were cut
            cut += int(last.sum())
            run_records = store.attrs["runs"]
            assert sum(len(r["cut_episodes"]) for r in run_records) == int(last.sum())
            assert sum(r["env_steps"] for r in run_records) == steps  # nothing taken was left out
        evaluation = json.loads((folder / "eval.json").read_text())
        assert evaluation["agent_steps"] == played, f"iteration {k}"
        assert evaluation["frames"] == played * cfg.action_repeat == played * 4
        evaluated[k] = evaluation["frames"]
    assert cut >= 4  # the episodes running at each collector's target were kept, not thrown away
    assert evaluated == {0: 4 * 32, 1: 4 * (32 + 42), 2: 4 * (32 + 42 + 78)}

    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for k, frames in evaluated.items():
        assert {line["frames"] for line in lines if line["stage"] == "evaluate" and line["iteration"] == k} == {frames}
    scores = json.loads((results / "scores/scores.json").read_text())
    (row,) = scores["raw_returns"]  # Catch has no human reference: the report gives its raw return
    assert row["game"] == GAME and row["frames"] == [evaluated[2]]
