"""The real Snakefile end to end on config/debug.yaml, then assertions on every artefact.

Two games, two seeds sharing one prefill store per game, reward-free pretraining from that
prefill, iterations 0 and 1 of 200 agent steps, the tiny `debug` agent, staged training
(train_world_model then train_actor_critic), evaluation and the score report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config/debug.yaml"
METRIC_FIELDS = {"stage", "iteration", "frames", "updates", "wall_time", "elapsed_s"}


def snakemake(workdir: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
        "--rerun-triggers", "mtime", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    result = snakemake(workdir, "--cores", "2", "train_all", "--configfile", str(CONFIG))
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "results/logs").rglob("*.log")))
        pytest.fail(f"snakemake failed:\n{result.stderr[-6000:]}\n{logs[-12000:]}")
    return workdir, result


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a few minutes on an idle 2-core machine; generous for loaded ones
def test_debug_pipeline_end_to_end(debug_run):
    from dreamer_pipeline.datasets.store import ExperienceStore
    from dreamer_pipeline.pipelines.agent_io import load_agent, read_payload
    from dreamer_pipeline.pipelines.config import load_config
    from dreamer_pipeline.pipelines.scores.inputs import read_eval_json
    from dreamer_pipeline.pipelines.stages.training import setup

    workdir, result = debug_run
    cfg = load_config(CONFIG)
    results = workdir / "results"
    ctx = setup(CONFIG, device="cpu")

    for game in cfg.games:
        # one shared prefill store per game, collected once (one writer run), used by both seeds
        store = ExperienceStore(results / f"datasets/{game}/random-debug.zarr")
        assert store.num_steps >= cfg.prefill.steps and len(store.attrs["runs"]) == 1
        assert json.loads((results / f"datasets/{game}/random-debug.json").read_text())["stores"] == ["random-debug.zarr"]

        pretrained = results / f"pretrained/{game}/reward-free"
        payload = read_payload(pretrained / "world_model.pt")
        assert not any(k.startswith("reward_head.") for k in payload_world_model_keys(payload))  # reward-free
        assert (pretrained / "videos/train.gif").stat().st_size > 0

        for seed in cfg.seeds:
            run = results / f"runs/{game}/debug/seed{seed}"
            assert (run / "config.yaml").is_file() and yaml.safe_load((run / "config.yaml").read_text())["variant"] == "debug"
            for k in (0, 1):
                folder = run / f"iter{k:04d}"
                for name in ("world_model.pt", "actor_critic.pt"):
                    agent, _ = load_agent(folder / name, ctx.agent_config, "cpu")
                    assert agent.num_actions == store.attrs["action_set"]["ids"].__len__()
                record = read_eval_json(folder / "eval.json")  # the scores reader validates the schema
                assert record.game == game and record.seed == str(seed)
                evaluation = json.loads((folder / "eval.json").read_text())
                assert evaluation["policy"] == "greedy" and evaluation["iteration"] == k
                assert evaluation["env"]["sticky_action_probability"] == 0.25
                for video in ("train.gif", "eval.gif"):
                    assert (folder / "videos" / video).stat().st_size > 0
                assert (folder / "episode.mp4").stat().st_size > 0  # one greedy evaluation episode
                assert evaluation["info"]["video"]["path"] == "episode.mp4"
                assert (folder / "config.yaml").is_file()
                assert not list(folder.glob(".*.tmp"))
            shard = ExperienceStore(run / "iter0001/experience/shard0.zarr")
            assert shard.num_steps >= cfg.steps_per_iteration and shard.attrs["policy"]["kind"] == "checkpoint"

            lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            assert all(METRIC_FIELDS <= set(line) for line in lines)
            stages = {line["stage"] for line in lines}
            assert {"train_world_model", "train_actor_critic", "evaluate"} <= stages
            keys = set().union(*lines)
            assert {"wm/loss", "eval/return_mean", "env/return_mean", "replay/steps"} <= keys
            assert any(k.startswith("actor/") for k in keys) and any(k.startswith("critic/") for k in keys)
            iteration1 = [line for line in lines if line["iteration"] == 1 and line["stage"] == "evaluate"]
            assert iteration1[0]["frames"] == cfg.frames_budget
            # one x-axis: training lines sit at the frames of the paper's loop, within the iteration's
            training = [line for line in lines if line["stage"] == "train_world_model" and line["iteration"] == 1]
            assert all(800 < line["frames"] <= cfg.frames_budget for line in training if "wm/loss" in line)
            assert list((run / "tensorboard").glob("events.out.tfevents.*"))

    # the prefill ran once per game although four runs read it
    assert len(list((results / "logs/prefill").rglob("*.log"))) == len(cfg.games)
    scores_md = (results / "scores/scores.md").read_text()
    assert "| IQM |" in scores_md and "| debug | 2 x 2 |" in scores_md  # the IQM of 2 seeds x 2 games, with its interval
    assert json.loads((results / "scores/scores.json").read_text())["statistics"]["methods"]["debug"]["iqm"]["low"] is not None


def payload_world_model_keys(payload) -> list[str]:
    return list(payload["state"]["world_model"])


@pytest.mark.slow
def test_rerun_after_completion_does_nothing(debug_run):
    workdir, _ = debug_run
    result = snakemake(workdir, "-n", "--cores", "2", "train_all", "--configfile", str(CONFIG))
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_html_report(debug_run):
    workdir, _ = debug_run
    report = workdir / "report.html"
    result = snakemake(workdir, "--report", str(report), "train_all", "--configfile", str(CONFIG))
    assert result.returncode == 0, result.stderr[-4000:]
    html = report.read_text(errors="replace")
    assert report.stat().st_size > 10_000 and "Open-loop predictions" in html and "Scores" in html
    assert "Evaluation episodes" in html and "episode.mp4" in html
