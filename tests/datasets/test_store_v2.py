"""Store format version 2 (datasets/schema.py): continuous float32 actions and RGB images, the
action space and image shape in the provenance; version-1 stores, written here byte for byte as
version 1 wrote them (zarr directly, not through the new writer), still open, verify, sample,
export, compute statistics and resume. Every bad description or action is one error naming the
store; nothing is written."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pytest
import zarr
from factories import make_store, provenance, step_id, synthetic_episode
from zarr.codecs import Crc32cCodec, ZstdCodec

from dreamer_pipeline.datasets.dataset import DatasetError, open_dataset
from dreamer_pipeline.datasets.device_replay import DeviceSequenceSampler
from dreamer_pipeline.datasets.frames import to_store_frames
from dreamer_pipeline.datasets.interop.hdf5 import HDF5Error, export_minari, import_minari
from dreamer_pipeline.datasets.sampler import SequenceSampler
from dreamer_pipeline.datasets.stats import dataset_stats, format_stats
from dreamer_pipeline.datasets.store import ATTRS_KEY, EpisodeError, ExperienceStore, StoreError, StoreWriter
from dreamer_pipeline.datasets.torch_loader import make_loader
from dreamer_pipeline.datasets.verify import verify_store

CONTINUOUS_3 = {"kind": "continuous", "shape": [3], "low": [-1.0] * 3, "high": [1.0] * 3}


def set_meta(path, **changes):
    group = zarr.open_group(str(path), mode="r+", zarr_format=3)
    group.attrs[ATTRS_KEY] = {**dict(group.attrs[ATTRS_KEY]), **changes}


# -- version 1, as version 1 wrote it ------------------------------------------------------------


def write_v1_store(path, lengths, seed=0, num_actions=6):
    """A store in format version 1's layout (docs/experience.md before version 2): zarr v3 group,
    image uint8 (N, 64, 64, 1) in 64-step chunks, per-step scalars in 8192-step chunks, zstd level 3
    + crc32c, fill value 0; the `dreamer_pipeline` attributes with format_version 1, the action set,
    the counters, and no action_space or image_shape."""
    rng = np.random.default_rng(seed)
    episodes, step = [], 0
    for index, length in enumerate(lengths):
        episodes.append(synthetic_episode(rng, length, step, terminal=index % 3 != 2, reward_free=False,
                                          num_actions=num_actions))
        step += length
    data = {key: np.concatenate([e[key] for e in episodes]) for key in episodes[0]}
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    layout = {"image": (np.uint8, (64, 64, 1), 64), "action": (np.int32, (), 8192), "reward": (np.float32, (), 8192),
              "is_first": (bool, (), 8192), "is_last": (bool, (), 8192), "is_terminal": (bool, (), 8192)}
    for key, (dtype, shape, chunk) in layout.items():
        array = group.create_array(key, shape=(step, *shape), chunks=(chunk, *shape), dtype=dtype,
                                   compressors=[ZstdCodec(level=3), Crc32cCodec()], fill_value=0)
        array[:] = data[key]
    group.attrs[ATTRS_KEY] = {
        **provenance(num_actions=num_actions, seed=seed), "format": "dreamer-pipeline/experience", "format_version": 1,
        "reward_free": False, "chunk_steps": 64, "scalar_chunk_steps": 8192,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(), "committed_steps": step,
        "committed_episodes": len(lengths),
    }
    return path, data


def test_a_version_1_store_opens_verifies_samples_exports_and_computes_statistics(tmp_path):
    path, data = write_v1_store(tmp_path / "v1.zarr", [30, 12, 50])
    store = ExperienceStore(path)
    assert store.format_version == 1 and "action_space" not in store.attrs
    assert store.action_space.to_dict() == {"kind": "discrete", "n": 6} and store.image_shape == (64, 64, 1)
    for key, values in data.items():
        np.testing.assert_array_equal(store.read(key), values)
    assert verify_store(path).ok
    batch = SequenceSampler(path, batch_size=4, seq_len=10, seed=0).sample()
    assert batch["image"].shape == (4, 10, 64, 64, 1) and batch["action"].dtype == np.int64
    np.testing.assert_array_equal(batch["action"], data["action"][step_id(batch["image"])])
    stats = dataset_stats(path)
    transition = ~data["is_first"]
    assert stats["actions"]["histogram"] == np.bincount(data["action"][transition], minlength=6).tolist()
    assert stats["pixels"]["channel_mean"] == pytest.approx([data["image"].mean()])
    export_minari(path, tmp_path / "export", progress=False)
    copy = ExperienceStore(import_minari(tmp_path / "export", tmp_path / "back.zarr", progress=False)[0])
    assert copy.format_version == 2 and copy.action_space == store.action_space
    for key, values in data.items():
        np.testing.assert_array_equal(copy.read(key), values)


def test_a_version_1_store_resumes_as_version_1(tmp_path):
    path, data = write_v1_store(tmp_path / "v1.zarr", [20])
    episode = synthetic_episode(np.random.default_rng(9), 7, 20, terminal=True, reward_free=False, num_actions=6)
    with StoreWriter.open(path, provenance(), fsync=False) as writer:
        writer.append_episode(episode)
    store = ExperienceStore(path)
    assert store.format_version == 1 and "action_space" not in store.attrs and store.num_steps == 27
    np.testing.assert_array_equal(store.read("action", 20), episode["action"])
    # the space a version-1 store reads as may be named explicitly; another one is refused
    StoreWriter.open(path, {**provenance(), "action_space": {"kind": "discrete", "n": 6}}).close()
    with pytest.raises(StoreError, match=r"v1.zarr: exists with action space discrete\(6\).*continuous\(3"):
        StoreWriter.open(path, provenance(), action_space=CONTINUOUS_3)
    with pytest.raises(StoreError, match=r"image shape \[64, 64, 1\].*\[64, 64, 3\]"):
        StoreWriter.open(path, provenance(), image_shape=[64, 64, 3])


def test_version_1_and_2_stores_of_one_action_set_form_one_dataset(tmp_path):
    old, _ = write_v1_store(tmp_path / "v1.zarr", [20, 15])
    new = make_store(tmp_path / "v2.zarr", [25])
    dataset = open_dataset(old, new)
    assert dataset.num_steps == 60 and dataset.num_actions == 6


# -- version 2: continuous actions, RGB images ---------------------------------------------------


def test_a_continuous_rgb_store_records_its_schema_and_samples_per_the_contract(tmp_path):
    path = make_store(tmp_path / "walker.zarr", [30, 12, 50], action_dims=3, channels=3, game="walker_walk",
                      chunk_steps=16)
    store = ExperienceStore(path)
    assert store.format_version == 2 and store.attrs["action_space"] == CONTINUOUS_3
    assert store.attrs["image_shape"] == [64, 64, 3] and "action_set" not in store.attrs
    assert store.arrays["action"].dtype == np.float32 and store.arrays["action"].shape == (92, 3)
    assert store.arrays["action"].chunks == (8192, 3)  # a per-step array: long chunks like the scalars
    assert verify_store(path).ok
    actions, images = store.read("action"), store.read("image")
    sampler = SequenceSampler(path, batch_size=5, seq_len=12, seed=3)
    batch = sampler.sample()
    assert batch["image"].shape == (5, 12, 64, 64, 3) and batch["image"].dtype == np.uint8
    assert batch["action"].shape == (5, 12, 3) and batch["action"].dtype == np.float32
    steps = step_id(batch["image"])
    np.testing.assert_array_equal(batch["action"], actions[steps])
    np.testing.assert_array_equal(batch["image"], images[steps])
    assert batch["is_first"][:, 0].all()
    device = DeviceSequenceSampler(open_dataset(path), "cpu", batch_size=5, seq_len=12, seed=3).sample()
    np.testing.assert_array_equal(device["action"].numpy(), batch["action"])
    assert device["action"].dtype.is_floating_point
    loaded = next(iter(make_loader(open_dataset(path), num_workers=0, seed=3, batch_size=5, seq_len=12, limit=1)))
    np.testing.assert_array_equal(loaded["action"].numpy(), batch["action"])


def test_actions_outside_the_space_are_refused_naming_the_store(tmp_path):
    rng = np.random.default_rng(0)
    good = synthetic_episode(rng, 6, 0, terminal=True, reward_free=False, num_actions=6, action_dims=3, channels=3)
    nan, outside = good["action"].copy(), good["action"].copy()
    nan[2, 1], outside[4, 0] = np.nan, 1.5
    bad = {
        "non-finite action vectors.*step 2": {**good, "action": nan},
        r"outside the bounds.*step 4: \[1.5": {**good, "action": outside},
        r"'action' has shape \(6, 4\), expected \(6, 3\)": {**good, "action": np.zeros((6, 4), np.float32)},
        "'action' has dtype int32, expected float32": {**good, "action": np.zeros((6, 3), np.int32)},
        r"'image' has shape \(6, 64, 64, 1\)": {**good, "image": good["image"][..., :1]},
        "action 0 and reward 0": {**good, "action": np.ones((6, 3), np.float32) * 0.5},
    }
    with StoreWriter.open(tmp_path / "c.zarr", provenance(), action_space=CONTINUOUS_3, image_shape=[64, 64, 3],
                          fsync=False) as writer:
        for message, episode in bad.items():
            with pytest.raises(EpisodeError, match=f"c.zarr: episode 2 of the 2 given was refused.*{message}"):
                writer.append_episodes([good, episode])
        assert writer.committed_steps == 0
    assert ExperienceStore(tmp_path / "c.zarr").num_steps == 0
    with StoreWriter.open(tmp_path / "d.zarr", provenance(num_actions=6), fsync=False) as writer:
        discrete = synthetic_episode(rng, 4, 0, terminal=True, reward_free=False, num_actions=6)
        with pytest.raises(EpisodeError, match="d.zarr: the episode was refused.*action index 6.*6 actions"):
            writer.append_episode({**discrete, "action": np.array([0, 1, 6, 2], np.int32)})


@pytest.mark.parametrize("space, image_shape, problem", [
    ({**CONTINUOUS_3, "low": [np.nan, -1, -1]}, None, "low=.*must be finite"),
    ({**CONTINUOUS_3, "high": [1, float("inf"), 1]}, None, "high=.*must be finite"),
    ({**CONTINUOUS_3, "low": [1, -1, -1]}, None, "not below high"),
    ({**CONTINUOUS_3, "low": [-1, -1]}, None, "low=.*list of 3 numbers"),
    ({"kind": "continuous", "shape": [10**9]}, None, r"shape \[1000000000\].*from 1 to 256"),
    ({"kind": "continuous", "shape": [2, 2]}, None, r"shape \[2, 2\]"),
    ({"kind": "box", "n": 3}, None, "kind 'box'"),
    ({"kind": "discrete", "n": 18}, None, "n=18, but the action_set lists 6"),
    ({"kind": "discrete", "n": True}, None, "n=True"),
    (CONTINUOUS_3, [64, 64, 2], r"image_shape is \[64, 64, 2\]"),
    (CONTINUOUS_3, [84, 84, 3], r"image_shape is \[84, 84, 3\]"),
])
def test_a_bad_description_is_one_error_and_creates_nothing(tmp_path, space, image_shape, problem):
    with pytest.raises(StoreError, match=f"s.zarr: cannot be written, nothing was written: .*{problem}"):
        StoreWriter.open(tmp_path / "s.zarr", provenance(), action_space=space, image_shape=image_shape)
    assert not (tmp_path / "s.zarr").exists()


def test_arguments_and_attributes_that_disagree_are_refused(tmp_path):
    attrs = {**provenance(), "action_space": CONTINUOUS_3}
    with pytest.raises(StoreError, match="argument .*disagrees with the attribute"):
        StoreWriter.open(tmp_path / "s.zarr", attrs, action_space={"kind": "discrete", "n": 6})
    with pytest.raises(StoreError, match="needs its action space"):
        StoreWriter.open(tmp_path / "t.zarr", {"game": "walker_walk"})


@pytest.mark.parametrize("changes, problem", [
    ({"action_space": {**CONTINUOUS_3, "low": [-1, None, -1]}}, "has a damaged schema record: .*low="),
    ({"image_shape": [64, 64, 4]}, r"has a damaged schema record: image_shape is \[64, 64, 4\]"),
    ({"action_space": {"kind": "continuous", "shape": [2]}}, r"array 'action' has step shape \(3,\), expected \(2,\)"),
    ({"image_shape": [64, 64, 1]}, r"array 'image' has step shape \(64, 64, 3\), expected \(64, 64, 1\)"),
    ({"format_version": 1}, "has a damaged schema record: a format version 1 store records no action_space"),
])
def test_a_store_whose_attributes_disagree_with_its_arrays_is_one_error(tmp_path, changes, problem):
    path = make_store(tmp_path / "c.zarr", [5], action_dims=3, channels=3)
    set_meta(path, **changes)
    with pytest.raises(StoreError, match=f"c.zarr: {problem}"):
        ExperienceStore(path)


def test_datasets_refuse_to_mix_kinds_naming_both_stores(tmp_path):
    atari = make_store(tmp_path / "atari.zarr", [5])
    rgb = make_store(tmp_path / "rgb.zarr", [5], action_dims=3, channels=3)
    gray = make_store(tmp_path / "gray.zarr", [5], action_dims=3, channels=1)
    wide = make_store(tmp_path / "wide.zarr", [5], action_dims=6, channels=3)
    for a, b in ((atari, rgb), (rgb, gray), (rgb, wide)):
        with pytest.raises(DatasetError, match=f"stores {a}.* and {b}.* hold different kinds of data"):
            open_dataset(a, b)


def test_continuous_statistics_match_numpy(tmp_path):
    paths = [make_store(tmp_path / "a.zarr", [20, 9], action_dims=2, channels=3, seed=1),
             make_store(tmp_path / "b.zarr", [14], action_dims=2, channels=3, seed=2)]
    stores = [ExperienceStore(p) for p in paths]
    action = np.concatenate([s.read("action") for s in stores]).astype(np.float64)
    first = np.concatenate([s.read("is_first") for s in stores])
    image = np.concatenate([s.read("image") for s in stores]).astype(np.float64)
    stats = dataset_stats(open_dataset(*paths), block_steps=8)
    actions = stats["actions"]
    assert actions["kind"] == "continuous" and actions["dims"] == 2 and actions["count"] == int((~first).sum())
    np.testing.assert_allclose(actions["mean"], action[~first].mean(axis=0))
    np.testing.assert_allclose(actions["std"], action[~first].std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(actions["min"], action[~first].min(axis=0))
    np.testing.assert_allclose(stats["pixels"]["channel_mean"], image.mean(axis=(0, 1, 2)))
    np.testing.assert_allclose(stats["pixels"]["channel_std"], image.std(axis=(0, 1, 2)), rtol=1e-6)
    assert stats["pixels"]["mean"] == pytest.approx(image.mean())
    assert "per channel mean" in format_stats(stats) and "bounds" in format_stats(stats)


def test_verify_finds_actions_outside_the_bounds(tmp_path):
    path = make_store(tmp_path / "c.zarr", [10, 6], action_dims=3, channels=3)
    array = zarr.open_group(str(path), mode="r+", zarr_format=3)["action"]
    array[7] = np.array([0.0, 2.0, 0.0], np.float32)
    array[10] = np.array([0.0, 0.5, 0.0], np.float32)  # the second episode's first step
    problems = " ".join(verify_store(path).problems)
    assert "step 10 holds an action other than 0 on its first step" in problems
    assert "outside the bounds" in problems and "first at step 7" in problems


# -- HDF5 (Minari layout) ------------------------------------------------------------------------


def test_a_continuous_rgb_store_round_trips_through_hdf5(tmp_path):
    import h5py

    path = make_store(tmp_path / "walker.zarr", [9, 14, 5], action_dims=3, channels=3, game="walker_walk")
    data_dir = export_minari(path, tmp_path / "export", progress=False)
    metadata = json.loads((data_dir / "metadata.json").read_text())
    assert json.loads(metadata["action_space"]) == {"type": "Box", "dtype": "float32", "shape": [3],
                                                    "low": [-1.0] * 3, "high": [1.0] * 3}
    assert json.loads(metadata["observation_space"])["shape"] == [64, 64, 3]
    with h5py.File(data_dir / "main_data.hdf5") as file:
        assert file["episode_1/actions"].shape == (13, 3) and file["episode_1/actions"].dtype == np.float32
        assert file["episode_1/observations"].shape == (14, 64, 64, 3)
        assert json.loads(file.attrs[ATTRS_KEY])["action_space"] == CONTINUOUS_3
    original, copy = ExperienceStore(path), ExperienceStore(import_minari(data_dir, tmp_path / "back.zarr",
                                                                          progress=False)[0])
    assert copy.attrs["action_space"] == CONTINUOUS_3 and copy.image_shape == (64, 64, 3)
    for key in original.arrays:
        np.testing.assert_array_equal(copy.read(key), original.read(key))


def test_minari_reads_a_continuous_export(tmp_path):
    minari = pytest.importorskip("minari")
    path = make_store(tmp_path / "walker.zarr", [6, 4], action_dims=2, channels=3, game="walker_walk")
    data_dir = export_minari(path, tmp_path / "export", progress=False)
    dataset = minari.MinariDataset(data_dir)
    assert dataset.action_space.shape == (2,) and dataset.observation_space.shape == (64, 64, 3)
    episode = next(dataset.iterate_episodes())
    np.testing.assert_array_equal(episode.actions, ExperienceStore(path).read("action", 1, 6))


def _tamper(data_dir, change):
    import h5py

    with h5py.File(data_dir / "main_data.hdf5", "r+") as file:
        provenance_ = json.loads(file.attrs[ATTRS_KEY])
        change(provenance_, file)
        file.attrs[ATTRS_KEY] = json.dumps(provenance_)


def _set_store_space(space):
    def change(provenance_, file):
        provenance_["stores"][0]["attrs"]["action_space"] = space
        provenance_["action_space"] = space
    return change


def _replace_actions(values):
    def change(provenance_, file):
        del file["episode_0/actions"]
        file["episode_0"].create_dataset("actions", data=values)
    return change


@pytest.mark.parametrize("change, problem", [
    (_set_store_space({**CONTINUOUS_3, "low": [float("nan")] * 3}), "low=.*finite"),
    (_set_store_space({"kind": "continuous", "shape": [10**7]}), r"shape \[10000000\]"),
    (_set_store_space({"kind": "continuous", "shape": [4]}), r"actions has shape \(5, 3\); expected \(5, 4\)"),
    (lambda p, f: p["stores"][0]["attrs"].update(image_shape=[64, 64, 2]), r"image_shape is \[64, 64, 2\]"),
    (lambda p, f: p.update(image_shape=[64, 64, 1]), r"holds continuous\(3, \[-1, 1\]\) actions and \[64, 64, 3\] "
                                                     r"images, but the file declares .*\[64, 64, 1\]"),
    (_replace_actions(np.full((5, 3), np.inf, np.float32)), "episode_0: .*non-finite action vectors"),
    (_replace_actions(np.full((5, 3), 3.0, np.float32)), "episode_0: .*outside the bounds"),
    (_replace_actions(np.zeros((5, 3), np.int64)), "episode_0: actions are int64; a continuous action space"),
])
def test_a_hostile_continuous_hdf5_is_one_error(tmp_path, change, problem):
    path = make_store(tmp_path / "walker.zarr", [6, 4], action_dims=3, channels=3)
    data_dir = export_minari(path, tmp_path / "export", progress=False)
    _tamper(data_dir, change)
    with pytest.raises(HDF5Error, match=f"main_data.hdf5: .*{problem}"):
        import_minari(data_dir, tmp_path / "back.zarr", progress=False)
    assert not (tmp_path / "back.zarr").exists()


def test_a_foreign_minari_dataset_with_a_box_action_space_imports_as_continuous(tmp_path):
    import h5py

    path = make_store(tmp_path / "walker.zarr", [6, 4], action_dims=2, channels=3)
    data_dir = export_minari(path, tmp_path / "export", progress=False)
    with h5py.File(data_dir / "main_data.hdf5", "r+") as file:  # no dreamer-pipeline provenance: foreign
        del file.attrs[ATTRS_KEY]
    metadata = json.loads((data_dir / "metadata.json").read_text())
    del metadata[ATTRS_KEY]
    (data_dir / "metadata.json").write_text(json.dumps(metadata))
    copy = ExperienceStore(import_minari(data_dir, tmp_path / "foreign.zarr", progress=False)[0])
    assert copy.action_space.to_dict() == {"kind": "continuous", "shape": [2], "low": [-1.0] * 2, "high": [1.0] * 2}
    assert copy.image_shape == (64, 64, 3)
    np.testing.assert_array_equal(copy.read("action"), ExperienceStore(path).read("action"))
    metadata["action_space"] = json.dumps({**json.loads(metadata["action_space"]), "low": [float("nan"), -1.0]})
    (data_dir / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(HDF5Error, match="metadata.json: the Box action_space: .*low=.*finite"):
        import_minari(data_dir, tmp_path / "bad.zarr", progress=False)


def test_rgb_frames_are_resized_per_channel():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 128, 128, 3), dtype=np.uint8)
    out, steps = to_store_frames(frames, channels=3)
    assert out.shape == (2, 64, 64, 3) and steps == ["resize 128x128->64x64 per channel (INTER_AREA)"]
    reference = frames.astype(np.float64).reshape(2, 64, 2, 64, 2, 3).mean(axis=(2, 4))  # exact 2x2 means
    np.testing.assert_array_equal(out, np.floor(reference + 0.5).astype(np.uint8))
    with pytest.raises(ValueError, match="RGB frames"):
        to_store_frames(frames[..., 0], channels=3)
