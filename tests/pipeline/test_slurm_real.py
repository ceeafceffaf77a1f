"""profiles/slurm on a real SLURM cluster: config/debug.yaml through `snakemake --profile
profiles/slurm`, every job submitted with sbatch, run by slurmd and collected by the executor
plugin, then the outputs and SLURM's own record of the jobs.

`.ci/run` sets up a single-node cluster with `.ci/slurm_setup.sh` where root or sudo allows; any
cluster whose `sinfo` answers and which has the profile's partitions (`cpu`, `gpu`) will do. The run
is cut to one game, one seed and iteration 0 (`--config`), seven sbatch jobs on both partitions, so
that it takes minutes: the cluster, not the learning, is under test here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config/debug.yaml"
OVERRIDES = ("games=[pong]", "seeds=[0]", "frames_budget=800")  # 800 frames = the 200-step prefill
# The rules that run as sbatch jobs (train_all is a local rule) and the partitions profiles/slurm
# puts them in.
PARTITIONS = {"prefill": "cpu", "pretrain_world_model": "gpu", "train_world_model": "gpu",
              "train_actor_critic": "gpu", "evaluate": "cpu", "scores": "cpu", "scores_all_variants": "cpu"}


def cluster_partitions() -> set[str] | None:
    """The partitions of an answering cluster with a node ready to run jobs, or None."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return None
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%R %T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None
    if result.returncode != 0:
        return None
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()]
    # a trailing `*` (not responding), `~` (powered off) or `#` (powering up) is not ready
    return {row[0] for row in rows if len(row) == 2 and row[1] in ("idle", "mixed", "allocated", "completing")}


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="the [slurm] extra is not installed")
    partitions = cluster_partitions()
    if partitions is None:
        pytest.skip("no SLURM cluster answers `sinfo` (as root, `bash .ci/slurm_setup.sh` starts a single-node one)")
    missing = set(PARTITIONS.values()) - partitions
    if missing:
        pytest.skip(f"the SLURM cluster has no ready node in partition(s) {sorted(missing)}, which profiles/slurm uses")
    workdir = tmp_path_factory.mktemp("slurm")  # on this machine: the single node shares it
    command = [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
        "--profile", str(ROOT / "profiles/slurm"),
        "--jobs", "2",                               # the cluster's node is declared larger than the machine
        "--slurm-status-command", "squeue",          # no accounting database: sacct has nothing to say
        "--slurm-init-seconds-before-status-checks", "1",
        "--seconds-between-status-checks", "1",  # snakemake polls every 10 s by default; the jobs are short
        "--slurm-keep-successful-logs",
        "train_all", "--configfile", str(CONFIG), "--config", *OVERRIDES,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted(workdir.rglob("*.log")) if p.is_file())
        pytest.fail(f"snakemake --profile profiles/slurm failed:\n{result.stderr[-6000:]}\n{logs[-12000:]}")
    return workdir, result.stdout + result.stderr


def submitted_jobs(output: str) -> dict[str, str]:
    """{SLURM job id: rule} from snakemake's log: each rule block, then its submission line."""
    jobs, rule = {}, None
    for line in output.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):", line):
            rule = match.group(1)
        elif match := re.search(r"submitted with SLURM jobid (\d+)", line):
            jobs[match.group(1)] = rule
    return jobs


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a few minutes on an idle 2-core machine
def test_slurm_profile_runs_the_debug_configuration(slurm_run):
    workdir, output = slurm_run
    jobs = submitted_jobs(output)
    # every non-local job went through sbatch, once
    assert sorted(jobs.values()) == sorted(PARTITIONS), output[-4000:]

    # SLURM's record: squeue keeps finished jobs for MinJobAge seconds (900 on the CI cluster)
    listing = subprocess.run(["squeue", "--states=all", "-h", "-j", ",".join(jobs), "-o", "%i %P %T"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    seen = {job: (partition, state) for job, partition, state in (line.split() for line in listing.splitlines())}
    assert set(seen) == set(jobs), f"squeue does not know every submitted job:\n{listing}"
    for job, rule in jobs.items():
        assert seen[job] == (PARTITIONS[rule], "COMPLETED"), (rule, seen[job])

    # the outputs the jobs made
    results = workdir / "results"
    assert (results / "datasets/pong/random-debug.zarr/zarr.json").is_file()
    assert (results / "pretrained/pong/reward-free/world_model.pt").stat().st_size > 0
    run = results / "runs/pong/debug/seed0/iter0000"
    for name in ("world_model.pt", "actor_critic.pt"):
        assert (run / name).stat().st_size > 0
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["policy"] == "greedy" and evaluation["iteration"] == 0 and evaluation["game"] == "pong"
    scores = json.loads((results / "scores/scores.json").read_text())
    assert scores["games"] == ["pong"] and [row["game"] for row in scores["per_game"]] == ["pong"]
    assert "pong" in (results / "scores/scores.md").read_text().lower()
