"""Collectors on real ALE into real zarr stores: alignment, counts, provenance, determinism, resume,
and real `dreamer-pipeline collect` subprocesses killed with SIGKILL and stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from dreamer_pipeline.datasets.store import ExperienceStore, StoreError
from dreamer_pipeline.pipelines.envs.atari import EnvConfig, VectorAtari
from dreamer_pipeline.pipelines.acting.collector import CollectError, EpisodeBuffer, collect
from dreamer_pipeline.pipelines.acting.policy import Policy, RandomPolicy

# Sticky actions and no-ops off: the emulator is deterministic, so stored episodes can be replayed.
DETERMINISTIC = EnvConfig(sticky_action_probability=0.0, noop_max=0, max_episode_steps=150)
KEYS = ("image", "action", "reward", "is_first", "is_last", "is_terminal")


def read_all(path) -> dict[str, np.ndarray]:
    store = ExperienceStore(path)
    return {key: store.read(key) for key in KEYS}


@pytest.fixture(scope="module")
def breakout_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("collect") / "breakout.zarr"
    result = collect(path, "breakout", 600, num_envs=2, seed=3, env_config=DETERMINISTIC, progress=False)
    return path, result


def cut_episodes(path) -> list[int]:
    """Indices of the episodes the collector committed as truncated because it stopped."""
    return [k for run in ExperienceStore(path).attrs["runs"] for k in run.get("cut_episodes", [])]


def test_store_alignment_and_counts(breakout_store):
    path, result = breakout_store
    store = ExperienceStore(path)
    data = read_all(path)
    index = store.episodes()
    assert store.num_steps == result.committed_steps == int(index.lengths.sum())
    assert store.num_episodes == result.new_episodes == len(index) >= 3
    assert result.complete and result.stopped_by is None
    # every step taken is stored, and the target is met exactly (600 agent steps = 300 vector steps of 2 envs);
    # an agent step is a stored step that is not an episode's reset step
    assert result.env_steps == result.agent_steps == int((~data["is_first"]).sum()) == 600
    assert result.discarded_steps == 0
    cut = cut_episodes(path)
    assert len(cut) == result.cut_episodes == 2  # both environments were mid-episode at the stop
    assert result.lengths == [int(n) for k, n in enumerate(index.lengths) if k not in cut]
    for k, (start, length) in enumerate(zip(index.starts, index.lengths)):
        episode = {key: v[start : start + length] for key, v in data.items()}
        assert episode["is_first"][0] and not episode["is_first"][1:].any()
        assert episode["is_last"][-1] and not episode["is_last"][:-1].any()
        assert not episode["is_terminal"][:-1].any()
        assert episode["action"][0] == 0 and episode["reward"][0] == 0.0
        # a time limit of 150 agent steps: 1 reset step + 150 transitions, truncated, not terminal;
        # an episode cut at the target is truncated too
        assert length <= 151
        assert episode["is_terminal"][-1] == (length < 151 and k not in cut)
    assert data["is_terminal"].any() and (index.lengths == 151).any(), "want every ending in this store"


def test_stored_episodes_replay_exactly(breakout_store):
    """Replaying each episode's stored actions in a fresh emulator reproduces every stored image and
    reward: image[t] follows action[t], reward[t] is received on arriving, and no auto-reset step
    (a reset frame with the ignored action) is stored as a transition."""
    path, _ = breakout_store
    store, data = ExperienceStore(path), read_all(path)
    with VectorAtari("breakout", 1, DETERMINISTIC) as env:
        index, cut = store.episodes(), cut_episodes(path)
        for k, (start, length) in enumerate(zip(index.starts, index.lengths)):
            image = env.reset(np.array([0]))
            np.testing.assert_array_equal(image[0], data["image"][start])
            for t in range(start + 1, start + length):
                step = env.step(np.array([data["action"][t]], np.int64))
                ended = step.terminated[0] or step.truncated[0]
                assert ended == (t == start + length - 1 and k not in cut)  # a cut episode had not ended
                np.testing.assert_array_equal(step.last_image[0] if ended else step.image[0], data["image"][t])
                assert step.reward[0] == data["reward"][t]
            assert bool(step.terminated[0]) == bool(data["is_terminal"][start + length - 1])


def test_provenance_attributes(breakout_store):
    import ale_py

    path, _ = breakout_store
    attrs = ExperienceStore(path).attrs
    assert attrs["game"] == "breakout" and attrs["ale_rom"] == "breakout"
    assert attrs["ale_py_version"] == ale_py.__version__
    assert attrs["env"] == DETERMINISTIC.to_dict()
    assert attrs["action_set"] == {"full": False, "ids": [0, 1, 3, 4], "meanings": ["NOOP", "FIRE", "RIGHT", "LEFT"]}
    assert attrs["policy"] == {"kind": "random"} and attrs["seed"] == 3
    assert attrs["writer_id"] and attrs["created"] and attrs["reward_free"] is False
    (run,) = attrs["runs"]
    assert run["resume_index"] == 0 and run["num_envs"] == 2 and run["target_steps"] == 600
    assert run["steps_before"] == 0 and run["steps_after"] == attrs["committed_steps"]
    assert run["agent_steps_before"] == 0 and run["agent_steps_after"] == run["env_steps"] == 600


def test_determinism_given_seed_with_paper_settings(tmp_path):
    config = EnvConfig(max_episode_steps=30)  # sticky actions and no-op starts on: seeded randomness
    runs = [collect(tmp_path / f"{name}.zarr", "pong", 90, num_envs=2, seed=seed, env_config=config, progress=False)
            for name, seed in (("a", 7), ("b", 7), ("c", 8))]
    a, b, c = (read_all(r.path) for r in runs)
    for key in KEYS:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["action"][: len(c["action"])], c["action"][: len(a["action"])])


def test_resume_continues_with_fresh_seeds(tmp_path):
    path = tmp_path / "resume.zarr"
    first = collect(path, "breakout", 100, num_envs=2, seed=1, env_config=DETERMINISTIC, progress=False)
    before = read_all(path)
    second = collect(path, "breakout", 250, num_envs=2, seed=1, env_config=DETERMINISTIC, progress=False)
    after = read_all(path)
    assert second.committed_steps >= 250 and second.new_steps == second.committed_steps - first.committed_steps
    for key in KEYS:
        np.testing.assert_array_equal(after[key][: first.committed_steps], before[key])
    runs = ExperienceStore(path).attrs["runs"]
    assert [r["resume_index"] for r in runs] == [0, 1]
    # The resumed run does not replay the first run's episodes (same deterministic emulator, so
    # only the policy's actions could tell them apart).
    n = first.committed_steps
    assert not np.array_equal(after["action"][n : n + 50], before["action"][:50])
    # nothing to do once the target is reached: the store is left untouched
    third = collect(path, "breakout", 200, num_envs=2, seed=1, env_config=DETERMINISTIC, progress=False)
    assert third.new_steps == 0 and ExperienceStore(path).attrs["runs"] == runs


def test_resume_with_other_settings_is_refused(tmp_path):
    path = tmp_path / "other.zarr"
    collect(path, "breakout", 50, env_config=DETERMINISTIC, progress=False)
    with pytest.raises(StoreError, match="env"):
        collect(path, "breakout", 500, env_config=EnvConfig(max_episode_steps=120), progress=False)
    with pytest.raises(StoreError, match="seed"):
        collect(path, "breakout", 500, seed=9, env_config=DETERMINISTIC, progress=False)


class RecordingPolicy:
    """A stateful policy that records what the collector shows it."""

    def __init__(self, num_actions: int):
        self.inner = RandomPolicy(num_actions, 0)
        self.action_space = {"kind": "discrete", "n": num_actions}
        self.provenance = {"kind": "recording"}
        self.seeds: list[int] = []
        self.firsts: list[np.ndarray] = []

    def seed(self, value: int) -> None:
        self.seeds.append(value)

    def initial_state(self, batch_size):
        return np.zeros(batch_size, np.int64)  # steps since the episode started

    def act(self, image, is_first, state):
        assert image.shape[1:] == (64, 64, 1) and image.dtype == np.uint8 and is_first.dtype == bool
        self.firsts.extend(image[is_first].copy())
        state = np.where(is_first, 0, state + 1)
        actions, _ = self.inner.act(image, is_first, None)
        return actions, state


def test_policy_sees_episode_starts(tmp_path):
    policy = RecordingPolicy(4)
    assert isinstance(policy, Policy)
    result = collect(tmp_path / "p.zarr", "breakout", 200, num_envs=2, seed=0, env_config=DETERMINISTIC,
                     policy=policy, progress=False)
    store = ExperienceStore(result.path)
    assert store.attrs["policy"] == {"kind": "recording"} and len(policy.seeds) == 1
    firsts = store.read("image")[store.episodes().starts]
    # every stored episode began with an is_first image the policy was shown
    assert len(policy.firsts) >= len(firsts)
    for image in firsts:
        assert any(np.array_equal(image, seen) for seen in policy.firsts)
    with pytest.raises(CollectError, match="3 discrete actions.*4 discrete actions"):
        collect(tmp_path / "q.zarr", "breakout", 10, policy=RandomPolicy(3), progress=False)


def test_episode_buffer_grows():
    buffer = EpisodeBuffer(capacity=2)
    frames = np.arange(5 * 4096, dtype=np.uint32).astype(np.uint8).reshape(5, 64, 64, 1)
    buffer.start(frames[0])
    for t in range(1, 5):
        buffer.add(frames[t], t, float(t))
    episode = buffer.episode(terminal=True)
    np.testing.assert_array_equal(episode["image"], frames)
    assert episode["action"].tolist() == [0, 1, 2, 3, 4] and episode["reward"].tolist() == [0, 1, 2, 3, 4]
    assert episode["is_terminal"].tolist() == [False] * 4 + [True]


# ----------------------------------------------------------------------------------------------
# The command line, as real subprocesses

def collect_cli(store, steps, *extra):
    return [sys.executable, "-m", "dreamer_pipeline.pipelines.cli", "collect", "--game", "breakout",
            "--store", str(store), "--steps", str(steps), "--envs", "2", "--seed", "5",
            "--max-episode-steps", "30", "--no-progress", *extra]


def wait_for_episodes(store, episodes: int, process: subprocess.Popen, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"collector exited early: {process.communicate()}"
        try:
            count = ExperienceStore(store).num_episodes
        except StoreError:
            count = 0  # not created yet
        if count >= episodes:
            return count
        time.sleep(0.05)
    raise AssertionError(f"no {episodes} episodes within {timeout}s")


def test_sigkill_then_rerun_resumes(tmp_path):
    store, target = tmp_path / "killed.zarr", 600
    command = collect_cli(store, target, "--commit-every", "60")  # commits every 2 episodes of <= 31 steps
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_episodes(store, 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    killed = ExperienceStore(store)  # opens: every committed episode is whole
    index = killed.episodes()
    assert 2 <= killed.num_episodes and killed.num_steps < target and len(index) == killed.num_episodes
    before = read_all(store)

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    resumed = ExperienceStore(store)
    assert resumed.num_steps >= target
    after = read_all(store)
    for key in KEYS:  # the earlier episodes are byte-identical
        np.testing.assert_array_equal(after[key][: killed.num_steps], before[key])
    run = resumed.attrs["runs"][-1]
    assert run["resume_index"] == 1 and run["steps_before"] == killed.num_steps  # continued, not restarted
    assert resumed.attrs["resumed"] == 1


def test_sigterm_stops_cleanly(tmp_path):
    store = tmp_path / "stopped.zarr"
    command = collect_cli(store, 100_000, "--commit-every", "1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_episodes(store, 1, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in stderr and "Rerun the same command to resume" in stderr
    stopped = ExperienceStore(store)
    assert stopped.num_episodes >= 1 and len(stopped.episodes()) == stopped.num_episodes
    assert stopped.attrs["runs"][-1]["stopped_by"] == "SIGTERM"


def test_cli_config_file_and_inspect(tmp_path):
    from dreamer_pipeline.pipelines.cli import main

    runner = CliRunner()
    env_yaml = tmp_path / "env.yaml"
    env_yaml.write_text("max_episode_steps: 30\nnoop_max: 5\n")
    store = tmp_path / "cli.zarr"
    result = runner.invoke(main, ["collect", "--game", "breakout", "--store", str(store), "--steps", "60",
                                  "--config", str(env_yaml), "--sticky", "0.1", "--no-progress"])
    assert result.exit_code == 0, result.output
    env = ExperienceStore(store).attrs["env"]
    assert (env["max_episode_steps"], env["noop_max"], env["sticky_action_probability"]) == (30, 5, 0.1)

    bad = tmp_path / "bad.yaml"
    bad.write_text("max_episode_step: 30\n")
    result = runner.invoke(main, ["collect", "--game", "breakout", "--store", str(tmp_path / "x.zarr"),
                                  "--steps", "60", "--config", str(bad)])
    assert result.exit_code == 2 and "max_episode_step" in result.output and "did you mean" in result.output

    result = runner.invoke(main, ["inspect", str(store), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["counts"]["steps"] == ExperienceStore(store).num_steps >= 60
    assert info["arrays"]["image"]["dtype"] == "uint8" and info["arrays"]["image"]["chunks"][1:] == [64, 64, 1]
    assert info["provenance"]["game"] == "breakout" and "committed_steps" not in info["provenance"]
    text = runner.invoke(main, ["inspect", str(store)]).output
    assert "image" in text and "zstd" in text and "episode length mean" in text
    result = runner.invoke(main, ["inspect", str(tmp_path)])
    assert result.exit_code == 2 and "not a zarr v3 group" in result.output


class InterruptingPolicy(RandomPolicy):
    """Sends SIGINT to its own process on its `after`-th call, like a user pressing Ctrl-C."""

    def __init__(self, num_actions: int, after: int):
        super().__init__(num_actions, 0)
        self.calls, self.after = 0, after

    def act(self, image, is_first, state):
        self.calls += 1
        if self.calls == self.after:
            os.kill(os.getpid(), signal.SIGINT)
        return super().act(image, is_first, state)


def test_sigint_commits_every_step_taken_and_stops(tmp_path):
    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in the background
    config = EnvConfig(max_episode_steps=20)
    policy = InterruptingPolicy(4, after=70)  # 3 episodes of 21 steps finish before the signal
    result = collect(tmp_path / "int.zarr", "breakout", 10_000, env_config=config, policy=policy,
                     commit_steps=10**9, commit_seconds=1e9, progress=False)  # nothing committed before the stop
    assert result.stopped_by == "SIGINT" and policy.calls == 70  # stopped right after that vector step
    store = ExperienceStore(result.path)
    # 3 finished episodes of 21 steps, and the one running at the signal (its reset step and 10
    # transitions) committed as truncated: all 70 steps taken are stored
    assert store.num_episodes == result.new_episodes == 4 and store.num_steps == 63 + 11
    assert result.cut_episodes == 1 and result.lengths == [21, 21, 21] and not store.read("is_terminal")[-1]
    assert result.env_steps == result.agent_steps == 70 and result.discarded_steps == 0 and not result.complete
    assert all(type(r) is float for r in result.returns)
    assert signal.getsignal(signal.SIGINT) is handler_before  # handlers restored
