"""Attacks on the workflow around the stages (issue 16): a dry run that rewrote the configuration a
live run reads, two workflows on one results folder, YAML bombs and non-finite settings, and a
collect stuck on the store of a superseded policy. Real Snakemake runs at tiny sizes."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dreamer_pipeline.pipelines.cli import main

ROOT = Path(__file__).resolve().parents[2]


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=workdir)


def tiny(**changes) -> dict:
    data = {
        "games": ["pong"], "seeds": [0], "variant": "attack", "frames_budget": 800, "steps_per_iteration": 100,
        "train_every": 50, "iterations": 2, "replay_steps": 100000, "prefill": {"name": "random-attack", "steps": 60},
        "train": {"batch_size": 2, "sequence_length": 8, "checkpoint_every": 5, "video_sequences": 1,
                  "device": "cpu", "torch_threads": 1, "loader_workers": 0},
        "evaluate": {"episodes": 1, "max_steps": 50}, "env": {"max_episode_steps": 30}, "agent": {"preset": "debug"},
    }
    data.update(changes)
    return data


def write(folder: Path, name: str, data) -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


PREFILL = "results/datasets/pong/random-attack.json"  # the cheapest real job of the workflow


# ----------------------------------------------------------------------------------------------
# The configuration snapshot stages read

def test_a_dry_run_with_another_config_neither_writes_nor_changes_the_live_snapshot(tmp_path):
    """Attack 4: `snakemake -n` with another config file rewrote results/configs/{variant}.yaml,
    and the live run's next evaluation read `max_steps: 7` from it instead of 50."""
    live = write(tmp_path, "live.yaml", tiny())
    result = snakemake(tmp_path, "--cores", "1", PREFILL, "--configfile", str(live))
    assert result.returncode == 0, result.stderr[-3000:]
    snapshot = tmp_path / "results/configs/attack.yaml"
    before = snapshot.read_text()
    assert yaml.safe_load(before)["evaluate"]["max_steps"] == 50
    other = write(tmp_path, "dry.yaml", tiny(evaluate={"episodes": 1, "max_steps": 7}))
    for flags in (["-n"], ["--lint"]):
        result = snakemake(tmp_path, *flags, "--cores", "1", "train_all", "--configfile", str(other))
        assert snapshot.read_text() == before, flags
    result = snakemake(tmp_path, "-n", "--cores", "1", "train_all", "--configfile", str(other))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "variant 'attack' already has a configuration" in result.stderr
    assert "evaluate.max_steps: 50 in the snapshot, 7 now" in result.stderr
    # more seeds and another device shape no existing output: planned, and still nothing written
    more = write(tmp_path, "more.yaml", tiny(seeds=[0, 1]))
    result = snakemake(tmp_path, "-n", "--cores", "1", "train_all", "--configfile", str(more))
    assert result.returncode == 0, result.stderr[-3000:]
    assert snapshot.read_text() == before


def test_a_shared_prefill_or_pretrained_model_of_other_settings_is_not_reused(tmp_path):
    """Beyond the issue: the shared prefill store and pretrained world model are built once for
    every variant naming them; a variant asking for other settings under the same name silently
    got the old ones (their markers exist, and rerun triggers are mtimes)."""
    from dreamer_pipeline.pipelines.config import config_from_mapping, dump_config

    live = write(tmp_path, "live.yaml", tiny())
    result = snakemake(tmp_path, "--cores", "1", PREFILL, "--configfile", str(live))
    assert result.returncode == 0, result.stderr[-3000:]
    longer = write(tmp_path, "longer.yaml", tiny(variant="longer", prefill={"name": "random-attack", "steps": 90}))
    result = snakemake(tmp_path, "-n", "--cores", "1", "train_all", "--configfile", str(longer))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("the prefill store results/datasets/pong/random-attack.zarr was built with other settings "
            "(prefill.steps: 60 there, 90 here") in result.stderr and "choose another prefill.name" in result.stderr
    pretrain = {"name": "rf", "datasets": ["random-attack"], "updates": 2}
    made = tmp_path / "results/pretrained/pong/rf"
    made.mkdir(parents=True)  # what pretrain-world-model writes beside its checkpoint
    (made / "config.yaml").write_text(dump_config(config_from_mapping(tiny(pretrain=pretrain))))
    again = write(tmp_path, "again.yaml", tiny(variant="again", pretrain={**pretrain, "updates": 5}))
    result = snakemake(tmp_path, "-n", "--cores", "1", "train_all", "--configfile", str(again))
    assert result.returncode == 1 and "pretrain.updates: 2 there, 5 here" in result.stderr, result.stderr[-2000:]
    same = write(tmp_path, "same.yaml", tiny(variant="same", seeds=[1], pretrain=pretrain))
    assert snakemake(tmp_path, "-n", "--cores", "1", "train_all", "--configfile", str(same)).returncode == 0


def test_planning_writes_nothing(tmp_path):
    config = write(tmp_path, "c.yaml", tiny())
    result = snakemake(tmp_path, "-n", "--cores", "1", "train_all", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "results").exists()


# ----------------------------------------------------------------------------------------------
# One owner per results folder

HOLD = """
import sys, time
from dreamer_pipeline.pipelines.results_lock import ResultsLock
ResultsLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_lock(results: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(results), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_workflow_on_the_same_results_folder_is_refused(tmp_path):
    """Attack 7: two snakemake runs from two working folders on one results folder ran the same
    jobs at once (one deleted the other's marker; metrics rows were duplicated)."""
    results = tmp_path / "shared-results"
    config = write(tmp_path, "c.yaml", tiny(paths={"results": str(results)}))
    other_workdir = tmp_path / "second"
    other_workdir.mkdir()
    holder = hold_lock(results, 120)  # the first workflow, running
    try:
        result = snakemake(other_workdir, "--cores", "1", str(results / "datasets/pong/random-attack.json"),
                           "--configfile", str(config))
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"results folder {results} is in use by another workflow" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (results / "datasets").exists()  # no job ran
    assert not any((other_workdir / ".snakemake/locks").glob("*"))  # Snakemake's own lock was released
    # the first workflow was killed: its lock is taken over, and the run goes ahead
    result = snakemake(other_workdir, "--cores", "1", str(results / "datasets/pong/random-attack.json"),
                       "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (results / ".workflow.lock").exists()  # released at the end


def test_the_lock_of_a_killed_workflow_is_taken_over(tmp_path):
    from dreamer_pipeline.pipelines.results_lock import ResultsLock, StaleResultsLockWarning

    holder = hold_lock(tmp_path, 120)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / ".workflow.lock").exists()
    with pytest.warns(StaleResultsLockWarning, match="a workflow that is gone"):
        lock = ResultsLock(tmp_path).acquire()
    lock.release()
    assert not (tmp_path / ".workflow.lock").exists()


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_planted_lock_link_is_never_written_through(tmp_path, link):
    from dreamer_pipeline.pipelines.results_lock import ResultsLock, ResultsLockedError

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    results = tmp_path / "results"
    results.mkdir()
    (os.symlink if link == "symlink" else os.link)(victim, results / ".workflow.lock")
    with pytest.raises(ResultsLockedError, match="symbolic link|one link"):
        ResultsLock(results).acquire()
    assert victim.read_text() == "precious\n"


# ----------------------------------------------------------------------------------------------
# Configuration bombs and non-finite values

def alias_bomb(levels: int) -> str:
    lines = ['x0: &x0 ["a", "a", "a", "a", "a", "a", "a", "a", "a", "a"]']
    lines += [f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\ngames: *x{levels - 1}\n"


def deep_mapping(levels: int) -> str:
    return "env: " + "{a: " * levels + "1" + "}" * levels + "\n"


@pytest.mark.parametrize("text, problem", [
    (alias_bomb(7), "a YAML alias"),  # 10 million strings; the 9 and 10 levels are refused the same way
    (deep_mapping(100), "nested more than 32 levels deep"),
    (yaml.safe_dump(tiny(prefill={"name": 12345})), "prefill.name: expected a string, got 12345 (int)"),
])
def test_snakemake_refuses_bombs_fast_and_keeps_file_types(tmp_path, text, problem):
    """Attack 8: a 9-level alias bomb took 31 s and 2.5 GB through Snakemake, 10 levels a
    MemoryError; `prefill.name: 12345` passed Snakemake (file values were typed as if from
    --config) but not check-config."""
    config = write(tmp_path, "bomb.yaml", text)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = snakemake(tmp_path, "-n", "--cores", "1", "train_all", "--configfile", str(config), timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 1 and "Invalid configuration" in result.stderr and problem in result.stderr, \
        result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime < 15  # CPU seconds: load-proof


def test_command_line_values_are_still_typed(tmp_path):
    config = write(tmp_path, "c.yaml", tiny())
    result = snakemake(tmp_path, "-n", "--cores", "1", "train_all", "--configfile", str(config),
                       "--config", "prefill={name: 12345}", "seeds=[0,1]")
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("text, problem", [
    (alias_bomb(3), "YAML anchors (&x0) are not allowed"),
    ("base: &b {steps: 10}\nprefill: *b\n", "YAML anchors (&b) are not allowed"),
    (deep_mapping(5000), "nested more than 32 levels deep"),
    ("loop: {growth: .inf}\n", "loop.growth: expected a finite number, got inf"),
    ("agent: {overrides: {world_model: {kl_scale: .nan}}}\n", "kl_scale: expected a finite number, got nan"),
    ("train: {batch_size: .inf}\n", "train.batch_size: expected int, got inf"),
])
def test_check_config_refuses_bombs_and_non_finite_numbers_with_one_error(tmp_path, text, problem):
    """Attacks 8 and tracebacks: mappings 5,000 deep, `loop.growth: .inf` (OverflowError) were
    tracebacks; `kl_scale: .nan` was accepted."""
    result = CliRunner().invoke(main, ["check-config", str(write(tmp_path, "c.yaml", text))])
    assert result.exit_code == 2 and problem in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_the_papers_protocol_on_the_cpu_gets_a_time_warning(tmp_path):
    """Attack (low): 200M frames planned on a 2-core CPU gave no warning."""
    result = CliRunner().invoke(main, ["check-config", str(write(tmp_path, "c.yaml", {"train": {"device": "cpu"}}))])
    assert result.exit_code == 0, result.output
    assert "warning: training on the CPU: 3,125,000 updates" in result.output and "days" in result.output
    quiet = CliRunner().invoke(main, ["check-config", str(ROOT / "config/debug.yaml")])
    assert "warning" not in quiet.output


def test_watch_errors_are_one_line(tmp_path):
    """Attack: `watch` printed a multi-line "Error:" (usage text and all)."""
    from factories import make_store

    store = make_store(tmp_path / "replay.zarr", [20, 24])
    out = tmp_path / "iter0000/world_model.pt"
    config = yaml.safe_load((ROOT / "config/debug.yaml").read_text())
    config["train"].update(batch_size=2, sequence_length=8)
    config["paths"] = {"results": str(tmp_path / "results")}
    trained = CliRunner().invoke(main, ["train-world-model", "--config", str(write(tmp_path, "c.yaml", config)),
                                        "--game", "pong", "--updates", "1", "--out", str(out), str(store)])
    assert trained.exit_code == 0, trained.output
    for args in ([], ["--game", "pongg"]):  # the stored configuration names two games; a misspelt game
        result = subprocess.run([sys.executable, "-m", "dreamer_pipeline.pipelines.cli", "watch", str(out),
                                 "--out", str(tmp_path / "w.mp4"), *args], capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and result.stderr.startswith("error: "), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
