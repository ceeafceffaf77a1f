"""Attacks on the pipeline (issue 9): shell injection through paths, absurd settings, errors from
inside the stages, and a non-finite loss. Each ends in one clear error (or a correct run) with
nothing lost and nothing run that the user did not ask for."""

from __future__ import annotations

import resource
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from factories import make_store

from dreamer_pipeline.pipelines.cli import main

ROOT = Path(__file__).resolve().parents[2]
# Spaces, both quotes, command substitution, backticks and a command separator in one path.
HOSTILE = "sp ace/it's \"q\" $(touch PWNED) `touch PWNED2` ;touch PWNED3"


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=workdir)


def tiny_config(**changes) -> dict:
    """One game, one seed, two tiny iterations of the debug agent, no pretraining."""
    data = {
        "games": ["pong"], "seeds": [0], "variant": "attack", "frames_budget": 800, "steps_per_iteration": 100,
        "train_every": 50, "iterations": 2, "interleaved": True, "replay_steps": 100000,
        "prefill": {"name": "random-attack", "steps": 100},
        "train": {"batch_size": 2, "sequence_length": 8, "checkpoint_every": 5, "video_sequences": 1,
                  "device": "cpu", "torch_threads": 1, "loader_workers": 0},
        "evaluate": {"episodes": 1, "max_steps": 20}, "env": {"max_episode_steps": 30}, "agent": {"preset": "debug"},
        "paths": {"results": HOSTILE},
    }
    for key, value in changes.items():
        data[key] = value
    return data


def write_config(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "attack.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def assert_no_injection(root: Path) -> None:
    assert not [p for p in root.rglob("PWNED*")], "a shell command ran from a path"
    assert not list(Path.cwd().glob("PWNED*"))


def shell_commands(output: str) -> list[str]:
    commands = [line.split("Shell command: ", 1)[1] for line in output.splitlines() if "Shell command: " in line]
    return [command for command in commands if command != "None"]  # train_all runs nothing


@pytest.mark.parametrize("mode, expected", [
    ({"interleaved": False}, {"prefill", "pretrain-world-model", "train-world-model", "train-actor-critic",
                              "evaluate", "collect", "scores"}),
    ({"loop": {"online": True}, "collectors": 2}, {"prefill", "pretrain-world-model", "train-agent",
                                                   "train-online", "evaluate", "scores"}),
    ({"loop": {"online": True}, "train": {**tiny_config()["train"], "actor_gate": {"correlation": 0.5, "held_out_steps": 50}}},
     {"prefill", "pretrain-world-model", "train-agent", "train-online", "evaluate", "scores"}),  # + held-out store
])
def test_every_rule_passes_hostile_paths_as_single_arguments(tmp_path, mode, expected):
    """Attack 1 (every rule, planned): each path reaches its command as exactly one argument."""
    external = make_store(tmp_path / HOSTILE / "external.zarr", [20, 20])  # an existing shared dataset
    data = tiny_config(datasets=[str(external)], **mode,
                       pretrain={"name": "rf", "datasets": ["random-attack", str(external)], "updates": 2})
    config = write_config(tmp_path, data)
    result = snakemake(tmp_path, "-n", "-p", "--cores", "2", "train_all", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    commands = shell_commands(result.stdout + result.stderr)
    assert {shlex.split(command)[1] for command in commands} == expected
    held_out = [c for c in commands if "heldout" in c]
    assert len(held_out) == ("actor_gate" in mode.get("train", {})) and all("--seed 1000" in c for c in held_out)
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "dreamer-pipeline" and words[-1] == "2>&1" and words[-3] == ">"
        with_path = [w for w in words if "PWNED" in w]
        assert with_path and all(w.startswith(HOSTILE + "/") or w == str(external) for w in with_path), command
        assert words[-2].startswith(HOSTILE + "/logs/")  # the log is one word too
    assert_no_injection(tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_pipeline_runs_under_a_hostile_results_path(tmp_path):
    """Attack 1 (for real): `out$(touch PWNED)` ran the touch; `sp ace/...` truncated a file `sp`."""
    decoy = tmp_path / "sp"
    decoy.write_text("an unrelated file\n")
    # Iteration 0 only (prefill, training, evaluation, scores: the planned test above covers every rule).
    config = write_config(tmp_path, tiny_config(iterations=1))
    result = snakemake(tmp_path, "--cores", "2", "train_all", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-4000:]
    results = tmp_path / HOSTILE
    assert (results / "scores/scores.md").stat().st_size > 0
    assert (results / "runs/pong/attack/seed0/iter0000/eval.json").is_file()
    assert decoy.read_text() == "an unrelated file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".snakemake", "attack.yaml", "sp", "sp ace"]
    assert_no_injection(tmp_path)


# ----------------------------------------------------------------------------------------------
# Absurd settings

def check_config(tmp_path, data):
    return CliRunner().invoke(main, ["check-config", str(write_config(tmp_path, data))])


@pytest.mark.parametrize("change, problem", [
    ({"train": {"device": "banana"}}, "train.device: 'banana' is not a device"),
    ({"train": {"device": "cuda:7"}}, "'cuda:7' does not exist here"),
    ({"train": {"batch_size": 10**12}}, "train.batch_size is 1,000,000,000,000, more than the limit"),
    ({"iterations": 10**9}, "iterations is 1,000,000,000, more than the limit"),
    ({"frames_budget": 10**15}, "frames_budget is"),
    ({"steps_per_iteration": 1000, "frames_budget": 10**10}, "iterations, more than the limit"),
    ({"collect": {"envs": 20000}}, "collect.envs is 20,000"),
    ({"seeds": list(range(500))}, "seeds (count) is 500"),
    ({"train": {"batch_size": 4096, "sequence_length": 2000}}, "would need about"),
    ({"paths": {"results": "out/{wildcard}"}}, "paths.results must not contain"),
])
def test_absurd_settings_are_rejected_with_one_error(tmp_path, change, problem):
    """Attack 8: `device: banana`, `batch_size: 1e12` and `iterations: 1e9` were accepted."""
    result = check_config(tmp_path, change)
    assert result.exit_code == 2 and problem in result.output, result.output
    assert "Traceback" not in result.output


def test_the_memory_estimate_is_in_the_message(tmp_path):
    result = check_config(tmp_path, {"train": {"batch_size": 4096, "sequence_length": 2000}})
    assert "GiB" in result.output and "activations" in result.output and "more than this machine's" in result.output


def test_an_absurd_plan_fails_fast_in_snakemake(tmp_path):
    """Attack 8: after `iterations: 1e9`, `snakemake -n` ran past 60 s at 4.9 GB."""
    config = write_config(tmp_path, {"iterations": 10**9})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = snakemake(tmp_path, "-n", "--cores", "1", "train_all", "--configfile", str(config))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode != 0 and "Invalid configuration" in result.stderr and "iterations" in result.stderr
    assert after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime < 10  # CPU seconds: load-proof


def test_collect_with_absurd_envs_is_a_usage_error(tmp_path):
    """Attack 8: `collect --envs 20000` hung."""
    result = CliRunner().invoke(main, ["collect", "--game", "pong", "--store", str(tmp_path / "s.zarr"),
                                       "--steps", "10", "--envs", "20000"])
    assert result.exit_code == 2 and "--envs" in result.output and not (tmp_path / "s.zarr").exists()


# ----------------------------------------------------------------------------------------------
# Errors from inside the stages

def test_a_bad_checkpoint_inside_a_stage_is_one_line(tmp_path, store_factory):
    """Attack 6: a `CheckpointError` inside `evaluate` and `train-*` printed a traceback."""
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    config = ROOT / "config/debug.yaml"
    store = store_factory("replay", [20, 24])
    for args in (
        ["evaluate", "--config", config, "--game", "pong", "--agent", garbage, "--out", tmp_path / "eval.json"],
        ["train-world-model", "--config", config, "--game", "pong", "--updates", "1", "--resume-from", garbage,
         "--out", tmp_path / "w.pt", store],
        ["train-actor-critic", "--config", config, "--game", "pong", "--updates", "1", "--world-model", garbage,
         "--out", tmp_path / "a.pt", store],
        ["collect", "--game", "pong", "--store", tmp_path / "c.zarr", "--steps", "10", "--policy", garbage],
    ):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 2, result.output
        assert f"checkpoint {garbage}: not a loadable weights-only checkpoint" in result.output
        assert "Traceback" not in result.output and not (tmp_path / "eval.json").exists()


def test_a_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path, store_factory):
    """Attack 7: NaN rewards gave NaN losses with no guard. The stores refuse NaN now; a diverging
    model is the remaining source, made here by poisoning one weight after two updates."""
    import torch

    from dreamer_pipeline.datasets.dataset import open_dataset
    from dreamer_pipeline.pipelines.agent_io import build_agent, read_payload
    from dreamer_pipeline.pipelines.stages.loss_guard import NonFiniteLossError
    from dreamer_pipeline.pipelines.tracking.metrics import MetricsLogger
    from dreamer_pipeline.pipelines.run_layout import partial_checkpoint
    from dreamer_pipeline.pipelines.stages.training import batches, resumable_updates, setup

    config = tmp_path / "config.yaml"
    data = yaml.safe_load((ROOT / "config/debug.yaml").read_text())
    data["train"].update(batch_size=2, sequence_length=8, checkpoint_every=2)
    config.write_text(yaml.safe_dump(data))
    ctx = setup(config, device="cpu")
    dataset = open_dataset(store_factory("replay", [20, 24]))
    agent = build_agent(ctx.agent_config, dataset.num_actions, "cpu", seed=0)
    out = tmp_path / "iter0000/world_model.pt"
    calls = []

    def step(batch):
        calls.append(1)
        if len(calls) == 3:  # after the checkpoint at update 2
            with torch.no_grad():
                next(agent.world_model.parameters()).fill_(float("nan"))
        return agent.train_world_model(batch)

    stores = [str(store.path) for store in dataset.stores]
    with MetricsLogger(tmp_path / "metrics.jsonl", None, stage="train_world_model", iteration=0) as logger:
        with pytest.raises(NonFiniteLossError) as error:
            resumable_updates(stage="train_world_model", out=out, updates=6, agent=agent, cfg=ctx.cfg,
                              make_batches=lambda done: batches(dataset, ctx.cfg, done, "cpu"), step=step,
                              logger=logger, frames=0, updates_before=10, stores=stores)
    message = str(error.value)
    assert "train_world_model: update 13: wm/" in message and "is nan" in message and stores[0] in message
    saved = read_payload(partial_checkpoint(out))
    assert saved["extra"]["stage_progress"]["done"] == 2  # the last good checkpoint, untouched
    assert all(torch.isfinite(value).all() for value in saved["state"]["world_model"].values()
               if torch.is_tensor(value) and value.is_floating_point())
    assert not out.exists()
