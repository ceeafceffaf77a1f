"""Attacks on HDF5 imports that read outside the file (issue 16): external storage, external links,
virtual datasets, soft links and their loops, and episodes declaring more frames than fit in memory.

Each is one `HDF5Error` (one `error:` line from `import-hdf5`) naming the file, the episode and the
member, before any byte of another file is read; nothing is written.
"""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from factories import make_store

from dreamer_pipeline.datasets.interop.hdf5 import HDF5Error, export_minari, import_minari
from dreamer_pipeline.pipelines.cli import main

FRAMES = 6  # episode_0 of the export: 6 steps, so 6 frames (5 transitions)


@pytest.fixture
def exported(tmp_path):
    store = make_store(tmp_path / "s.zarr", [FRAMES, 9])
    export_minari(store, tmp_path / "export", progress=False)
    return tmp_path / "export/data/main_data.hdf5"


def secret(tmp_path) -> tuple:
    """A file outside the dataset, exactly one episode's frames long (as /etc/passwd was)."""
    data = np.random.default_rng(5).integers(0, 256, size=(FRAMES, 64, 64), dtype=np.uint8)
    path = tmp_path / "secret.bin"
    path.write_bytes(data.tobytes())
    return path, data


def external_storage(tmp_path, file):
    path, _ = secret(tmp_path)
    del file["episode_0/observations"]
    file["episode_0"].create_dataset("observations", shape=(FRAMES, 64, 64), dtype=np.uint8,
                                     external=[(str(path), 0, FRAMES * 64 * 64)])
    return f"observations uses external storage ({path})"


def external_link(tmp_path, file):
    path, data = secret(tmp_path)
    with h5py.File(tmp_path / "other.hdf5", "w") as other:
        other["frames"] = data
    del file["episode_0/observations"]
    file["episode_0/observations"] = h5py.ExternalLink(str(tmp_path / "other.hdf5"), "/frames")
    return "observations is an external link to"


def virtual_dataset(tmp_path, file):
    path, data = secret(tmp_path)
    with h5py.File(tmp_path / "other.hdf5", "w") as other:
        other["frames"] = data
    layout = h5py.VirtualLayout(shape=(FRAMES, 64, 64), dtype=np.uint8)
    layout[:] = h5py.VirtualSource(str(tmp_path / "other.hdf5"), "frames", shape=(FRAMES, 64, 64))
    del file["episode_0/observations"]
    file["episode_0"].create_virtual_dataset("observations", layout)
    return "observations is a virtual dataset"


def soft_link_loop(tmp_path, file):
    del file["episode_0/observations"]
    file["episode_0/observations"] = h5py.SoftLink("/episode_0/loop")
    file["episode_0/loop"] = h5py.SoftLink("/episode_0/observations")
    return "observations is a soft link to /episode_0/loop"


def aliased_episode(tmp_path, file):
    file.move("episode_1", "episode_1_moved")
    file["episode_1"] = h5py.SoftLink("/episode_1_moved")
    del file["episode_1_moved"]  # a dangling soft link at the root
    return "episode_1 is a soft link"


def episode_external_link(tmp_path, file):
    with h5py.File(tmp_path / "other.hdf5", "w") as other:
        file.copy(file["episode_1"], other, "episode_1")
    del file["episode_1"]
    file["episode_1"] = h5py.ExternalLink(str(tmp_path / "other.hdf5"), "/episode_1")
    return "episode_1 is an external link to"


@pytest.mark.parametrize("attack", [external_storage, external_link, virtual_dataset, soft_link_loop,
                                    aliased_episode, episode_external_link])
def test_data_outside_the_file_is_refused(tmp_path, exported, attack):
    """Attack 2: observations in external storage pointing at /etc/passwd imported with exit 0, the
    file's bytes landing in the store's frames; a soft-link loop was a traceback."""
    with h5py.File(exported, "r+") as file:
        problem = attack(tmp_path, file)
    target = tmp_path / "back.zarr"
    with pytest.raises(HDF5Error, match=re.escape(problem)):
        import_minari(exported, target, progress=False)
    assert not target.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".back.zarr")]
    result = CliRunner().invoke(main, ["import-hdf5", str(exported), str(target), "--no-progress"])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and problem in errors[0], result.output
    assert "Traceback" not in result.output and not target.exists()


def test_an_episode_declaring_two_million_frames_is_refused_before_reading(tmp_path, exported):
    """2M declared frames of fill values (a file of a few kB) gave a MemoryError traceback."""
    frames = 2_000_000
    with h5py.File(exported, "r+") as file:
        group = file["episode_0"]
        for key in ("observations", "actions", "rewards", "terminations", "truncations"):
            del group[key]
        group.create_dataset("observations", shape=(frames, 64, 64), dtype=np.uint8, chunks=(64, 64, 64),
                             compression="gzip")
        group.create_dataset("actions", shape=(frames - 1,), dtype=np.int64, chunks=(4096,), compression="gzip")
        for key, dtype in (("rewards", np.float64), ("terminations", bool), ("truncations", bool)):
            group.create_dataset(key, shape=(frames - 1,), dtype=dtype, chunks=(4096,), compression="gzip")
    assert exported.stat().st_size < 1 << 20
    with pytest.raises(HDF5Error, match=r"episode_0: observations declares shape \(2000000, 64, 64\)"):
        import_minari(exported, tmp_path / "back.zarr", progress=False)
    assert not (tmp_path / "back.zarr").exists()


@pytest.mark.parametrize("inside", [".", "sub/folder", "image"])
def test_an_export_into_its_own_input_store_is_refused(tmp_path, inside):
    """Low: `export-hdf5 s.zarr s.zarr` wrote the export into the store it read."""
    store = make_store(tmp_path / "s.zarr", [FRAMES, 9])
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    result = CliRunner().invoke(main, ["export-hdf5", str(store), str(store / inside), "--no-progress"])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and f"lies inside the exported store {store}" in errors[0]
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before


def test_a_huge_metadata_json_is_refused_unread(tmp_path, exported):
    (exported.parent / "metadata.json").write_bytes(b"{" + b" " * (17 << 20) + b"}")
    with pytest.raises(HDF5Error, match="metadata.json: is over 16 MiB"):
        import_minari(exported, tmp_path / "back.zarr", progress=False)
