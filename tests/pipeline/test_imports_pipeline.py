"""Imported datasets train in the debug pipeline through `datasets:`: a DQN-replay file set and a
Minari Atari dataset (written by minari's DataCollector), both for Pong, join iteration 0's replay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dqn_replay_files import LoggedReplayBuffer, play

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_dqn_replay_and_minari_atari_imports_train_through_datasets(tmp_path, monkeypatch):
    pytest.importorskip("jax", reason="minari's DataCollector needs minari[create]")
    from dreamer_pipeline.datasets.store import ExperienceStore
    from dreamer_pipeline.pipelines.cli import main
    from test_minari import collect_minari_atari

    work = tmp_path / "work"
    datasets = work / "results/datasets/pong"
    buffer = LoggedReplayBuffer(tmp_path / "dqn/Pong/1/replay_logs", capacity=128)
    play(buffer, [30, 25, 40, 22, 35, 28, 33, 26, 31])
    runner = CliRunner()
    result = runner.invoke(main, ["import-dqn-replay", str(buffer.folder), str(datasets / "dqn-replay.zarr"),
                                  "--game", "pong", "--no-progress"])
    assert result.exit_code == 0, result.output
    _, minari_dir = collect_minari_atari(tmp_path / "minari", monkeypatch, jpeg=True, episodes=2, steps=40)
    result = runner.invoke(main, ["import-minari-atari", str(minari_dir), str(datasets / "minari-expert.zarr"),
                                  "--no-progress"])
    assert result.exit_code == 0, result.output
    imported = sum(ExperienceStore(datasets / f"{name}.zarr").num_steps for name in ("dqn-replay", "minari-expert"))

    config = yaml.safe_load((ROOT / "config/debug.yaml").read_text())
    config.update(games=["pong"], seeds=[0], pretrain=None, datasets=["dqn-replay", "minari-expert"])
    config_path = tmp_path / "imports.yaml"
    config_path.write_text(yaml.safe_dump(config))
    target = "results/runs/pong/debug/seed0/iter0000/eval.json"
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "2",
                          target, "--configfile", str(config_path)], capture_output=True, text=True, timeout=800)
    logs = "\n".join(p.read_text()[-2000:] for p in sorted((work / "results/logs").rglob("*.log")))
    assert run.returncode == 0, run.stderr[-4000:] + logs[-6000:]
    lines = [json.loads(line) for line in (work / "results/runs/pong/debug/seed0/metrics.jsonl").read_text().splitlines()]
    [replay] = [line for line in lines if line["stage"] == "train_world_model" and "replay/steps" in line]
    assert replay["replay/steps"] >= config["prefill"]["steps"] + imported  # both imports joined the replay
    assert any("wm/loss" in line for line in lines)
    assert (work / "results/runs/pong/debug/seed0/iter0000/actor_critic.pt").is_file()
