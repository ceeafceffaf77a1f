"""Attacks on dataset sources (issue 16): manifests that fan out, list each other in a cycle, or
are not files; directories that contain themselves through a link. Each resolves in time, names
every store once, or is one `DatasetError`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from factories import make_store

from dreamer_pipeline.datasets.dataset import DatasetError, open_dataset, resolve_stores
from dreamer_pipeline.datasets.verify import verify_sources


def fan_out(tmp_path, levels, copies=10):
    """Manifest i lists manifest i+1 `copies` times; the last lists the store (each file < 1 KB)."""
    make_store(tmp_path / "s.zarr", [10])
    for level in reversed(range(levels)):
        entry = "s.zarr" if level == levels - 1 else f"m{level + 1}.yaml"
        (tmp_path / f"m{level}.yaml").write_text("stores:\n" + f"  - {entry}\n" * copies)
    assert all((tmp_path / f"m{level}.yaml").stat().st_size < 1024 for level in range(levels))
    return tmp_path / "m0.yaml"


def test_manifests_listing_the_next_ten_times_resolve_at_once(tmp_path):
    """Item 8: seven manifests, each listing the next ten times, made verify run 252 s at depth 5
    (10**depth resolutions). Each manifest is now resolved once, and lists each store once."""
    manifest = fan_out(tmp_path, 7)
    command = [sys.executable, "-m", "dreamer_pipeline.pipelines.cli", "verify", str(manifest), "--no-progress"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("verify of seven 10-fold manifests ran past 60 s")
    assert result.returncode == 0 and result.stdout.count("ok ") == 1, result.stdout + result.stderr
    stores, _ = resolve_stores(manifest)
    assert [p.resolve() for p in stores] == [tmp_path / "s.zarr"]
    assert open_dataset(manifest).num_steps == 10


def test_manifests_in_a_cycle_are_one_error_naming_it(tmp_path):
    make_store(tmp_path / "s.zarr", [10])
    (tmp_path / "a.yaml").write_text("stores: [s.zarr, b.yaml]\n")
    (tmp_path / "b.yaml").write_text("stores: [a.yaml]\n")
    with pytest.raises(DatasetError, match=r"manifests list each other in a cycle \(.*a.yaml -> .*b.yaml -> .*a.yaml\)"):
        resolve_stores(tmp_path / "a.yaml")


def test_a_directory_containing_itself_through_a_link_is_searched_once(tmp_path):
    """A link to a parent folder made the search descend 40 levels, list the store 40 times, then
    fail with ELOOP."""
    make_store(tmp_path / "data/s.zarr", [10])
    os.symlink(tmp_path / "data", tmp_path / "data/loop")
    stores, _ = resolve_stores(tmp_path / "data")
    assert stores == [tmp_path / "data/s.zarr"]
    assert [r.ok for r in verify_sources(tmp_path / "data")] == [True]


@pytest.mark.parametrize("kind", ["device", "fifo", "huge"])
def test_a_manifest_that_is_not_a_small_file_is_one_error(tmp_path, kind):
    """A manifest linked to /dev/zero was read without end (memory), a FIFO blocked for ever."""
    manifest = tmp_path / "m.yaml"
    if kind == "device":
        manifest.symlink_to("/dev/zero")
        problem = "is not a regular file"
    elif kind == "fifo":
        os.mkfifo(manifest)
        problem = "is not a regular file"
    else:
        manifest.write_text("stores:\n" + "  - s.zarr\n" * 200_000)
        problem = "is over 1 MiB"
    with pytest.raises(DatasetError, match=f"manifest {manifest}: {problem}"):
        resolve_stores(manifest)


@pytest.mark.parametrize("scheduler", ["banana", "http://host:80"])
def test_a_scheduler_that_is_no_address_is_one_error_at_once(tmp_path, scheduler):
    """`stats --scheduler banana` was a traceback, then a 60 s hang at exit closing the half-made client."""
    store = make_store(tmp_path / "s.zarr", [10])
    command = [sys.executable, "-m", "dreamer_pipeline.pipelines.cli", "stats", str(store), "--scheduler", scheduler,
               "--no-progress"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("stats hung")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith(f"error: dask scheduler {scheduler!r} is neither threads"), line
