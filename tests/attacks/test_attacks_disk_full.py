"""Disk full is one line (issue 16 item 6), tested for real: on a tiny tmpfs mounted for the test
(root only; skipped where mounting is not permitted), and through RLIMIT_FSIZE (EFBIG, any user).

Before: `collect` printed a double ENOSPC traceback and left 24 `*.partial` files, `export-hdf5`
crashed (exit 139) after 1,306 lines of h5py tracebacks, `import-hdf5` printed a traceback. Now
each is one `error:` line, exit 2, no temporary file is left, nothing committed is lost, and the
rerun after freeing space completes.
"""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest
from factories import make_store

from dreamer_pipeline.datasets.interop.hdf5 import export_minari
from dreamer_pipeline.datasets.store import ExperienceStore
from dreamer_pipeline.datasets.verify import verify_store


@pytest.fixture
def small_disk(tmp_path):
    """`small_disk(kib)`: a tmpfs of that size, remountable larger with `small_disk.resize(kib)`."""
    mount = tmp_path / "disk"
    mount.mkdir()

    class Disk:
        path = mount

        def __call__(self, kib):
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(mount)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()})")
            self.mounted = True
            return mount

        def resize(self, kib):
            subprocess.run(["mount", "-o", f"remount,size={kib}k", str(mount)], check=True)

    disk = Disk()
    disk.mounted = False
    yield disk
    if disk.mounted:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def run(*args, limit_bytes=None):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "dreamer_pipeline.pipelines.cli", *map(str, args), "--no-progress"],
                          capture_output=True, text=True, timeout=300, preexec_fn=limit if limit_bytes else None)


def assert_one_line(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


def leftovers(folder):
    return [p for p in folder.rglob("*") if p.name.endswith(".partial") or ".staging-" in p.name]


def test_collect_on_a_full_disk_is_one_line_and_resumes(small_disk):
    disk = small_disk(256)
    store = disk / "s.zarr"
    command = ["collect", "--game", "breakout", "--store", store, "--envs", "1", "--seed", "1", "--steps"]
    result = run(*command, 20000)
    assert_one_line(result, str(store), "No space left on device", "committed steps are intact")
    assert not leftovers(disk)
    committed = ExperienceStore(store).num_steps
    assert committed > 0 and verify_store(store).ok
    small_disk.resize(8192)
    assert run(*command, committed + 500).returncode == 0
    assert ExperienceStore(store).num_steps >= committed + 500 and verify_store(store).ok and not leftovers(disk)


def test_export_on_a_full_disk_is_one_line(tmp_path, small_disk):
    store = make_store(tmp_path / "s.zarr", [30, 30])  # noise frames: about 250 kB, as in the export
    disk = small_disk(160)
    assert_one_line(run("export-hdf5", store, disk / "out"), f"{disk / 'out/data'}: cannot be written: No space left")
    assert not (disk / "out/data").exists() and not leftovers(disk)
    small_disk.resize(64)  # now surely too small: refused before writing
    assert_one_line(run("export-hdf5", store, disk / "out"), "needs about 0.2 MiB", "nothing was written")
    small_disk.resize(2048)
    assert run("export-hdf5", store, disk / "out").returncode == 0 and not leftovers(disk)


def test_import_on_a_full_disk_is_one_line(tmp_path, small_disk):
    store = make_store(tmp_path / "s.zarr", [30, 30])
    export_minari(store, tmp_path / "export", progress=False)
    disk = small_disk(160)
    assert_one_line(run("import-hdf5", tmp_path / "export", disk / "back.zarr"),
                    f"{disk / 'back.zarr'}: cannot be written: No space left on device")
    assert not (disk / "back.zarr").exists() and not leftovers(disk)


def test_export_past_the_file_size_limit_is_one_line(tmp_path):
    """The same through RLIMIT_FSIZE (EFBIG), where no tmpfs can be mounted."""
    store = make_store(tmp_path / "s.zarr", [30, 30])
    result = run("export-hdf5", store, tmp_path / "out", limit_bytes=100_000)
    assert_one_line(result, "cannot be written: File too large")
    assert not (tmp_path / "out/data").exists() and not leftovers(tmp_path / "out")
