"""benchmarks/gpu_learning.sh --dry-run: the GPU learning script end to end on the CPU (issue 15).

The same script as on the GPU machine (temporary site folder, the `dreamer-pipeline` shim, the
real Snakefile on config/gpu_boxing.yaml, random play beside it, the table, the planned wall
time), at debug sizes with this environment's packages. The table must hold a row per
evaluation, every column, and numbers that parse.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ["frames", "iteration", "updates/s", "agent steps/s", "greedy return (95% CI)", "episodes",
           "random return (95% CI)", "DreamerV2 published"]
INTERVAL = re.compile(r"^(-?\d+\.\d) \[(-?\d+\.\d|nan), (-?\d+\.\d|nan)\]$")


def table_rows(output: str) -> list[list[str]]:
    lines = [line for line in output.splitlines() if line.startswith("|")]
    assert lines, f"no table in the output:\n{output}"
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == COLUMNS
    assert set(lines[1].replace("|", "")) == {"-"}
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def interval(text: str) -> tuple[float, float, float]:
    match = INTERVAL.match(text)
    assert match, f"not 'mean [low, high]': {text!r}"
    return tuple(float(value) for value in match.groups())


def test_the_time_limit_stops_the_whole_process_group(tmp_path):
    """At the deadline Snakemake and every job it started (here: a shell and its sleeping child)
    are stopped, so the table can be printed in time and nothing runs on."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_learning import run_snakemake

    pid_file = tmp_path / "child.pid"
    command = ["bash", "-c", f"sleep 300 & echo $! > {pid_file}; wait"]
    started = time.time()
    code, stopped = run_snakemake(command, tmp_path / "log", deadline=time.time() + 3, on_poll=lambda: None)
    assert stopped and code is not None and code != 0
    assert time.time() - started < 20
    status = Path(f"/proc/{int(pid_file.read_text())}/status")
    time.sleep(0.5)
    # gone, or a zombie waiting for its new parent to reap it: either way no longer running
    assert not status.exists() or "State:\tZ" in status.read_text()


@pytest.mark.slow
def test_dry_run_prints_the_table(tmp_path):
    out = tmp_path / "results"
    env = dict(os.environ, PYTHON=sys.executable, WHEELS=str(tmp_path / "no-wheels"))
    run = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_learning.sh"), "--dry-run", "--out", str(out)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=580)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output

    rows = table_rows(run.stdout)
    # the dry run's plan: iteration 0 on the 200-step prefill, online iterations of 100 and 200 steps
    assert [int(row[1]) for row in rows] == [0, 1, 2], output
    frames = [int(row[0]) for row in rows]
    assert frames == sorted(frames) and frames[0] >= 800
    for row in rows:
        assert len(row) == len(COLUMNS)
        assert float(row[2]) > 0 and float(row[3]) > 0  # updates/s, agent steps/s: measured, positive
        mean, low, high = interval(row[4])
        assert low <= mean <= high
        assert int(row[5]) == 3  # evaluate.episodes at the dry run's size
        random_mean, random_low, random_high = interval(row[6])
        assert random_low <= random_mean <= random_high
        assert row[7] == "-" or float(row[7]) >= 0  # the published curve starts at 1M frames
    assert len({row[6] for row in rows}) == 1  # one random play, measured once in the run

    planned = re.search(r"planned wall time of a 200M-frame run at this run's rates: (\d+\.\d) h", run.stdout)
    assert planned and float(planned.group(1)) > 0, output
    assert "Snakemake finished" in run.stdout

    result = json.loads((out / "gpu_learning.json").read_text())
    assert [point["iteration"] for point in result["curve"]] == [0, 1, 2]
    assert len(result["random"]["returns"]) == 20
    # a dry run writes only under its own folder, under its own names
    assert (out / "datasets" / "boxing" / "random-dry.json").exists()
    assert (out / "runs" / "boxing" / "gpu-dry" / "seed0" / "iter0002" / "eval.json").exists()
    assert not (ROOT / "results" / "gpu_learning").exists() or not (
        ROOT / "results" / "gpu_learning" / "runs" / "boxing" / "gpu-dry").exists()
