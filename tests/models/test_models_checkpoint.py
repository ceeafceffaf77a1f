"""Agent checkpoints: round trip, identical resumed training, clear errors, AgentPolicy loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamer_pipeline.models.agent import Agent
from dreamer_pipeline.models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from dreamer_pipeline.models.config import preset
from dreamer_pipeline.pipelines.acting.agent_policy import AgentPolicy, load_agent_policy
from dreamer_pipeline.pipelines.acting.policy import Policy

from test_models_units import make_batch

torch.set_num_threads(1)


def test_resumed_training_continues_identically(tmp_path):
    batches = [make_batch(2, 4, 3, seed=s) for s in range(4)]
    agent = Agent(preset("debug"), num_actions=3, seed=7)
    agent.update(batches[0])
    path = save_checkpoint(agent, tmp_path / "agent.pt", extra={"iteration": 3})
    expected = [agent.update(b) for b in batches[1:]]

    resumed, extra = load_checkpoint(path)
    assert extra == {"iteration": 3}
    assert resumed.wm_updates == 1 and resumed.behaviour_updates == 1
    assert [resumed.update(b) for b in batches[1:]] == expected


def test_checkpoint_payload_is_self_describing(tmp_path):
    agent = Agent(preset("debug"), num_actions=3)
    path = save_checkpoint(agent, tmp_path / "sub" / "agent.pt")
    assert not list(path.parent.glob("*.tmp"))  # written atomically, no leftovers
    payload = read_checkpoint(path)
    assert payload["format"] == "dreamer-pipeline/agent" and payload["format_version"] == 1
    assert payload["num_actions"] == 3 and payload["image_shape"] == [64, 64, 1]
    assert payload["config"]["world_model"]["rssm"]["deter"] == 32
    assert set(payload["state"]) == {"world_model", "actor_critic", "optimisers", "counters", "rng"}


def test_mismatching_architecture_names_the_fields(tmp_path):
    path = save_checkpoint(Agent(preset("debug"), num_actions=3), tmp_path / "agent.pt")
    other = Agent(preset("debug", {"world_model": {"rssm": {"deter": 16}}}), num_actions=4)
    with pytest.raises(CheckpointError) as error:
        restore_checkpoint(other, path)
    message = str(error.value)
    assert "num_actions: checkpoint 3, agent 4" in message
    assert "world_model.rssm.deter: checkpoint 32, agent 16" in message
    gaussian = Agent(preset("debug", {"ablation": {"latent": "gaussian"}}), num_actions=3)
    with pytest.raises(CheckpointError, match="ablation.latent"):
        restore_checkpoint(gaussian, path)
    # hyperparameters may differ: the agent keeps its own learning rate
    tuned = Agent(preset("debug", {"world_model": {"opt": {"lr": 5e-4}}}), num_actions=3)
    restore_checkpoint(tuned, path)
    assert tuned.wm_optimizer.adam.param_groups[0]["lr"] == 5e-4


def test_bad_files_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        read_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a loadable"):
        read_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a dreamer-pipeline/agent checkpoint"):
        read_checkpoint(foreign)

    class Evil:  # an object that would run code when unpickled without weights_only
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "dreamer-pipeline/agent", "payload": Evil()}, evil)
    with pytest.raises(CheckpointError, match="not a loadable weights-only"):
        read_checkpoint(evil)


def test_agent_policy_acts_over_vector_envs(tmp_path):
    agent = Agent(preset("debug"), num_actions=4)
    path = save_checkpoint(agent, tmp_path / "agent.pt", extra={"progress": {"iteration": 2}})
    policy = load_agent_policy(path, mode="greedy")
    assert isinstance(policy, Policy)
    assert policy.num_actions == 4
    assert policy.provenance["kind"] == "checkpoint" and policy.provenance["iteration"] == 2
    assert len(policy.provenance["sha256"]) == 64 and policy.provenance["path"] == str(path)
    images = make_batch(3, 5, 4)["image"]
    state = policy.initial_state(3)
    for t in range(5):
        is_first = np.array([t == 0, t == 0, t in (0, 3)])
        actions, state = policy.act(images[:, t], is_first, state)
        assert actions.dtype == np.int64 and actions.shape == (3,)
        assert np.all((0 <= actions) & (actions < 4))
    # greedy acting is deterministic given the same inputs and seed
    sampler = AgentPolicy(agent, mode="sample")
    sampler.seed(3)
    first, _ = sampler.act(images[:, 0], np.ones(3, bool), None)
    sampler.seed(3)
    again, _ = sampler.act(images[:, 0], np.ones(3, bool), None)
    assert np.array_equal(first, again)
    with pytest.raises(ValueError, match="mode"):
        AgentPolicy(agent, mode="explore")
