"""Resilience: kill snakemake (or a stage) mid-way, rerun, and check that it continues.

Nothing committed is collected again and no finished training is redone: a killed collector
resumes its store, a killed training stage resumes from its partial checkpoint, and finished jobs
are not rerun.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((ROOT / "config/debug.yaml").read_text())
    data.update(games=["pong"], seeds=[0], pretrain=None)
    data.update(changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start_snakemake(workdir: Path, config: Path, target: str, log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2",
        "--rerun-incomplete", target, "--rerun-triggers", "mtime", "--configfile", str(config),
    ]
    # A suite started in the background (nohup, CI runners) ignores SIGINT, and children inherit
    # that; restore the default so the Ctrl-C below reaches snakemake and its jobs.
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(condition, timeout: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"snakemake ended (rc {process.returncode}) before the kill point:\n{log.read_text()[-4000:]}")
        if time.time() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"kill point not reached in {timeout}s:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def interrupt(process: subprocess.Popen) -> None:
    """Ctrl-C in a terminal: SIGINT to snakemake and every job in its process group."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def committed_steps(store: Path) -> int:
    from dreamer_pipeline.datasets.store import ExperienceStore

    try:
        return ExperienceStore(store).num_steps
    except Exception:  # noqa: BLE001 - not created yet
        return 0


@pytest.mark.slow
def test_killed_prefill_resumes_its_store(tmp_path):
    from dreamer_pipeline.datasets.store import ExperienceStore

    config = write_config(tmp_path, prefill={"name": "random-big", "steps": 1500})
    workdir = tmp_path / "work"
    store = workdir / "results/datasets/pong/random-big.zarr"
    marker = "results/datasets/pong/random-big.json"
    log = tmp_path / "first.log"
    process = start_snakemake(workdir, config, marker, log)
    wait_for(lambda: committed_steps(store) >= 300, 120, process, log)
    interrupt(process)
    killed_at = committed_steps(store)
    assert killed_at >= 300 and not (workdir / marker).exists(), log.read_text()[-3000:]

    second = start_snakemake(workdir, config, marker, tmp_path / "second.log")
    assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-4000:]
    runs = ExperienceStore(store).attrs["runs"]
    assert len(runs) == 2 and runs[1]["steps_before"] >= killed_at  # nothing committed was collected again
    assert ExperienceStore(store).num_steps >= 1500 and (workdir / marker).exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_killed_training_resumes_mid_stage_and_finished_jobs_are_not_redone(tmp_path):
    # iteration 0 makes 200 / 2 = 100 world-model updates, checkpointed every 5
    config = write_config(tmp_path, train_every=2, steps_per_iteration=200, iterations=1)
    workdir = tmp_path / "work"
    iteration = workdir / "results/runs/pong/debug/seed0/iter0000"
    target = "results/runs/pong/debug/seed0/iter0000/actor_critic.pt"
    marker = workdir / "results/datasets/pong/random-debug.json"
    log = tmp_path / "first.log"
    process = start_snakemake(workdir, config, target, log)
    wait_for(lambda: (iteration / "world_model.partial.pt").exists(), 240, process, log)
    interrupt(process)
    assert not (iteration / "world_model.pt").exists()
    assert (iteration / "world_model.partial.pt").exists()
    marker_mtime = marker.stat().st_mtime_ns

    second_log = tmp_path / "second.log"
    second = start_snakemake(workdir, config, target, second_log)
    assert second.wait(timeout=400) == 0, second_log.read_text()[-4000:]
    assert marker.stat().st_mtime_ns == marker_mtime  # the finished prefill was not redone
    assert "rule prefill" not in second_log.read_text()
    stage_log = (workdir / "results/logs/train_world_model/pong/debug/seed0/iter0000.log").read_text()
    assert "resuming from" in stage_log
    assert (iteration / "actor_critic.pt").exists()

    from dreamer_pipeline.pipelines.tracking.metrics import read_metrics

    lines = [r for r in read_metrics(iteration.parent / "metrics.jsonl") if r["stage"] == "train_world_model"]
    assert max(r["updates"] for r in lines) == 100
    resumed_at = int(stage_log.split("resuming from")[1].split("after ")[1].split("/")[0])
    assert resumed_at >= 5  # continued from the partial checkpoint, not from update 0
