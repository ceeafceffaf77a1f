"""import-dqn-replay on files in the DQN Replay Dataset's exact format (tests/dqn_replay_files.py)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from dreamer_pipeline.datasets.interop import dqn_replay
from dreamer_pipeline.datasets.interop.dqn_replay import DQNReplayError, import_dqn_replay
from dreamer_pipeline.datasets.store import ExperienceStore
from dqn_replay_files import LoggedReplayBuffer, play

CAPACITY = 64
MAX_STEPS = 12  # stands in for Dopamine's 27,000-step limit
LENGTHS = [9, 12, 5, 12, 10, 7, 12, 3, 11, 12, 11, 4, 12, 8, 6, 6, 9, 10, 12, 5, 7, 11, 12, 8, 9, 4]
ATTRS = {"game": "pong", "env": {"sticky_action_probability": 0.25}, "policy": {"kind": "import"},
         "action_set": {"full": False, "ids": [0, 1, 3, 4, 11, 12], "meanings": ["NOOP", "FIRE", "RIGHT", "LEFT",
                                                                              "RIGHTFIRE", "LEFTFIRE"]}}


@pytest.fixture
def replay_logs(tmp_path):
    buffer = LoggedReplayBuffer(tmp_path / "Pong/1/replay_logs", CAPACITY)
    truth = play(buffer, LENGTHS)
    counts = buffer.logged_add_counts
    # batch_rl checks for its log point after whole adds only: with these lengths one log is
    # skipped (padding jumps over it), so the files hold two unbroken streams with a gap between.
    assert counts[:2] == [CAPACITY - 1, 2 * CAPACITY - 1] and counts[2] > 3 * CAPACITY - 1
    return buffer.folder, truth, counts


def expected_episodes(truth, counts, files):
    """Episodes lying whole inside one unbroken stream of the imported files (add-index ranges)."""
    runs = []
    for a in (counts[k] for k in files):
        start = max(0, a - CAPACITY)
        if runs and runs[-1][1] == start:
            runs[-1][1] = a
        else:
            runs.append([start, a])
    expected, first_entry = [], 0
    for episode in truth:
        padding_start = first_entry
        first_entry = episode.last_add + 1
        for start, stop in runs:
            inside = start <= padding_start and episode.last_add < stop
            # a stream that starts after a gap cannot know an episode starts with it
            if inside and (start == 0 or padding_start > start):
                expected.append(episode)
    return expected


def imported_episodes(path):
    store = ExperienceStore(path)
    index = store.episodes()
    for start, length in zip(index.starts, index.lengths):
        yield {key: store.read(key, start, start + length) for key in store.arrays}


def assert_matches(episode, truth):
    n = len(truth.actions)
    assert len(episode["image"]) == n + 1  # the terminal frame is not in the data: the last one repeats
    values = episode["image"][:, :, :, 0]
    assert (values == values[:, :1, :1]).all()  # constant frames stay constant
    np.testing.assert_array_equal(values[:, 0, 0], truth.values + truth.values[-1:])
    np.testing.assert_array_equal(episode["action"], [0] + truth.actions)  # the action that led to the image
    np.testing.assert_array_equal(episode["reward"], [0.0] + truth.rewards)
    assert episode["is_first"][0] and episode["is_last"][-1] and not episode["is_last"][:-1].any()
    assert bool(episode["is_terminal"][-1]) == (n < MAX_STEPS) and not episode["is_terminal"][:-1].any()


def test_every_whole_episode_of_consecutive_files_imports_exactly(tmp_path, replay_logs, monkeypatch):
    monkeypatch.setattr(dqn_replay, "BLOCK_ROWS", 7)  # blocks split episodes and padding
    folder, truth, counts = replay_logs
    report = import_dqn_replay(folder, tmp_path / "s.zarr", ATTRS, max_episode_steps=MAX_STEPS, progress=False)
    files = len(counts)
    expected = expected_episodes(truth, counts, range(files))
    episodes = list(imported_episodes(tmp_path / "s.zarr"))
    assert len(episodes) == len(expected) == report.episodes and report.entries_dropped > 0
    for episode, reference in zip(episodes, expected):
        assert_matches(episode, reference)
    assert report.truncated_episodes == sum(len(e.actions) == MAX_STEPS for e in expected) > 0
    store = ExperienceStore(tmp_path / "s.zarr")
    assert store.attrs["imported_from"]["kind"] == "dqn-replay" and store.attrs["imported_from"]["checkpoints"] == list(range(files))

    again = import_dqn_replay(folder, tmp_path / "s.zarr", ATTRS, max_episode_steps=MAX_STEPS, progress=False)
    assert again.episodes == 0 and again.skipped_episodes == report.episodes  # a rerun resumes, adds nothing
    assert ExperienceStore(tmp_path / "s.zarr").num_episodes == report.episodes


def test_a_later_file_alone_drops_the_episode_cut_by_its_start(tmp_path, replay_logs):
    folder, truth, counts = replay_logs
    report = import_dqn_replay(folder, tmp_path / "s.zarr", ATTRS, checkpoints=[1], max_episode_steps=MAX_STEPS,
                               progress=False)
    expected = expected_episodes(truth, counts, [1])
    episodes = list(imported_episodes(tmp_path / "s.zarr"))
    assert len(episodes) == len(expected) >= 1
    for episode, reference in zip(episodes, expected):
        assert_matches(episode, reference)
    assert report.entries_dropped > 0


def test_bad_files_get_one_clear_error(tmp_path, replay_logs):
    folder, _, _ = replay_logs
    with pytest.raises(DQNReplayError, match="no \\$store\\$_observation_ckpt"):
        import_dqn_replay(tmp_path, tmp_path / "x.zarr", ATTRS, progress=False)
    with pytest.raises(DQNReplayError, match="actions reach"):
        import_dqn_replay(folder, tmp_path / "x.zarr", {**ATTRS, "action_set": {"ids": [0, 1]}}, progress=False)
    with pytest.raises(DQNReplayError, match="padding"):
        import_dqn_replay(folder, tmp_path / "y.zarr", ATTRS, stack_size=6, progress=False)
    (folder / "add_count_ckpt.1.gz").unlink()
    with pytest.raises(DQNReplayError, match="add_count_ckpt.1.gz: missing"):
        import_dqn_replay(folder, tmp_path / "z.zarr", ATTRS, progress=False)
    with gzip.open(folder / "$store$_observation_ckpt.0.gz", "wb") as file:
        np.save(file, np.zeros((CAPACITY, 64, 64), np.uint8))
    with pytest.raises(DQNReplayError, match="expected uint8"):
        import_dqn_replay(folder, tmp_path / "w.zarr", ATTRS, checkpoints=[0], progress=False)
    (folder / "$store$_reward_ckpt.0.gz").write_bytes(b"not gzip")
    with pytest.raises(DQNReplayError, match="reward_ckpt.0.gz: not a gzipped numpy array"):
        import_dqn_replay(folder, tmp_path / "v.zarr", ATTRS, checkpoints=[0], progress=False)


def test_the_command_records_the_protocol(tmp_path, replay_logs):
    from click.testing import CliRunner

    from dreamer_pipeline.pipelines.cli import main

    folder, _, _ = replay_logs
    result = CliRunner().invoke(main, ["import-dqn-replay", str(folder), str(tmp_path / "d.zarr"), "--game", "pong",
                                       "--checkpoints", "0-1", "--no-progress"])
    assert result.exit_code == 0, result.output
    store = ExperienceStore(tmp_path / "d.zarr")
    env = store.attrs["env"]
    assert env["sticky_action_probability"] == 0.25 and env["clip_rewards"] is True and env["noop_max"] == 0
    assert store.attrs["action_set"]["ids"] == [0, 1, 3, 4, 11, 12] and store.attrs["seed"] == 1
    assert "legacy" in store.attrs["ale_py_version"] and "entries/s" in result.output
    bad = CliRunner().invoke(main, ["import-dqn-replay", str(folder), str(tmp_path / "e.zarr"), "--game", "pongg"])
    assert bad.exit_code != 0 and "pongg" in bad.output
