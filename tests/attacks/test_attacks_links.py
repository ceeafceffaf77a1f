"""Attacks through links planted in a shared datasets folder (issue 16): a `writer.lock` that is a
symbolic link, a hard link or a FIFO, `--break-lock` on a record naming a live process here, and
links where other files we write go (a chunk folder, a manifest, `stats --json`).

Whoever can write into a store's folder must not make the next writer (maybe root) write a file
of their choosing: each ends in one `StoreError` naming the store and the lock, nothing written.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from factories import assert_one_error, make_store, provenance, synthetic_episode

from dreamer_pipeline.datasets import store_lock
from dreamer_pipeline.datasets.dataset import open_dataset, write_manifest
from dreamer_pipeline.datasets.store import ExperienceStore, StoreError, StoreWriter
from dreamer_pipeline.datasets.store_lock import LOCK_NAME, StaleLockWarning, StoreLockedError
from dreamer_pipeline.pipelines.cli import main

VICTIM_TEXT = "precious\n"


def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT)
    return path



def test_collect_never_writes_through_a_symlinked_lock(tmp_path):
    """Attack 1: `collect` resuming a store whose writer.lock is a symlink truncated the target and
    wrote its lock record into it, then exited 0."""
    target = victim(tmp_path)
    store = tmp_path / "store.zarr"

    def collect(steps):
        return CliRunner().invoke(main, ["collect", "--game", "breakout", "--store", str(store), "--steps", str(steps),
                                         "--envs", "1", "--seed", "1", "--max-episode-steps", "20", "--no-progress"])

    assert collect(40).exit_code == 0
    steps = ExperienceStore(store).num_steps
    (store / LOCK_NAME).symlink_to(target)
    result = collect(80)
    assert_one_error(result, str(store), f"writer lock {store / LOCK_NAME} is a symbolic link")
    assert target.read_text() == VICTIM_TEXT and ExperienceStore(store).num_steps == steps


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlinked_lock_is_refused_for_a_new_and_an_old_store(tmp_path, dangling):
    target = tmp_path / "absent.txt" if dangling else victim(tmp_path)
    for store in (tmp_path / "new.zarr", make_store(tmp_path / "old.zarr", [10])):
        store.mkdir(exist_ok=True)
        (store / LOCK_NAME).symlink_to(target)
        with pytest.raises(StoreError, match=f"{store}: its writer lock .* is a symbolic link; refusing to open it"):
            StoreWriter.open(store, provenance())
        assert (store / LOCK_NAME).is_symlink()  # left for the owner to look at
    assert not target.exists() if dangling else target.read_text() == VICTIM_TEXT
    assert not (tmp_path / "new.zarr/zarr.json").exists()


def test_a_hard_linked_lock_is_refused(tmp_path):
    """Attack 1: a hard link to a file outside the store was truncated the same way."""
    target = victim(tmp_path)
    store = make_store(tmp_path / "s.zarr", [10])
    os.link(target, store / LOCK_NAME)
    with pytest.raises(StoreError, match=r"writer lock .* has 2 hard links"):
        StoreWriter.open(store, provenance())
    assert target.read_text() == VICTIM_TEXT


def test_a_fifo_lock_is_refused_without_blocking(tmp_path):
    """A FIFO planted as writer.lock made the writer block forever reading the holder record."""
    store = make_store(tmp_path / "s.zarr", [10])
    os.mkfifo(store / LOCK_NAME)
    code = ("from dreamer_pipeline.datasets.store import StoreWriter, StoreError; import sys, factories\n"
            f"try: StoreWriter.open({str(store)!r}, factories.provenance())\n"
            "except StoreError as e: print(e); sys.exit(3)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.dirname(__file__)),
                                                         os.environ.get("PYTHONPATH", "")])}
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("the writer blocked on a FIFO lock file")
    assert result.returncode == 3 and "is not a regular file" in result.stdout, result.stdout + result.stderr


# ----------------------------------------------------------------------------------------------
# --break-lock on a record naming this host and a live process


def live_record(process):
    return {"host": socket.gethostname(), "pid": process.pid, "process_start": store_lock._process_start(process.pid),
            "boot_id": store_lock._boot_id(), "started": "then"}


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def test_break_lock_takes_a_live_pid_s_lock_only_when_its_flock_is_free(tmp_path, sleeper):
    """Low: --break-lock was ignored for a record naming this host and a live pid. The flock,
    which a writer holds as long as it lives, proves the pid is not writing (a reused pid)."""
    store = make_store(tmp_path / "s.zarr", [10])
    (store / LOCK_NAME).write_text(json.dumps(live_record(sleeper)))
    with pytest.raises(StoreLockedError, match=f"pid {sleeper.pid}.*wait for it, or stop it"):
        StoreWriter.open(store, provenance())
    with pytest.warns(StaleLockWarning, match=f"--break-lock was given, and pid {sleeper.pid} .* holds no lock"):
        StoreWriter.open(store, provenance(), break_lock=True).close()
    assert not (store / LOCK_NAME).exists()


def test_break_lock_refuses_a_live_pid_where_flock_cannot_tell(tmp_path, sleeper, monkeypatch):
    """Without flock (the module's non-POSIX path) nothing proves the live pid is not writing."""
    monkeypatch.setattr(store_lock, "fcntl", None)
    store = make_store(tmp_path / "s.zarr", [10])
    (store / LOCK_NAME).write_text(json.dumps(live_record(sleeper)))
    with pytest.raises(StoreLockedError, match=f"locked by pid {sleeper.pid} on this host, which is alive.*stop "
                                               "that process first"):
        StoreWriter.open(store, provenance(), break_lock=True)
    assert json.loads((store / LOCK_NAME).read_text())["pid"] == sleeper.pid


def test_a_live_writer_keeps_its_lock_against_break_lock(tmp_path):
    store = make_store(tmp_path / "s.zarr", [10])
    with StoreWriter.open(store, provenance()):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(StoreLockedError, match="is being written by another writer"):
                StoreWriter.open(store, provenance(), break_lock=True)


# ----------------------------------------------------------------------------------------------
# Other files we write: never through a link planted at their path


def test_a_linked_chunk_folder_is_never_written_through(tmp_path):
    """A link planted where the next chunk's folder goes (`image/c/1 -> elsewhere`) made the
    commit create and replace the chunk file outside the store."""
    outside = tmp_path / "outside"
    (outside / "0/0").mkdir(parents=True)
    (outside / "0/0/0").write_text(VICTIM_TEXT)
    store = make_store(tmp_path / "s.zarr", [10], chunk_steps=16)
    (store / "image/c/1").symlink_to(outside)
    writer = StoreWriter.open(store, provenance(), fsync=False)
    episode = synthetic_episode(np.random.default_rng(0), 20, 10, terminal=True, reward_free=False, num_actions=6)
    with pytest.raises(StoreError, match=f"array folder {store / 'image/c/1'} is a symbolic link; refusing"):
        writer.append_episode(episode)
    writer.close()
    assert (outside / "0/0/0").read_text() == VICTIM_TEXT and sorted(p.name for p in outside.rglob("*")) == ["0", "0", "0"]
    assert ExperienceStore(store).num_steps == 10


def test_manifests_and_stats_json_replace_a_planted_link_instead_of_writing_through_it(tmp_path):
    target = victim(tmp_path)
    store = make_store(tmp_path / "s.zarr", [10])
    manifest, stats = tmp_path / "m.yaml", tmp_path / "stats.json"
    manifest.symlink_to(target)
    stats.symlink_to(target)
    write_manifest(manifest, [store])
    result = CliRunner().invoke(main, ["stats", str(store), "--json", str(stats), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert target.read_text() == VICTIM_TEXT
    assert not manifest.is_symlink() and not stats.is_symlink() and json.loads(stats.read_text())["steps"] == 10
    assert open_dataset(manifest).stores[0].path.resolve() == store
