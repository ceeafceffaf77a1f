"""The Control Suite through the real Snakefile (config/dmc_debug.yaml), then its artefacts.

cartpole_swingup from pixels: a random prefill into a version-2 store (float32 action vectors, RGB
images, the action space in the provenance), world-model pretraining updates, one online iteration
whose collectors act with the learner's continuous actor, greedy evaluation and the score report on
raw returns beside DreamerV2's published curve.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dm_control", reason="the Control Suite needs the dmc extra: pip install -e '.[dmc]'")

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config/dmc_debug.yaml"
TASK = "cartpole_swingup"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_dmc_debug_pipeline_end_to_end(tmp_path):
    from dreamer_pipeline.datasets.store import ExperienceStore
    from dreamer_pipeline.pipelines.agent_io import read_payload
    from dreamer_pipeline.pipelines.scores.inputs import read_eval_json

    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
               "--cores", "2", "train_all", "--configfile", str(CONFIG)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1100)
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted((tmp_path / "results/logs").rglob("*.log")))
        pytest.fail(f"snakemake failed:\n{result.stderr[-5000:]}\n{logs[-10000:]}")
    results = tmp_path / "results"

    prefill = ExperienceStore(results / f"datasets/{TASK}/random-debug.zarr")
    assert prefill.format_version == 2 and prefill.image_shape == (64, 64, 3)
    assert prefill.attrs["action_space"] == {"kind": "continuous", "shape": [1], "low": [-1.0], "high": [1.0]}
    assert prefill.attrs["env"]["action_repeat"] == 2 and prefill.attrs["env"]["max_episode_steps"] == 50
    actions = prefill.read("action")
    assert actions.dtype == np.float32 and actions.shape == (prefill.num_steps, 1)
    assert np.all(np.abs(actions) <= 1.0) and actions.std() > 0.3  # uniform in [-1, 1]: std 0.58
    assert not prefill.read("is_terminal").any()  # Control Suite episodes end in truncation only
    images = prefill.read("image", 0, 50)
    assert images.std(axis=(0, 1, 2)).min() > 0 and not np.array_equal(images[..., 0], images[..., 1])  # RGB

    run = results / f"runs/{TASK}/dmc-debug/seed0"
    collected = ExperienceStore(run / "iter0001/experience/shard0.zarr")
    assert collected.attrs["policy"]["kind"] == "online" and collected.num_steps >= 100
    agent = read_payload(run / "iter0001/agent.pt")
    assert agent["action_space"]["kind"] == "continuous"
    for iteration in (0, 1):
        record = read_eval_json(run / f"iter{iteration:04d}/eval.json")
        assert record.game == TASK and np.isfinite(record.score)
    evaluation = json.loads((run / "iter0001/eval.json").read_text())
    assert evaluation["frames"] == 400 and evaluation["agent_steps"] == 200  # action repeat 2
    report = json.loads((results / "scores/scores.json").read_text())
    assert TASK in json.dumps(report) and (results / "scores/scores.md").read_text().count(TASK) >= 1
