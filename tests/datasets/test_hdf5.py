"""Minari-layout HDF5 export/import: bit-exact round trips, Minari reads our export, clear errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from dreamer_pipeline.datasets.dataset import open_dataset
from dreamer_pipeline.datasets.interop.hdf5 import HDF5Error, export_minari, import_minari
from dreamer_pipeline.datasets.store import ExperienceStore
from factories import make_store


def assert_same_store(original, imported):
    a, b = ExperienceStore(original), ExperienceStore(imported)
    assert a.reward_free == b.reward_free and set(a.arrays) == set(b.arrays)
    for key in a.arrays:
        x, y = a.read(key), b.read(key)
        assert x.dtype == y.dtype and np.array_equal(x, y), key
    assert {k: v for k, v in b.attrs.items() if k != "imported_from"} == a.attrs


@pytest.mark.parametrize("reward_free", [False, True])
def test_round_trip_is_bit_exact(tmp_path, reward_free):
    store = make_store(tmp_path / "s.zarr", [12, 1, 30, 5], reward_free=reward_free, chunk_steps=16)
    data_dir = export_minari(store, tmp_path / "export", progress=False)
    assert (data_dir / "main_data.hdf5").is_file() and (data_dir / "metadata.json").is_file()
    [imported] = import_minari(tmp_path / "export", tmp_path / "back.zarr", progress=False)
    assert_same_store(store, imported)


def test_alignment_follows_the_documented_mapping(tmp_path):
    store = make_store(tmp_path / "s.zarr", [6, 4])  # episode 0 terminal, 1 terminal
    data_dir = export_minari(store, tmp_path / "export", compression="lzf", progress=False)
    original = ExperienceStore(store)
    with h5py.File(data_dir / "main_data.hdf5", "r") as file:
        assert sorted(file.keys()) == ["episode_0", "episode_1"]
        episode = file["episode_0"]
        np.testing.assert_array_equal(episode["observations"][()], original.read("image", 0, 6))
        np.testing.assert_array_equal(episode["actions"][()], original.read("action", 1, 6))
        np.testing.assert_array_equal(episode["rewards"][()], original.read("reward", 1, 6))
        np.testing.assert_array_equal(episode["terminations"][()], [0, 0, 0, 0, 1])
        np.testing.assert_array_equal(episode["truncations"][()], [0, 0, 0, 0, 0])
    metadata = json.loads((data_dir / "metadata.json").read_text())
    assert (metadata["total_episodes"], metadata["total_steps"], metadata["jpeg_encoding"]) == (2, 8, False)


def test_several_stores_import_back_as_several(tmp_path):
    a = make_store(tmp_path / "in/a.zarr", [8, 9], seed=1)
    b = make_store(tmp_path / "in/b.zarr", [7, 3, 20], seed=2)  # episode 2 ends at a time limit
    export_minari(open_dataset(tmp_path / "in"), tmp_path / "export", progress=False)
    imported = import_minari(tmp_path / "export/data/main_data.hdf5", tmp_path / "back", progress=False)
    assert [p.name for p in imported] == ["a.zarr", "b.zarr"]
    assert_same_store(a, imported[0])
    assert_same_store(b, imported[1])


def test_stores_with_the_same_name_import_side_by_side(tmp_path):
    first = make_store(tmp_path / "run/iter0001/shard0.zarr", [5], seed=1)
    second = make_store(tmp_path / "run/iter0002/shard0.zarr", [6], seed=2)
    export_minari(open_dataset(tmp_path / "run"), tmp_path / "export", progress=False)
    imported = import_minari(tmp_path / "export", tmp_path / "back", progress=False)
    assert [p.name for p in imported] == ["000-shard0.zarr", "001-shard0.zarr"]
    assert_same_store(first, imported[0])
    assert_same_store(second, imported[1])


def test_minari_loads_our_export(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    store = make_store(tmp_path / "s.zarr", [10, 7, 15])
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset_id = "dreamer-pipeline/pong/test-v0"
    export_minari(store, tmp_path / "minari" / dataset_id, dataset_id=dataset_id, progress=False)
    loaded = minari.load_dataset(dataset_id)
    assert loaded.total_episodes == 3 and loaded.total_steps == 9 + 6 + 14
    assert loaded.action_space.n == 6 and loaded.observation_space.shape == (64, 64, 1)
    original = ExperienceStore(store)
    index = original.episodes()
    for episode, start, length in zip(loaded.iterate_episodes(), index.starts, index.lengths):
        np.testing.assert_array_equal(episode.observations, original.read("image", start, start + length))
        np.testing.assert_array_equal(episode.actions, original.read("action", start + 1, start + length))
        np.testing.assert_array_equal(episode.rewards, original.read("reward", start + 1, start + length))
        assert episode.terminations[-1] == original.read("is_terminal", start + length - 1, start + length)[0]


def test_foreign_and_malformed_files_get_one_clear_error(tmp_path):
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with pytest.raises(HDF5Error, match="not a readable HDF5 file"):
        import_minari(tmp_path / "text.hdf5", tmp_path / "x.zarr", progress=False)
    with pytest.raises(HDF5Error, match="no main_data.hdf5"):
        import_minari(tmp_path, tmp_path / "x.zarr", progress=False)
    with h5py.File(tmp_path / "empty.hdf5", "w") as file:
        file.create_group("something")
    with pytest.raises(HDF5Error, match="no episode_<i> groups"):
        import_minari(tmp_path / "empty.hdf5", tmp_path / "x.zarr", progress=False)

    store = make_store(tmp_path / "s.zarr", [6])
    data_dir = export_minari(store, tmp_path / "export", progress=False)
    with h5py.File(data_dir / "main_data.hdf5", "a") as file:
        del file["episode_0/observations"]
        file["episode_0/observations"] = np.zeros((6, 84, 84), np.uint8)
    with pytest.raises(HDF5Error, match=r"observations are uint8 \(6, 84, 84, 1\)"):
        import_minari(data_dir, tmp_path / "y.zarr", progress=False)
    with h5py.File(data_dir / "main_data.hdf5", "a") as file:
        del file["episode_0/rewards"]
    with pytest.raises(HDF5Error, match="missing dataset"):
        import_minari(data_dir, tmp_path / "z.zarr", progress=False)
    with pytest.raises(HDF5Error, match="already exists"):
        export_minari(store, tmp_path / "export", progress=False)


def test_foreign_minari_dataset_without_our_provenance(tmp_path):
    data_dir = tmp_path / "foreign" / "data"
    data_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with h5py.File(data_dir / "main_data.hdf5", "w") as file:
        group = file.create_group("episode_0")
        group["observations"] = rng.integers(0, 256, (5, 64, 64), dtype=np.uint8)  # no channel axis
        group["actions"] = np.array([1, 2, 3, 0])
        group["rewards"] = np.array([0.0, 1.0, 0.0, -1.0])
        group["terminations"] = np.array([0, 0, 0, 1], bool)
        group["truncations"] = np.zeros(4, bool)
    (data_dir / "metadata.json").write_text(json.dumps({"dataset_id": "other/game-v1", "action_space": json.dumps({"type": "Discrete", "n": 4, "start": 0})}))
    [store_path] = import_minari(tmp_path / "foreign", tmp_path / "imported.zarr", progress=False)
    store = ExperienceStore(store_path)
    assert store.num_steps == 5 and store.attrs["policy"]["kind"] == "import"
    np.testing.assert_array_equal(store.read("action"), [0, 1, 2, 3, 0])
    np.testing.assert_array_equal(store.read("is_terminal"), [0, 0, 0, 0, 1])
