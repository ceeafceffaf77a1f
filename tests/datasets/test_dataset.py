"""Datasets: resolving stores, directories and manifests; combining; the replay's recency window."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from dreamer_pipeline.datasets.dataset import Dataset, DatasetError, Replay, open_dataset, write_manifest
from factories import make_store


@pytest.fixture
def layout(tmp_path):
    a = make_store(tmp_path / "runs/iter0001/experience/shard0.zarr", [10, 20, 30], seed=1)
    b = make_store(tmp_path / "runs/iter0002/experience/shard0.zarr", [5, 6], seed=2)
    shared = make_store(tmp_path / "shared/prefill.zarr", [7, 8], seed=3)
    return tmp_path, a, b, shared


def test_store_directory_and_episode_table(layout):
    root, a, b, _ = layout
    single = open_dataset(a)
    assert (single.num_steps, single.num_episodes, single.num_actions) == (60, 3, 6)
    np.testing.assert_array_equal(single.episodes.start, [0, 10, 30])
    runs = open_dataset(root / "runs")  # recursive, sorted by path: iter0001 before iter0002
    assert [s.path for s in runs.stores] == [a, b]
    np.testing.assert_array_equal(runs.episodes.store, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(runs.episodes.length, [10, 20, 30, 5, 6])
    assert runs.steps_per_store() == {str(a): 60, str(b): 11}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_manifest_relative_paths_and_combination(layout, suffix):
    root, a, b, shared = layout
    manifest = write_manifest(root / "manifests" / f"mix{suffix}", [a, root / "shared"], name="mix")
    assert "../runs" in manifest.read_text()  # stored relative to the manifest
    mix = open_dataset(manifest)
    assert mix.name == "mix" and [s.path.name for s in mix.stores] == ["shard0.zarr", "prefill.zarr"]
    both = open_dataset(manifest, a, b)  # a appears twice: used once
    assert len(both.stores) == 3 and both.num_steps == 60 + 15 + 11


def test_replay_keeps_most_recent_whole_episodes(layout):
    root, a, b, shared = layout
    replay = Replay(root / "runs", capacity_steps=40, shared=shared)
    # newest first: b's 6 and 5, then a's 30 would exceed 40 -> only b, plus all of shared
    assert replay.recent_steps == 11 and replay.shared_steps == 15
    assert replay.num_steps == 26 and [s.path for s in replay.stores] == [b, shared]  # a dropped: none used
    assert Replay([a, b], capacity_steps=41).recent_steps == 41
    assert Replay([b, a], capacity_steps=41).recent_steps == 30  # a is newest now: its 30, then 20 would exceed
    everything = Replay(root / "runs", capacity_steps=10**9)
    assert everything.num_steps == 71


def test_replay_created_order(tmp_path):
    old = make_store(tmp_path / "z_old.zarr", [10, 10], seed=1)
    new = make_store(tmp_path / "a_new.zarr", [4], seed=2)
    # by creation time `new` is the newest: its 4 steps, then old's last 10 (the given order would keep only 10)
    replay = Replay([new, old], capacity_steps=14, order="created")
    assert replay.recent_steps == 14
    kept = {str(s.path): n for s, n in zip(replay.stores, np.bincount(replay.episodes.store, replay.episodes.length))}
    assert kept == {str(old): 10, str(new): 4}


def test_reward_free_store_drops_rewards_for_the_dataset(tmp_path):
    with_reward = make_store(tmp_path / "r.zarr", [5])
    free = make_store(tmp_path / "f.zarr", [5], reward_free=True)
    assert open_dataset(with_reward).has_reward
    assert not open_dataset(with_reward, free).has_reward


def test_bad_sources_get_one_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.yaml").write_text("stores: [missing.zarr]\n")
    (tmp_path / "typo.json").write_text(json.dumps({"store": ["x"]}))
    (tmp_path / "foreign.zarr").mkdir()
    (tmp_path / "foreign.zarr" / "zarr.json").write_text("{}")
    cases = {
        tmp_path / "nope": "no such file",
        tmp_path / "notes.txt": "not an experience store",
        tmp_path / "empty": "holds no experience store",
        tmp_path / "bad.yaml": "entry 'missing.zarr'",
        tmp_path / "typo.json": "'stores' list",
        tmp_path / "foreign.zarr": "foreign.zarr",
    }
    for source, message in cases.items():
        with pytest.raises(DatasetError, match=message):
            open_dataset(source)


def test_mixed_action_sets_are_rejected(tmp_path):
    six = make_store(tmp_path / "six.zarr", [5], num_actions=6)
    full = make_store(tmp_path / "full.zarr", [5], num_actions=18)
    with pytest.raises(DatasetError, match="different action sets"):
        open_dataset(six, full)


def test_dataset_pickles_by_path(layout):
    root, *_ = layout
    replay = Replay(root / "runs", capacity_steps=20)
    clone = pickle.loads(pickle.dumps(replay))
    assert isinstance(clone, Dataset) and clone.num_steps == replay.num_steps
    np.testing.assert_array_equal(clone.episodes.start, replay.episodes.start)
