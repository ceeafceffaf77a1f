"""Attacks on the HDF5/Minari import and export (issue 9): hostile names, malformed files,
non-finite rewards, and imports and exports killed midway. Each ends in one `HDF5Error` (or a
clean state after a kill) with nothing written outside the target and nothing left that looks valid."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from factories import make_store, provenance, synthetic_episode

from dreamer_pipeline.datasets.dataset import DatasetError, open_dataset
from dreamer_pipeline.datasets.interop.hdf5 import HDF5Error, export_minari, import_minari
from dreamer_pipeline.datasets.store import ATTRS_KEY, ExperienceStore, StoreWriter


def two_store_export(tmp_path):
    make_store(tmp_path / "in/a.zarr", [8, 9], seed=1)
    make_store(tmp_path / "in/b.zarr", [7, 3], seed=2)
    export_minari(open_dataset(tmp_path / "in"), tmp_path / "export", progress=False)
    return tmp_path / "export/data/main_data.hdf5"


def rewrite_provenance(file_path, change):
    with h5py.File(file_path, "r+") as file:
        provenance = json.loads(file.attrs[ATTRS_KEY])
        change(provenance)
        file.attrs[ATTRS_KEY] = json.dumps(provenance)


def assert_nothing_written(tmp_path, target):
    """The target is absent and no staging folder is left beside it."""
    assert not target.exists()
    assert not (target.parent.exists() and [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")])


@pytest.mark.parametrize("name", ["../../ESCAPED", "/abs/path", "..", ".", "a/b", "", "x\\y", 7])
def test_store_names_from_the_file_never_become_paths(tmp_path, name):
    """Attack 2: names like ../../ESCAPED wrote stores outside the target."""
    file_path = two_store_export(tmp_path)
    rewrite_provenance(file_path, lambda p: p["stores"][1].update(name=name))
    target = tmp_path / "deep/down/imported"
    with pytest.raises(HDF5Error, match=r"provenance store 1: the store name .* is not a plain name"):
        import_minari(file_path, target, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "in"]  # nothing created, not even the parent
    assert not list(tmp_path.parent.rglob("ESCAPED")) and not Path("/abs/path").exists()


def set_root_attribute(file_path, value):
    with h5py.File(file_path, "r+") as file:
        file.attrs[ATTRS_KEY] = value


def add_group(file_path, name):
    with h5py.File(file_path, "r+") as file:
        file.copy(file["episode_0"], name)


@pytest.mark.parametrize("damage, problem", [
    (lambda f: rewrite_provenance(f, lambda p: p["stores"][0]["attrs"].update(chunk_steps=0)),
     "chunk_steps must be an integer from 1 to 65536, got 0"),
    (lambda f: set_root_attribute(f, "{not json"), "attribute is not valid JSON"),
    (lambda f: set_root_attribute(f, json.dumps({"format": "x"})), "has no 'stores' list"),
    (lambda f: set_root_attribute(f, json.dumps([1, 2])), "is a list, not an object"),
    (lambda f: add_group(f, "episode_abc"), "unexpected group 'episode_abc'"),
    (lambda f: add_group(f, "episode_03"), "number the same episode"),
    (lambda f: rewrite_provenance(f, lambda p: p["stores"][1].update(episodes=9)), "are not among the file's"),
    (lambda f: rewrite_provenance(f, lambda p: p["stores"][0].update(episodes="two")), "non-negative integer"),
    (lambda f: rewrite_provenance(f, lambda p: p["stores"][0].update(attrs=None)), "'attrs' object"),
])
def test_malformed_files_are_one_error(tmp_path, damage, problem):
    """Attack 6: chunk size 0, garbage provenance JSON, a missing `stores` key or a group
    `episode_abc` gave ZeroDivisionError, JSONDecodeError and KeyError."""
    file_path = two_store_export(tmp_path)
    damage(file_path)
    with pytest.raises(HDF5Error, match=problem):
        import_minari(file_path, tmp_path / "back", progress=False)
    assert_nothing_written(tmp_path, tmp_path / "back")


def test_garbage_metadata_json_is_one_error(tmp_path):
    file_path = two_store_export(tmp_path)
    for text in ("{oops", "[1]", '"text"'):
        (file_path.parent / "metadata.json").write_text(text)
        with pytest.raises(HDF5Error, match="metadata.json: (not valid JSON|holds a JSON)"):
            import_minari(file_path, tmp_path / "back", progress=False)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rewards_are_refused_at_import(tmp_path, bad):
    """Attack 7: NaN or inf rewards imported with exit code 0."""
    store = make_store(tmp_path / "s.zarr", [12, 30])
    export_minari(store, tmp_path / "export", progress=False)
    with h5py.File(tmp_path / "export/data/main_data.hdf5", "r+") as file:
        file["episode_1/rewards"][7] = bad
    with pytest.raises(HDF5Error, match="episode_1: rewards hold 1 non-finite values .* first at transition 7"):
        import_minari(tmp_path / "export", tmp_path / "back.zarr", progress=False)
    assert_nothing_written(tmp_path, tmp_path / "back.zarr")


# ----------------------------------------------------------------------------------------------
# Killed midway: nothing that looks valid, nothing that blocks the rerun

def cli(*args):
    return [sys.executable, "-m", "dreamer_pipeline.pipelines.cli", *map(str, args)]


def kill_when(process, condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"finished before the kill point: {process.communicate()}"
        assert time.monotonic() < deadline, "no kill point reached"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def one_commit_store(path, lengths):
    """A store of many episodes written in one commit (quick to build; the import commits each)."""
    rng = np.random.default_rng(0)
    with StoreWriter.open(path, provenance(), chunk_steps=16) as writer:
        writer.append_episodes([synthetic_episode(rng, n, 0, terminal=True, reward_free=False, num_actions=6)
                                for n in lengths])
    return path


def staging(folder, name):
    """Staging folders (and their owner files) of `folder/name`."""
    return [p for p in folder.iterdir() if p.name.startswith(f".{name}.staging-")] if folder.exists() else []


def test_a_killed_import_leaves_nothing_valid_and_blocks_nothing(tmp_path):
    """Attack 7: a killed import left a valid-looking store with 273 of 345 episodes."""
    store = one_commit_store(tmp_path / "s.zarr", [30] * 100)
    export_minari(store, tmp_path / "export", compression="lzf", progress=False)
    target = tmp_path / "datasets/imported.zarr"

    def store_begun():  # the staged store exists: the import is writing it
        return any((folder / "zarr.json").exists() for folder in staging(target.parent, target.name))

    process = subprocess.Popen(cli("import-hdf5", tmp_path / "export", target, "--no-progress"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kill_when(process, store_begun)
    assert not target.exists()
    with pytest.raises(DatasetError, match="holds no experience store"):  # the half import is not found
        open_dataset(tmp_path / "datasets")
    rerun = subprocess.run(cli("import-hdf5", tmp_path / "export", target, "--no-progress"), capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert not staging(target.parent, target.name)  # the killed run's folder was cleaned up
    original, back = ExperienceStore(store), ExperienceStore(target)
    assert back.num_episodes == 100
    for key in original.arrays:
        np.testing.assert_array_equal(original.read(key), back.read(key))


def test_a_killed_export_blocks_no_rerun(tmp_path):
    """Attack 7: a killed export left a file that blocked re-export."""
    store = one_commit_store(tmp_path / "s.zarr", [50] * 40)
    out = tmp_path / "export"

    def writing():
        return any((folder / "main_data.hdf5").exists() for folder in staging(out, "data") if folder.is_dir())

    process = subprocess.Popen(cli("export-hdf5", store, out, "--no-progress"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    kill_when(process, writing)
    assert not (out / "data").exists()
    rerun = subprocess.run(cli("export-hdf5", store, out, "--no-progress"), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert not staging(out, "data")  # the rerun removed the killed run's folder; its own became data/
    with h5py.File(out / "data/main_data.hdf5", "r") as file:
        assert len(file.keys()) == 40
