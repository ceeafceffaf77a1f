"""Attacks on experience stores (issue 9), each ending in one clear error with nothing lost.

Writers: a second writer on a store (two real collector processes), a dead writer's lock, a lock
of another host. Integrity: deleted and corrupt chunk files, through every reader (open, inspect,
stats, the sampler, export, verify). Resume on top of an inconsistent commit record. Non-finite
rewards, read-only and misplaced paths, and the order of fsyncs and renames of a commit.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from factories import assert_one_error, make_store, provenance, synthetic_episode

from dreamer_pipeline.datasets.dataset import DatasetError, open_dataset
from dreamer_pipeline.datasets.sampler import SequenceSampler
from dreamer_pipeline.datasets.store import ATTRS_KEY, EpisodeError, ExperienceStore, StoreError, StoreWriter
from dreamer_pipeline.datasets.store_lock import LOCK_NAME, StaleLockWarning, StoreLockedError
from dreamer_pipeline.datasets.verify import verify_store
from dreamer_pipeline.pipelines.cli import main


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)



def snapshot(path) -> dict:
    """Every file under `path` (but a lock file) with its size and content hash: to prove nothing was written."""
    return {str(p.relative_to(path)): (p.stat().st_size, hash(p.read_bytes()))
            for p in sorted(path.rglob("*")) if p.is_file() and p.name != LOCK_NAME}


def set_meta(path, **changes):
    group = zarr.open_group(str(path), mode="r+", zarr_format=3)
    group.attrs[ATTRS_KEY] = {**dict(group.attrs[ATTRS_KEY]), **changes}


# ----------------------------------------------------------------------------------------------
# One writer per store

def collect_command(store, steps):
    return [sys.executable, "-m", "dreamer_pipeline.pipelines.cli", "collect", "--game", "breakout",
            "--store", str(store), "--steps", str(steps), "--envs", "1", "--seed", "3", "--no-progress"]


def test_two_real_collectors_on_one_store_one_is_refused(tmp_path):
    """Attack 3: two collectors on one store both exited 0 and one's episodes were lost."""
    store = tmp_path / "shared.zarr"
    first = subprocess.Popen(collect_command(store, 3000), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (store / LOCK_NAME).exists():  # the first holds the lock; start the second now
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    second = subprocess.run(collect_command(store, 3000), capture_output=True, text=True, timeout=120)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2, second.stderr
    [line] = [line for line in second.stderr.splitlines() if line.strip()]
    assert line.startswith("error: experience store") and "is being written by another writer" in line
    assert f"pid {first.pid}" in line and socket.gethostname() in line
    written = ExperienceStore(store)
    assert len(written.attrs["runs"]) == 1 and written.num_steps >= 3000  # the refused one wrote nothing
    assert verify_store(store).ok and not (store / LOCK_NAME).exists()


def test_a_second_writer_in_the_same_process_is_refused_until_the_first_closes(tmp_path):
    path = make_store(tmp_path / "s.zarr", [10])
    with StoreWriter.open(path, provenance()):
        with pytest.raises(StoreLockedError, match=f"pid {os.getpid()}"):
            StoreWriter.open(path, provenance())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # readers take no lock and see no lock file
            assert ExperienceStore(path).num_steps == 10
    StoreWriter.open(path, provenance()).close()  # released
    assert not (path / LOCK_NAME).exists()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_dead_writer_on_this_host_is_taken_over_with_a_warning(tmp_path):
    path = make_store(tmp_path / "s.zarr", [10])
    (path / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid(), "started": "then"}))
    with pytest.warns(StaleLockWarning, match="is no longer running"):
        writer = StoreWriter.open(path, provenance())
    writer.append_episode(synthetic_episode(np.random.default_rng(0), 5, 10, terminal=True, reward_free=False,
                                            num_actions=6))
    writer.close()
    assert ExperienceStore(path).num_steps == 15 and not (path / LOCK_NAME).exists()


def test_a_writer_on_another_host_needs_break_lock(tmp_path):
    path = make_store(tmp_path / "s.zarr", [10])
    (path / LOCK_NAME).write_text(json.dumps({"host": "elsewhere.example", "pid": 1, "started": "then"}))
    before = snapshot(path)
    with pytest.raises(StoreLockedError, match="host 'elsewhere.example'.*--break-lock"):
        StoreWriter.open(path, provenance())
    assert snapshot(path) == before and "elsewhere" in (path / LOCK_NAME).read_text()
    with pytest.warns(StaleLockWarning, match="--break-lock"):
        StoreWriter.open(path, provenance(), break_lock=True).close()


# ----------------------------------------------------------------------------------------------
# Missing and corrupt chunks: never zeros, never a bare codec error

def delete_chunk(path, key, index):
    target = path / key / "c" / str(index)
    target = next(p for p in ([target] if target.is_file() else target.rglob("*")) if p.is_file())
    target.unlink()


@pytest.mark.parametrize("key, index", [("image", 1), ("reward", 0), ("is_first", 0)])
def test_a_missing_chunk_is_one_error_in_every_reader(tmp_path, key, index):
    """Attack 4: a deleted chunk read as 64 black frames, or rewards of 0, with exit code 0."""
    path = make_store(tmp_path / "s.zarr", [40, 50, 30], chunk_steps=16)
    delete_chunk(path, key, index)
    needles = (str(path), f"array '{key}' chunk {index}", "is missing")
    with pytest.raises(StoreError) as error:
        ExperienceStore(path)
    assert all(needle in str(error.value) for needle in needles)
    with pytest.raises(DatasetError, match=f"array '{key}' chunk {index}"):
        SequenceSampler(open_dataset(path), batch_size=2, seq_len=8)
    assert_one_error(cli("inspect", path), *needles)
    assert_one_error(cli("stats", path, "--no-progress"), *needles)
    assert_one_error(cli("export-hdf5", path, tmp_path / "out", "--no-progress"), *needles)
    assert not (tmp_path / "out").exists()
    verify = cli("verify", path, "--no-progress")
    assert verify.exit_code == 2 and f"CORRUPT  {path}: array '{key}' chunk {index}" in verify.output


def test_verify_passes_good_stores_of_several_games_and_names_the_bad_one(tmp_path):
    make_store(tmp_path / "data/pong.zarr", [20, 30], game="pong", num_actions=6)
    make_store(tmp_path / "data/breakout.zarr", [25], game="breakout", num_actions=4)  # another action set: fine
    bad = make_store(tmp_path / "data/bad.zarr", [40, 40], chunk_steps=16)
    good = cli("verify", tmp_path / "data/pong.zarr", tmp_path / "data/breakout.zarr", "--no-progress")
    assert good.exit_code == 0 and good.output.count("ok       ") == 2, good.output
    delete_chunk(bad, "image", 3)
    result = cli("verify", tmp_path / "data", "--no-progress")
    assert result.exit_code == 2 and result.output.count("ok       ") == 2
    assert f"CORRUPT  {bad}: array 'image' chunk 3" in result.output
    assert "error: 1 of 3 store(s) failed verification" in result.output


def corrupt_chunk(path, key, index, truncate=False):
    chunk = path / key / "c" / str(index)
    chunk = chunk if chunk.is_file() else next(p for p in chunk.rglob("*") if p.is_file())
    data = bytearray(chunk.read_bytes())
    if truncate:
        del data[len(data) // 2 :]
    else:
        data[len(data) // 2] ^= 0xFF  # one flipped bit in noise frames: only the checksum can see it
    chunk.write_bytes(bytes(data))


@pytest.mark.parametrize("checksum, problem", [(True, "fails its crc32c checksum"), (False, "cannot be decoded")])
def test_a_corrupt_chunk_names_the_store_the_array_and_the_chunk(tmp_path, checksum, problem):
    """Attack 6: a corrupt chunk was a bare `Zstd decompression error` naming nothing. Stores
    written before checksums still get the clear error when the data cannot be decoded."""
    path = tmp_path / "s.zarr"
    with StoreWriter.open(path, provenance(), chunk_steps=16, checksum=checksum) as writer:
        rng = np.random.default_rng(1)
        for length in (40, 50):
            writer.append_episode(synthetic_episode(rng, length, 0, terminal=True, reward_free=False, num_actions=6))
    corrupt_chunk(path, "image", 2, truncate=not checksum)
    store = ExperienceStore(path)  # the file exists: opening is fine, reading it is not
    with pytest.raises(StoreError, match=rf"s.zarr: array 'image' chunk 2 \(steps 32-47\) {problem}"):
        store.read("image", 30, 40)
    assert store.read("image", 0, 32).shape == (32, 64, 64, 1)  # the other chunks still read
    sampler = SequenceSampler(open_dataset(path), batch_size=8, seq_len=40, seed=0)
    with pytest.raises(StoreError, match="array 'image' chunk 2"):
        for _ in range(20):
            sampler.sample()
    sampler.close()
    assert_one_error(cli("inspect", path), "array 'image' chunk 2", problem)
    assert cli("verify", path, "--no-progress").exit_code == 2


# ----------------------------------------------------------------------------------------------
# Resume on top of an inconsistent commit record: one error, nothing written

def damage_counter(path):
    set_meta(path, committed_steps=50)  # inside the second episode


def damage_episodes(path):
    set_meta(path, committed_episodes=2)


def damage_flags(path):
    delete_chunk(path, "is_first", 0)


def damage_text(path):
    set_meta(path, committed_steps="abc")


@pytest.mark.parametrize("damage, problem", [
    (damage_counter, "do not delimit whole episodes"),
    (damage_episodes, "flags delimit 3 episodes, attributes say 2"),
    (damage_flags, "array 'is_first' chunk 0"),
    (damage_text, "committed_steps is 'abc'"),
])
def test_resume_on_an_inconsistent_store_writes_nothing(tmp_path, damage, problem):
    """Attack 5: `collect` cut 2,052 real steps on top of a damaged record and exited 0."""
    path = make_store(tmp_path / "s.zarr", [40, 30, 20], chunk_steps=16)
    damage(path)
    before = snapshot(path)
    with pytest.raises(StoreError, match=problem):
        StoreWriter.open(path, provenance())
    assert snapshot(path) == before and not (path / LOCK_NAME).exists()
    assert_one_error(cli("inspect", path), problem)


def test_collect_resume_on_a_moved_counter_is_refused(tmp_path):
    store = tmp_path / "c.zarr"
    command = ["collect", "--game", "breakout", "--store", store, "--envs", "2", "--seed", "1",
               "--max-episode-steps", "20", "--no-progress", "--steps"]
    assert cli(*command, 60).exit_code == 0
    committed = ExperienceStore(store)
    set_meta(store, committed_steps=committed.num_steps - 3)  # mid-episode
    before = snapshot(store)
    assert_one_error(cli(*command, 200), "cannot be resumed, nothing was written", "verify")
    assert snapshot(store) == before


# ----------------------------------------------------------------------------------------------
# Bad data and bad places

def test_non_finite_rewards_are_refused_at_write(tmp_path):
    """Attack 7: NaN or inf rewards were stored and later gave NaN losses."""
    rng = np.random.default_rng(2)
    with StoreWriter.open(tmp_path / "s.zarr", provenance()) as writer:
        for bad in (np.nan, np.inf):
            episode = synthetic_episode(rng, 6, 0, terminal=True, reward_free=False, num_actions=6)
            episode["reward"][3] = bad
            with pytest.raises(EpisodeError, match="non-finite values.*step 3"):
                writer.append_episode(episode)
        episode = synthetic_episode(rng, 6, 0, terminal=True, reward_free=False, num_actions=6)
        episode["action"][2] = 6
        with pytest.raises(EpisodeError, match="action index 6.*6 actions"):
            writer.append_episode(episode)
        assert writer.committed_steps == 0


def test_os_errors_on_our_paths_are_one_line(tmp_path):
    """Attack 6: a read-only store printed a traceback. (Tests may run as root, where permissions
    do not bind, so a store below a file stands in for an unwritable place.)"""
    (tmp_path / "file").write_text("not a folder")
    result = cli("collect", "--game", "breakout", "--store", tmp_path / "file/store.zarr", "--steps", "10",
                 "--no-progress")
    assert_one_error(result, str(tmp_path / "file"))
    if os.geteuid() != 0:
        path = make_store(tmp_path / "ro.zarr", [10])
        for folder in [path, *[p for p in path.rglob("*") if p.is_dir()]]:
            folder.chmod(0o555)
        try:
            assert_one_error(cli("collect", "--game", "breakout", "--store", path, "--steps", "20", "--no-progress"),
                             "Permission denied")
        finally:
            for folder in [path, *[p for p in path.rglob("*") if p.is_dir()]]:
                folder.chmod(0o755)


def test_debug_shows_the_traceback(tmp_path):
    result = CliRunner().invoke(main, ["--debug", "inspect", str(tmp_path / "missing.zarr")])
    assert result.exit_code == 1 and isinstance(result.exception, StoreError)


# ----------------------------------------------------------------------------------------------
# Durability: what a commit fsyncs, and in which order

def test_a_commit_fsyncs_every_file_and_folder_before_the_commit_record(tmp_path, monkeypatch):
    """Attack 9: chunk files were renamed into place without fsync."""
    writer = StoreWriter.open(tmp_path / "s.zarr", provenance(), chunk_steps=16)
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(source, target):
        events.append(("replace", str(source), str(target)))
        return real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    writer.append_episode(synthetic_episode(np.random.default_rng(3), 40, 0, terminal=True, reward_free=False,
                                            num_actions=6))
    monkeypatch.undo()
    writer.close()
    replaces = [event for event in events if event[0] == "replace"]
    record = os.path.realpath(tmp_path / "s.zarr" / "zarr.json")
    assert os.path.realpath(replaces[-1][2]) == record  # the commit record is replaced last
    commit = events.index(replaces[-1])
    durable_before_commit = {os.path.realpath(e[1]) for e in events[:commit] if e[0] == "fsync"}
    for event in replaces:
        _, source, target = event
        synced_before = {os.path.realpath(e[1]) for e in events[: events.index(event)] if e[0] == "fsync"}
        assert os.path.realpath(source) in synced_before, f"{target} replaced before its data was fsynced"
        if event is not replaces[-1]:
            assert os.path.realpath(os.path.dirname(target)) in durable_before_commit, f"{target}'s folder"
    assert events[-1] == ("fsync", os.path.dirname(record))  # then the record's own folder
    assert len([r for r in replaces if "/c/" in r[2]]) == 3 + 5  # 3 image chunks, 1 chunk per scalar array
