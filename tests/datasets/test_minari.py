"""Minari's conventions (datasets/interop/minari_spec.py): version, env_spec (recover_environment), author,
JPEG, action sets; and Minari's own Atari datasets, written here by minari's DataCollector."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from dreamer_pipeline.datasets.frames import to_store_frames
from dreamer_pipeline.datasets.interop.hdf5 import HDF5Error, export_minari, import_minari
from dreamer_pipeline.datasets.interop.minari_spec import jpeg_encoded
from dreamer_pipeline.datasets.store import ExperienceStore
from factories import make_store

minari = pytest.importorskip("minari")


def test_export_stamps_version_env_spec_author_and_recovers_the_environment(tmp_path, monkeypatch):
    pytest.importorskip("cv2", reason="the recovered environment's AtariPreprocessing needs OpenCV")
    store = make_store(tmp_path / "s.zarr", [10, 7])
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset_id = "dreamer-pipeline/pong/test-v0"
    data_dir = export_minari(store, tmp_path / "minari" / dataset_id, dataset_id=dataset_id, author="A. Researcher",
                             author_email="a@example.org", code_permalink="https://example.org/repo/tree/abc", progress=False)
    metadata = json.loads((data_dir / "metadata.json").read_text())
    assert metadata["minari_version"] == "0.5.4" and metadata["jpeg_encoding"] is False
    assert metadata["author"] == ["A. Researcher"] and metadata["code_permalink"].endswith("abc")
    loaded = minari.load_dataset(dataset_id)
    assert loaded.storage.metadata["author"] == {"A. Researcher"}
    env = loaded.recover_environment()
    try:
        assert env.spec.id == "ALE/Pong-v5" and env.unwrapped.spec.kwargs["repeat_action_probability"] == 0.25
        assert env.observation_space.shape == (64, 64, 1) and env.action_space.n == loaded.action_space.n == 6
        observation, _ = env.reset(seed=0)
        assert observation.shape == (64, 64, 1) and observation.dtype == np.uint8
        env.step(env.action_space.sample())
    finally:
        env.close()


def test_missing_jpeg_flag_means_jpeg_for_image_spaces_since_minari_0_5_3():
    image = json.dumps({"type": "Box", "dtype": "uint8", "shape": [64, 64, 1], "low": 0, "high": 255})
    vector = json.dumps({"type": "Box", "dtype": "float32", "shape": [4], "low": -1, "high": 1})
    assert jpeg_encoded({"observation_space": image}) is True
    assert jpeg_encoded({"observation_space": image, "minari_version": "0.5.4"}) is True
    assert jpeg_encoded({"observation_space": image, "minari_version": "0.5.2"}) is False  # before JPEG existed
    assert jpeg_encoded({"observation_space": image, "jpeg_encoding": False}) is False
    assert jpeg_encoded({"observation_space": vector}) is False


def test_raw_frames_under_a_jpeg_default_are_one_clear_error(tmp_path):
    data_dir = tmp_path / "foreign" / "data"
    data_dir.mkdir(parents=True)
    with h5py.File(data_dir / "main_data.hdf5", "w") as file:
        group = file.create_group("episode_0")
        group["observations"] = np.zeros((3, 64, 64, 1), np.uint8)
        group["actions"] = np.array([1, 2])
        group["rewards"] = np.zeros(2)
        group["terminations"] = np.array([0, 1], bool)
        group["truncations"] = np.zeros(2, bool)
    space = {"type": "Box", "dtype": "uint8", "shape": [64, 64, 1], "low": 0, "high": 255}
    (data_dir / "metadata.json").write_text(json.dumps({
        "dataset_id": "other/pong-v0", "observation_space": json.dumps(space),
        "action_space": json.dumps({"type": "Discrete", "n": 6, "start": 0})}))
    with pytest.raises(HDF5Error, match="jpeg_encoding"):
        import_minari(tmp_path / "foreign", tmp_path / "x.zarr", progress=False)


def test_action_set_comes_from_env_spec_not_from_the_count(tmp_path):
    """Centipede's minimal action set has all 18 actions: still the minimal set, not the full one."""
    from dreamer_pipeline.pipelines.data_commands.minari_env import ale_identity

    spec = {"id": "ALE/Centipede-v5", "kwargs": {"game": "centipede", "full_action_space": False}}
    minimal = ale_identity({"env_spec": json.dumps(spec)})["action_set"]
    assert len(minimal["ids"]) == 18 and minimal["full"] is False
    spec["kwargs"]["full_action_space"] = True
    full = ale_identity({"env_spec": json.dumps(spec)})["action_set"]
    assert full["full"] is True and full["ids"] == list(range(18))
    pong = ale_identity({"env_spec": json.dumps({"id": "ALE/Pong-v5", "kwargs": {"game": "pong"}})})["action_set"]
    assert pong["ids"] == [0, 1, 3, 4, 11, 12] and pong["full"] is False


def collect_minari_atari(root, monkeypatch, *, jpeg: bool, episodes=2, steps=24, dataset_id="atari/pong/expert-v0"):
    """A Minari Atari dataset as Farama's generation script makes them (ALE v5, RGB, no sticky
    actions), with minari's own DataCollector and random actions."""
    import ale_py
    import gymnasium as gym
    from minari import DataCollector

    gym.register_envs(ale_py)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    env = DataCollector(gym.make("ALE/Pong-v5", repeat_action_probability=0, max_episode_steps=steps),
                        jpeg_encoding=jpeg)
    for seed in range(episodes):
        env.reset(seed=seed)
        env.action_space.seed(seed)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    dataset = env.create_dataset(dataset_id=dataset_id, algorithm_name="random", author="test", description="test data",
                                 code_permalink="https://example.org")
    env.close()
    return dataset, root / dataset_id


@pytest.mark.parametrize("jpeg", [True, False])
def test_minari_atari_dataset_imports_with_an_explicit_conversion(tmp_path, monkeypatch, jpeg):
    from click.testing import CliRunner

    from dreamer_pipeline.pipelines.cli import main

    dataset, folder = collect_minari_atari(tmp_path / "minari", monkeypatch, jpeg=jpeg)
    assert dataset.observation_space.shape == (210, 160, 3)
    result = CliRunner().invoke(main, ["import-minari-atari", str(folder), str(tmp_path / "pong.zarr"), "--no-progress"])
    assert result.exit_code == 0, result.output
    store = ExperienceStore(tmp_path / "pong.zarr")
    assert store.attrs["game"] == "pong" and store.attrs["action_set"]["ids"] == [0, 1, 3, 4, 11, 12]
    origin = store.attrs["imported_from"]
    assert origin["jpeg"] is jpeg and origin["dataset_id"] == "atari/pong/expert-v0"
    assert any("grayscale" in step for step in origin["conversion"]) and any("210x160->64x64" in s for s in origin["conversion"])
    assert store.attrs["env"]["sticky_action_probability"] == 0.0 and store.attrs["env"]["max_pool"] is False
    index = store.episodes()
    for episode, start, length in zip(dataset.iterate_episodes(), index.starts, index.lengths):
        frames, _ = to_store_frames(episode.observations)  # minari's own decoding, then the conversion
        np.testing.assert_array_equal(store.read("image", start, start + length), frames)
        np.testing.assert_array_equal(store.read("action", start + 1, start + length), episode.actions)
        np.testing.assert_array_equal(store.read("reward", start + 1, start + length), episode.rewards)
        assert store.read("action", start, start + 1)[0] == 0
        assert bool(store.read("is_terminal", start + length - 1, start + length)[0]) == bool(episode.terminations[-1])


def test_import_hdf5_refuses_atari_screens_and_points_to_the_conversion(tmp_path, monkeypatch):
    _, folder = collect_minari_atari(tmp_path / "minari", monkeypatch, jpeg=False, episodes=1, steps=5)
    with pytest.raises(HDF5Error, match="import-minari-atari"):
        import_minari(folder, tmp_path / "x.zarr", progress=False)
