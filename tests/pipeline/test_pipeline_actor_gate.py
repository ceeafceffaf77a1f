"""The actor gate (train.actor_gate): the held-out reward reading against plain numpy, the gate
opening exactly when its threshold is reached and staying open, its state tied to its inputs, and
the staged training stages holding the actor back while it is closed. The online stage's gate, with
a kill and a resume, is in test_pipeline_online.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from factories import make_store, step_id

from dreamer_pipeline.datasets.dataset import open_dataset
from dreamer_pipeline.datasets.sampler import SequenceSampler
from dreamer_pipeline.datasets.store import ExperienceStore
from dreamer_pipeline.models.agent import Agent
from dreamer_pipeline.models.config import preset
from dreamer_pipeline.pipelines.acting.collector import collect
from dreamer_pipeline.pipelines.agent_io import read_payload
from dreamer_pipeline.pipelines.config import ActorGateConfig
from dreamer_pipeline.pipelines.dataset_refs import write_store_marker
from dreamer_pipeline.pipelines.held_out_reward import (
    held_out_windows, reward_correlation, reward_predictions, reward_target,
)
from dreamer_pipeline.pipelines.stages.actor_gate import ActorGate
from dreamer_pipeline.pipelines.stages.train_actor_critic import train_actor_critic_command
from dreamer_pipeline.pipelines.stages.train_world_model import train_world_model_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as the stages run with `train.torch_threads: 1`: on a shared 2-core machine
    more threads only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def actor_weights(agent) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in agent.actor_critic.actor.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


# ------------------------------------------------------------------------------------ the reading
def test_windows_are_whole_episode_windows_starting_with_is_first(tmp_path):
    store = make_store(tmp_path / "held.zarr", [20, 7, 33])
    windows = held_out_windows(store, 8)
    # episode 0 (steps 0-19): windows at 0 and 8; episode 1 (7 steps) holds none;
    # episode 2 (steps 27-59): 27, 35, 43, 51
    first_steps = step_id(windows["image"][:, 0]).tolist()
    assert first_steps == [0, 8, 27, 35, 43, 51]
    assert np.array_equal(step_id(windows["image"]), np.array(first_steps)[:, None] + np.arange(8))
    assert windows["is_first"][:, 0].all() and not windows["is_first"][:, 1:].any()
    raw = ExperienceStore(store)
    for key in ("action", "reward", "is_terminal"):
        expected = np.stack([raw.read(key, s, s + 8) for s in first_steps])
        assert np.array_equal(windows[key], expected), key
    spread = held_out_windows(store, 8, limit=3)  # evenly over the store, first and last kept
    assert step_id(spread["image"][:, 0]).tolist() == [0, 27, 51]
    with pytest.raises(ValueError, match="no episode of at least 40 steps"):
        held_out_windows(store, 40)


def test_correlation_is_pearsons():
    rng = np.random.default_rng(0)
    predicted, target = rng.normal(size=500), rng.normal(size=500)
    target[::3] += predicted[::3]
    assert reward_correlation(predicted, target) == pytest.approx(np.corrcoef(predicted, target)[0, 1], abs=1e-12)
    assert reward_correlation(np.ones(10), target[:10]) == 0.0  # a constant head knows nothing
    assert np.isnan(reward_correlation(np.full(10, np.nan), target[:10]))
    assert np.allclose(reward_target(np.array([-2.0, 0.0, 1.0]), "tanh"), [np.tanh(-2.0), 0.0, np.tanh(1.0)])
    assert np.array_equal(reward_target(np.array([0.3, 2.0]), "identity"), [0.3, 2.0])


def plain_head_mean(output: torch.Tensor, head: str) -> np.ndarray:
    """The head's prediction from its raw output, written out: the Gaussian head's output (its MLP
    squeezes the single unit) is its mean; the two-hot head's is symexp of the softmax-weighted mean of 255 bins evenly spaced on
    [-20, 20] (DreamerV3)."""
    output = output.double().numpy()
    if head == "gaussian":
        return output
    probs = np.exp(output - output.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    symlog_mean = probs @ np.linspace(-20.0, 20.0, 255)
    return np.sign(symlog_mean) * np.expm1(np.abs(symlog_mean))


@pytest.mark.parametrize("head", ["gaussian", "symlog_twohot"])
def test_reading_matches_a_plain_reference(tmp_path, head):
    store = make_store(tmp_path / "held.zarr", [20, 7, 33])
    agent = Agent(preset("debug", {"world_model": {"reward_head_dist": head}}), num_actions=6, seed=3)
    if head == "symlog_twohot":  # a two-hot head starts at exactly 0: give it an output to read
        with torch.no_grad():
            torch.nn.init.normal_(agent.world_model.reward_head.layers[-1].weight, std=0.3)
    windows = held_out_windows(store, 8)
    generator_state = agent.generator.get_state()
    before = {key: value.clone() for key, value in agent.world_model.state_dict().items()}
    agent.world_model.train()
    predicted, target = reward_predictions(agent, windows)

    # the reference: the six windows read straight from the store, one batch, the model called step by step
    raw = ExperienceStore(store)
    starts = [0, 8, 27, 35, 43, 51]
    image = torch.as_tensor(np.stack([raw.read("image", s, s + 8) for s in starts]))
    action = np.stack([raw.read("action", s, s + 8) for s in starts])
    action = torch.nn.functional.one_hot(torch.as_tensor(action).long(), 6)
    is_first = torch.zeros(6, 8, dtype=torch.bool)
    is_first[:, 0] = True
    reward = np.stack([raw.read("reward", s, s + 8) for s in starts]).astype(np.float64)
    wm = agent.world_model
    wm.eval()
    with torch.no_grad():
        _, embed = wm.embed(image)
        post, _ = wm.rssm.observe(embed, action.float(), is_first, generator=torch.Generator().manual_seed(0))
        expected = plain_head_mean(wm.reward_head(wm.rssm.features(post)), head)
    assert predicted.shape == target.shape
    assert np.allclose(predicted, expected.reshape(-1), atol=1e-5)
    assert np.allclose(target, np.tanh(reward).reshape(-1))
    assert reward_correlation(predicted, target) == pytest.approx(
        np.corrcoef(expected.reshape(-1), np.tanh(reward).reshape(-1))[0, 1], abs=1e-6)
    # no trace on the agent: weights, the training RNG and the training mode are as they were
    wm.train()
    assert torch.equal(agent.generator.get_state(), generator_state)
    assert all(torch.equal(value, before[key]) for key, value in agent.world_model.state_dict().items())
    agent.world_model.eval()
    reward_predictions(agent, windows)
    assert not agent.world_model.training


# ------------------------------------------------------------------------------------ the gate
LENGTH = 8


@pytest.fixture(scope="module")
def catch_stores(tmp_path_factory):
    """Random play of catch-1 (rewards on about half of the steps): a training store, and a held-out
    store and its marker where the workflow puts them for `paths.datasets` = the folder."""
    folder = tmp_path_factory.mktemp("catch")
    collect(folder / "train.zarr", "catch-1", 300, num_envs=2, seed=0, progress=False)
    held = folder / "catch-1/random-heldout300.zarr"
    collect(held, "catch-1", 300, num_envs=2, seed=1000, progress=False)
    write_store_marker(held.with_suffix(".json"), held)
    return folder / "train.zarr", held


def run_gate(stores, threshold: float, updates: int, *, after=None):
    """A fresh debug agent trained through a gate that reads after every update; returns the agent,
    the gate, the readings and the actor's weights after each update."""
    train, held = stores
    agent = Agent(preset("debug"), num_actions=3, seed=0)
    readings = []
    gate = ActorGate(ActorGateConfig(correlation=threshold, every=1, held_out_steps=300), held,
                     sequence_length=LENGTH, updates=0, log=lambda metrics, update: readings.append((update, metrics)))
    step = gate.wrap(agent, agent.update)
    sampler = SequenceSampler(open_dataset(train), batch_size=2, seq_len=LENGTH, seed=0)
    actors = [actor_weights(agent)]
    for update in range(1, updates + 1):
        if after is not None:
            after(update, agent, gate)
        step(sampler.sample())
        actors.append(actor_weights(agent))
    return agent, gate, readings, actors


def test_a_closed_gate_trains_the_world_model_only(catch_stores):
    agent, gate, readings, actors = run_gate(catch_stores, 0.99, 6)
    assert not gate.is_open and (agent.wm_updates, agent.behaviour_updates) == (6, 0)
    assert all(same_weights(actors[0], weights) for weights in actors)
    assert [update for update, _ in readings] == [1, 2, 3, 4, 5, 6]
    assert all(metrics["gate/open"] == 0.0 for _, metrics in readings)
    assert gate.state.read_at == 6 and gate.state.correlation == readings[-1][1]["gate/reward_correlation"]


def test_the_gate_opens_exactly_when_the_threshold_is_reached_and_stays_open(catch_stores):
    _, _, closed, _ = run_gate(catch_stores, 0.99, 8)
    values = [metrics["gate/reward_correlation"] for _, metrics in closed]
    # the first update (after the second) whose reading beats every earlier one: its reading is the threshold
    k = next(i for i in range(2, len(values) + 1) if values[i - 1] > max(values[:i - 1]))
    threshold = values[k - 1]

    def flip_the_reward_head(update, agent, gate):
        if update == k + 2:  # the head now predicts the opposite: its correlation falls below the threshold
            with torch.no_grad():
                for parameter in agent.world_model.reward_head.layers[-1].parameters():
                    parameter.neg_()

    agent, gate, readings, actors = run_gate(catch_stores, threshold, k + 2, after=flip_the_reward_head)
    assert [m["gate/reward_correlation"] for _, m in readings[:k]] == values[:k]  # the same run until it opens
    assert [m["gate/open"] for _, m in readings] == [0.0] * (k - 1) + [1.0] * 3
    assert gate.state.opened_at == k
    assert all(same_weights(actors[0], weights) for weights in actors[:k + 1])  # closed through update k
    assert not same_weights(actors[k], actors[k + 1])  # update k + 1 trains the actor
    assert agent.behaviour_updates == 2
    assert readings[-1][1]["gate/reward_correlation"] < threshold and gate.is_open  # and it stays open


def test_the_gate_state_is_tied_to_its_inputs(catch_stores):
    _, held = catch_stores
    settings = ActorGateConfig(correlation=0.2, every=5, held_out_steps=300)
    gate = ActorGate(settings, held, sequence_length=LENGTH, updates=40)
    gate.state.open, gate.state.correlation, gate.state.read_at, gate.state.opened_at = True, 0.25, 40, 35
    saved = gate.state_dict()
    again = ActorGate(settings, held, sequence_length=LENGTH, updates=0)
    assert again.load_state_dict(saved) and again.is_open and again.state.opened_at == 35 and again.updates == 40
    for other in (ActorGateConfig(correlation=0.3, every=5, held_out_steps=300),
                  ActorGateConfig(correlation=0.2, every=10, held_out_steps=300),
                  ActorGateConfig(correlation=0.2, every=5, held_out_steps=300, windows=4)):
        changed = ActorGate(other, held, sequence_length=LENGTH, updates=0)
        assert not changed.load_state_dict(saved) and not changed.is_open
    assert not ActorGate(settings, held, sequence_length=4, updates=0).load_state_dict(saved)


def test_a_held_out_store_without_rewards_is_refused(tmp_path):
    store = make_store(tmp_path / "held.zarr", [20, 20])
    empty = tmp_path / "flat.zarr"
    from dreamer_pipeline.datasets.store import StoreWriter

    source = ExperienceStore(store)
    with StoreWriter.open(empty, source.attrs, image_shape=[64, 64, 1], fsync=False) as writer:
        episode = {key: source.read(key, 0, 20) for key in ("image", "action", "is_first", "is_last", "is_terminal")}
        writer.append_episode({**episode, "reward": np.zeros(20, np.float32)})
    with pytest.raises(ValueError, match="could never open"):
        ActorGate(ActorGateConfig(correlation=0.2), empty, sequence_length=8, updates=0)


# ------------------------------------------------------------------------------ the staged stages
def write_config(tmp_path: Path, threshold: float, datasets: Path) -> Path:
    """One results folder per threshold: its runs' metrics stay apart."""
    data = yaml.safe_load((ROOT / "config/debug.yaml").read_text())
    data["games"] = ["catch-1"]
    data["prefill"]["name"] = "random"
    data["train"].update(batch_size=2, sequence_length=LENGTH, checkpoint_every=4, video_sequences=1,
                         actor_gate={"correlation": threshold, "every": 4, "held_out_steps": 300})
    data["paths"] = {"results": str(tmp_path / f"results{threshold}"), "datasets": str(datasets)}
    path = tmp_path / f"gate{threshold}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def invoke(command, *args):
    result = CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_staged_stages_hold_the_actor_back_until_the_gate_opens(tmp_path, catch_stores):
    train, held = catch_stores

    def run(threshold: float) -> tuple[dict, dict, list[dict]]:
        config = write_config(tmp_path, threshold, datasets=held.parent.parent)
        folder = tmp_path / f"results{threshold}/runs/catch-1/debug/seed0/iter0000"
        invoke(train_world_model_command, "--config", config, "--game", "catch-1", "--updates", 12,
               "--world-model-only", "--out", folder / "world_model.pt", train)
        invoke(train_actor_critic_command, "--config", config, "--game", "catch-1", "--updates", 12,
               "--world-model", folder / "world_model.pt", "--out", folder / "actor_critic.pt", train)
        world_model, agent = read_payload(folder / "world_model.pt"), read_payload(folder / "actor_critic.pt")
        lines = [json.loads(line) for line in (folder.parent / "metrics.jsonl").read_text().splitlines()]
        return world_model, agent, [line for line in lines if "gate/open" in line]

    world_model, agent, readings = run(0.99)  # never reached: the actor stays as it was made
    assert agent["state"]["counters"] == {"wm_updates": 12, "behaviour_updates": 0}
    assert same_weights(world_model["state"]["actor_critic"], agent["state"]["actor_critic"])
    assert [line["updates"] for line in readings] == [4, 8, 12, 12]  # the behaviour stage reads its world model once
    assert agent["extra"]["actor_gate"]["open"] is False and agent["extra"]["actor_gate"]["read_at"] == 12

    world_model, agent, readings = run(0.01)  # reached within the world-model stage
    first = next(line["updates"] for line in readings if line["gate/reward_correlation"] >= 0.01)
    assert [line["gate/open"] for line in readings] == [float(line["updates"] >= first) for line in readings]
    assert world_model["extra"]["actor_gate"]["opened_at"] == first and world_model["extra"]["actor_gate"]["open"]
    assert agent["state"]["counters"] == {"wm_updates": 12, "behaviour_updates": 12}
    assert [line["updates"] for line in readings] == [4, 8, 12]
