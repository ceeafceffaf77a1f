"""The training stages on tiny synthetic stores: train-agent (interleaved) vs train-world-model
(world model only), resuming from the previous iteration and from a partial checkpoint, the old
command and checkpoint names, reward-free pretraining and initialising a run from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from dreamer_pipeline.pipelines.agent_io import build_agent, load_agent, load_pretrained_world_model, read_payload
from dreamer_pipeline.pipelines.cli import main
from dreamer_pipeline.pipelines.stages.pretrain_world_model import pretrain_world_model_command
from dreamer_pipeline.pipelines.stages.train_agent import train_agent_command
from dreamer_pipeline.pipelines.stages.train_actor_critic import train_actor_critic_command
from dreamer_pipeline.pipelines.stages.train_world_model import train_world_model_command
from dreamer_pipeline.pipelines.stages.training import setup

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path):
    data = yaml.safe_load((ROOT / "config/debug.yaml").read_text())
    data["train"].update(batch_size=2, sequence_length=8, checkpoint_every=2, video_sequences=1)
    data["paths"] = {"results": str(tmp_path)}  # the stages' run folders: tmp_path/runs/{game}/debug/seed{seed}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def invoke(command, *args):
    result = CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_interleaved_stage_trains_the_whole_agent_and_the_next_iteration_resumes(tmp_path, config, store_factory):
    store = store_factory("replay", [20, 24])
    run = tmp_path / "runs/pong/debug/seed0"  # the configuration's run folder (paths.results = tmp_path)
    first = run / "iter0000/agent.pt"
    invoke(train_agent_command, "--config", config, "--game", "pong", "--updates", 3,
           "--out", first, "--videos", run / "iter0000/videos", store)
    ctx = setup(config)
    agent, extra = load_agent(first, ctx.agent_config, "cpu")
    assert (agent.wm_updates, agent.behaviour_updates) == (3, 3)
    assert extra["progress"] == {"stage": "train_agent", "iteration": 0, "frames": 0, "updates": 3}
    assert (run / "iter0000/videos/train.gif").stat().st_size > 0 and (run / "iter0000/config.yaml").is_file()

    second = run / "iter0001/agent.pt"
    invoke(train_agent_command, "--config", config, "--game", "pong", "--iteration", 1, "--updates", 2,
           "--updates-before", 3, "--resume-from", first, "--out", second, store)
    agent, _ = load_agent(second, ctx.agent_config, "cpu")
    assert (agent.wm_updates, agent.behaviour_updates) == (5, 5)  # optimiser and counters continue
    assert not (run / "iter0000/agent.partial.pt").exists()  # superseded once iteration 1 ran
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["updates"] for line in lines if "wm/loss" in line] == [1, 2, 3, 4, 5]


def test_old_names_still_work(tmp_path, config, store_factory):
    """Before train-agent, `train-world-model --interleaved` trained the whole agent into
    world_model.pt: that command still does, and train-agent continues from such a checkpoint."""
    store = store_factory("replay", [20, 24])
    run = tmp_path / "runs/pong/debug/seed0"
    old = run / "iter0000/world_model.pt"
    invoke(main, "train-world-model", "--config", config, "--game", "pong", "--updates", 2, "--interleaved",
           "--out", old, store)
    assert read_payload(old)["extra"]["progress"]["stage"] == "train_agent"
    invoke(main, "train-agent", "--config", config, "--game", "pong", "--iteration", 1, "--updates", 2,
           "--updates-before", 2, "--resume-from", old, "--out", run / "iter0001/agent.pt", store)
    agent, _ = load_agent(run / "iter0001/agent.pt", setup(config).agent_config, "cpu")
    assert (agent.wm_updates, agent.behaviour_updates) == (4, 4)
    assert "train-world-model" in invoke(main, "--help").output and "--interleaved" not in invoke(
        main, "train-world-model", "--help").output  # the old flag is accepted, not advertised


def test_a_resumed_stage_reads_its_partial_checkpoint_once(tmp_path, config, store_factory, monkeypatch):
    """The stage that resumes reads the partial once (it used to load it twice: once to know
    whether it resumes, once more in the update loop)."""
    from dreamer_pipeline.pipelines import agent_io

    store = store_factory("replay", [20, 24])
    out = tmp_path / "runs/pong/debug/seed0/iter0000/agent.pt"
    args = ("--config", config, "--game", "pong", "--updates", 3, "--out", out, store)
    invoke(train_agent_command, *args)
    out.unlink()  # `snakemake -R` deletes the output; the final partial stays for a kill after the last update
    reads = []
    real = agent_io.read_payload

    def counted(path, *rest, **options):
        reads.append(Path(path).name)
        return real(path, *rest, **options)

    monkeypatch.setattr(agent_io, "read_payload", counted)
    result = invoke(train_agent_command, *args)
    assert "resuming from" in result.output and out.exists()
    assert reads.count("agent.partial.pt") == 1, reads


def test_staged_training_world_model_then_actor_critic(tmp_path, config, store_factory):
    store = store_factory("replay", [20, 24])
    folder = tmp_path / "runs/pong/debug/seed0/iter0000"
    invoke(train_world_model_command, "--config", config, "--game", "pong", "--updates", 2, "--world-model-only",
           "--out", folder / "world_model.pt", store)
    invoke(train_actor_critic_command, "--config", config, "--game", "pong", "--updates", 3,
           "--world-model", folder / "world_model.pt", "--out", folder / "actor_critic.pt", store)
    ctx = setup(config)
    world_model, _ = load_agent(folder / "world_model.pt", ctx.agent_config, "cpu")
    agent, _ = load_agent(folder / "actor_critic.pt", ctx.agent_config, "cpu")
    assert (world_model.wm_updates, world_model.behaviour_updates) == (2, 0)
    assert (agent.wm_updates, agent.behaviour_updates) == (2, 3)
    for key, value in world_model.world_model.state_dict().items():  # imagination leaves the world model alone
        assert torch.equal(value, agent.world_model.state_dict()[key]), key


def test_reward_free_pretraining_and_initialising_a_run(tmp_path, config, store_factory):
    reward_free = store_factory("no_rewards", [20, 24, 18], reward_free=True)
    out = tmp_path / "pretrained/pong/reward-free/world_model.pt"
    invoke(pretrain_world_model_command, "--config", config, "--game", "pong", "--updates", 3, "--out", out, reward_free)
    weights = read_payload(out)["state"]["world_model"]
    assert weights and not any(key.startswith("reward_head.") for key in weights)
    assert (out.parent / "metrics.jsonl").is_file() and (out.parent / "videos/train.gif").is_file()

    ctx = setup(config)
    agent = build_agent(ctx.agent_config, 6, "cpu", seed=5)
    reward_head_before = {k: v.clone() for k, v in agent.world_model.reward_head.state_dict().items()}
    fresh = load_pretrained_world_model(agent, out)
    assert fresh and all(key.startswith("reward_head.") for key in fresh)
    state = agent.world_model.state_dict()
    assert all(torch.equal(state[key], value) for key, value in weights.items())
    assert all(torch.equal(agent.world_model.reward_head.state_dict()[k], v) for k, v in reward_head_before.items())

    with_rewards = store_factory("rewards", [20, 24])
    run_out = tmp_path / "runs/pong/debug/seed0/iter0000/world_model.pt"
    result = invoke(train_world_model_command, "--config", config, "--game", "pong", "--updates", 2, "--world-model-only",
                    "--init-world-model", out, "--out", run_out, with_rewards)
    assert "reward_head" in result.output


def test_a_replay_without_rewards_is_refused(tmp_path, config, store_factory):
    reward_free = store_factory("no_rewards", [20, 24], reward_free=True)
    result = CliRunner().invoke(train_world_model_command, ["--config", str(config), "--game", "pong", "--updates", "1",
                                                            "--out", str(tmp_path / "w.pt"), str(reward_free)])
    assert result.exit_code == 1 and "reward-free" in result.output


def test_a_device_resident_replay_feeds_the_stage_the_same_batches(tmp_path, store_factory):
    """train.replay_device (here "auto", which is the CPU without a GPU) holds the replay on the
    device and gives the batches of the in-process sampler (loader_workers: 0), reward dropped alike."""
    from dreamer_pipeline.datasets.dataset import open_dataset
    from dreamer_pipeline.pipelines.config import config_from_mapping
    from dreamer_pipeline.pipelines.stages.training import batches

    dataset = open_dataset(store_factory("replay", [30, 20, 25]))
    train = {"batch_size": 3, "sequence_length": 8, "loader_workers": 0}
    sampled = batches(dataset, config_from_mapping({"train": train}), 5, "cpu", drop_reward=True)
    resident = batches(dataset, config_from_mapping({"train": {**train, "replay_device": "auto"}}), 5, "cpu",
                       drop_reward=True)
    for _ in range(3):
        expected, batch = next(sampled), next(resident)
        assert sorted(batch) == sorted(expected) and "reward" not in batch
        for key in expected:
            assert torch.equal(batch[key], expected[key]), key
