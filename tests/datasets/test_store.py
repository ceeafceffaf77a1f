"""The zarr experience store (datasets/store.py): schema checks on open, the commit protocol,
resume, reward-free stores. Every bad store must give one StoreError naming the store and the
problem, never an exception from deep inside zarr."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr
from factories import make_store, provenance, synthetic_episode

from dreamer_pipeline.datasets.store import ATTRS_KEY, ExperienceStore, StoreError, StoreWriter, validate_episode

KEYS = ("image", "action", "reward", "is_first", "is_last", "is_terminal")


def set_meta(path, **changes):
    group = zarr.open_group(str(path), mode="r+", zarr_format=3)
    meta = dict(group.attrs[ATTRS_KEY])
    meta.update(changes)
    group.attrs[ATTRS_KEY] = meta


def test_valid_store_round_trip(tmp_path):
    path = make_store(tmp_path / "ok.zarr", [30, 12, 50], chunk_steps=16)
    store = ExperienceStore(path)
    assert (store.num_steps, store.num_episodes) == (92, 3)
    assert store.episodes().starts.tolist() == [0, 30, 42] and store.episodes().lengths.tolist() == [30, 12, 50]
    assert store.arrays["image"].chunks == (16, 64, 64, 1)
    assert store.read("image", 5, 9).shape == (4, 64, 64, 1)
    assert store.read("action", 90, 200).shape == (2,)  # never past the committed counter


def test_random_directory_is_not_a_store(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match="junk: is not a zarr v3 group"):
        ExperienceStore(tmp_path / "junk")
    with pytest.raises(StoreError, match="does not exist"):
        ExperienceStore(tmp_path / "missing.zarr")


def test_foreign_zarr_group(tmp_path):
    group = zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w", zarr_format=3)
    group.attrs["something"] = 1
    with pytest.raises(StoreError, match="foreign.zarr: is not a dreamer-pipeline experience store"):
        ExperienceStore(tmp_path / "foreign.zarr")


def test_wrong_format_version(tmp_path):
    path = make_store(tmp_path / "v3.zarr", [10])
    for version in (3, True, 2.0, "2"):
        set_meta(path, format_version=version)
        with pytest.raises(StoreError, match=f"format version {version!r}; this code reads versions 1 and 2"):
            ExperienceStore(path)


def test_wrong_dtype(tmp_path):
    path = make_store(tmp_path / "dtype.zarr", [10])
    group = zarr.open_group(str(path), mode="r+", zarr_format=3)
    del group["action"]
    group.create_array("action", shape=(10,), chunks=(64,), dtype=np.int64, fill_value=0)
    with pytest.raises(StoreError, match="array 'action' has dtype int64, expected int32"):
        ExperienceStore(path)


def test_wrong_image_shape(tmp_path):
    path = make_store(tmp_path / "shape.zarr", [10])
    group = zarr.open_group(str(path), mode="r+", zarr_format=3)
    del group["image"]
    group.create_array("image", shape=(10, 84, 84, 1), chunks=(64, 84, 84, 1), dtype=np.uint8, fill_value=0)
    with pytest.raises(StoreError, match=r"'image' has step shape \(84, 84, 1\), expected \(64, 64, 1\)"):
        ExperienceStore(path)


def test_missing_array(tmp_path):
    path = make_store(tmp_path / "missing.zarr", [10])
    shutil.rmtree(path / "is_terminal")
    with pytest.raises(StoreError, match="missing the array 'is_terminal'"):
        ExperienceStore(path)


def test_counter_beyond_array_length(tmp_path):
    path = make_store(tmp_path / "counter.zarr", [10, 5])
    set_meta(path, committed_steps=40)
    with pytest.raises(StoreError, match="holds 15 steps but 40 are committed"):
        ExperienceStore(path)


def test_corrupt_flags_are_reported_on_episodes(tmp_path):
    path = make_store(tmp_path / "flags.zarr", [10, 5])
    set_meta(path, committed_episodes=3)
    with pytest.raises(StoreError, match="flags delimit 2 episodes, attributes say 3"):
        ExperienceStore(path).episodes()


def test_reward_free_store(tmp_path):
    path = make_store(tmp_path / "free.zarr", [10, 7], reward_free=True)
    store = ExperienceStore(path)
    assert store.reward_free and not store.has_reward and "reward" not in store.arrays
    assert not (path / "reward").exists()
    with pytest.raises(StoreError, match="reward-free"):
        store.read("reward")
    # a reward-free store is not resumed as a rewarded one, nor the other way round
    with pytest.raises(StoreError, match="reward_free"):
        StoreWriter.open(path, provenance(), reward_free=False)


def test_writer_resume_trims_an_uncommitted_tail(tmp_path):
    """A writer killed after writing arrays but before bumping the counter left a tail: readers
    ignore it, and the next writer trims it and appends right after the committed steps."""
    path = make_store(tmp_path / "tail.zarr", [20, 10])
    committed = {key: ExperienceStore(path).read(key) for key in KEYS}
    group = zarr.open_group(str(path), mode="r+", zarr_format=3)
    for key in KEYS:  # an episode of 25 steps written but never committed (arrays of unequal length)
        extra = 25 if key != "is_terminal" else 7
        array = group[key]
        array.resize((30 + extra, *array.shape[1:]))
        array[30:] = 1
    partial = path / "image" / "c" / "0" / "0" / "0" / "0.1234.partial"  # a chunk write cut short by a kill
    partial.write_bytes(b"half a chunk")
    reader = ExperienceStore(path)
    assert reader.num_steps == 30 and len(reader.read("image")) == 30

    writer = StoreWriter.open(path, provenance())
    assert all(array.shape[0] == 30 for array in writer.arrays.values()) and not partial.exists()
    episode = synthetic_episode(np.random.default_rng(9), 12, 30, terminal=True, reward_free=False, num_actions=6)
    writer.append_episode(episode)
    store = ExperienceStore(path)
    assert (store.num_steps, store.num_episodes) == (42, 3) and store.attrs["resumed"] == 1
    for key in KEYS:
        np.testing.assert_array_equal(store.read(key, 0, 30), committed[key])
        np.testing.assert_array_equal(store.read(key, 30), episode[key])


def test_resume_with_other_provenance_is_refused(tmp_path):
    path = make_store(tmp_path / "prov.zarr", [10], seed=0)
    with pytest.raises(StoreError, match="prov.zarr: exists with seed=0; this writer has seed=1"):
        StoreWriter.open(path, provenance(seed=1))
    writer = StoreWriter.open(path, {**provenance(seed=0), "writer_id": "another"})  # volatile keys may differ
    assert writer.committed_steps == 10


def test_append_validates_episodes(tmp_path):
    writer = StoreWriter.open(tmp_path / "v.zarr", provenance())
    rng = np.random.default_rng(0)
    good = synthetic_episode(rng, 5, 0, terminal=True, reward_free=False, num_actions=6)
    problems = {
        "action 0 and reward 0": {**good, "action": np.array([2, 0, 0, 0, 0], np.int32)},
        "dtype int64": {**good, "action": good["action"].astype(np.int64)},
        "is_first must be set on the first step only": {**good, "is_first": np.ones(5, bool)},
        "is_last must be set on the last step only": {**good, "is_last": np.zeros(5, bool)},
        "missing arrays": {k: v for k, v in good.items() if k != "is_terminal"},
    }
    for message, episode in problems.items():
        with pytest.raises(ValueError, match=message):
            writer.append_episode(episode)
    assert writer.committed_steps == 0  # nothing half-committed
    writer.append_episode(good)
    assert validate_episode(good, reward_free=False) == 5 and ExperienceStore(tmp_path / "v.zarr").num_steps == 5


def test_append_episodes_commits_a_batch_at_once(tmp_path):
    writer = StoreWriter.open(tmp_path / "batch.zarr", provenance(), chunk_steps=16)
    rng = np.random.default_rng(1)
    episodes = [synthetic_episode(rng, n, 0, terminal=False, reward_free=False, num_actions=6) for n in (7, 30, 1)]
    bad = {**episodes[2], "reward": np.ones(1, np.float32)}
    with pytest.raises(ValueError, match="reward 0"):
        writer.append_episodes(episodes[:2] + [bad])  # validated before anything is written
    assert writer.committed_steps == 0
    writer.append_episodes(episodes)
    store = ExperienceStore(tmp_path / "batch.zarr")
    assert (store.num_steps, store.num_episodes) == (38, 3) and store.episodes().lengths.tolist() == [7, 30, 1]
    for key in KEYS:
        np.testing.assert_array_equal(store.read(key), np.concatenate([e[key] for e in episodes]))


def test_direct_chunk_writes_equal_zarr_writes(tmp_path):
    """StoreWriter writes chunk files itself (datasets/chunk_writer.py); the bytes must be zarr's."""
    rng = np.random.default_rng(2)
    episodes = [synthetic_episode(rng, n, 0, terminal=True, reward_free=False, num_actions=6) for n in (40, 3, 90)]
    for name, direct in (("direct", True), ("zarr", False)):
        writer = StoreWriter.open(tmp_path / f"{name}.zarr", provenance(), chunk_steps=16)
        if not direct:
            writer._appenders = {key: None for key in writer.arrays}  # force zarr's own writes
        for episode in episodes:
            writer.append_episode(episode)
    for key in KEYS:
        direct_files = sorted(p.relative_to(tmp_path / "direct.zarr") for p in (tmp_path / "direct.zarr" / key).rglob("c/**/*") if p.is_file())
        zarr_files = sorted(p.relative_to(tmp_path / "zarr.zarr") for p in (tmp_path / "zarr.zarr" / key).rglob("c/**/*") if p.is_file())
        assert direct_files == zarr_files and direct_files
        for rel in direct_files:
            assert (tmp_path / "direct.zarr" / rel).read_bytes() == (tmp_path / "zarr.zarr" / rel).read_bytes(), rel
    assert ExperienceStore(tmp_path / "direct.zarr").arrays["image"].shape[0] == 133
