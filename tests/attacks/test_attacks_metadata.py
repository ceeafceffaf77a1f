"""Attacks on a store's array metadata (issue 16): each array's zarr.json is edited, and zarr obeys
it. An edited chunk key encoding made every reader see black frames that `verify` passed; a chunk
shape of 1e12 or 0, a declared length of 1e15 or codecs reduced to `bytes` were tracebacks.

Every array may only be what the writer writes (datasets/schema.py, `check_array_metadata`): each
edit is one `StoreError` naming the store, the array and the field, in every reader and writer.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from factories import assert_one_error, make_store, provenance, synthetic_episode

from dreamer_pipeline.datasets.store import ExperienceStore, StoreError, StoreWriter
from dreamer_pipeline.datasets.verify import verify_store
from dreamer_pipeline.pipelines.cli import main


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])



def edit(path, key, change):
    meta_path = path / key / "zarr.json"
    meta = json.loads(meta_path.read_text())
    change(meta)
    meta_path.write_text(json.dumps(meta))


def chunk_key_v2(meta):
    meta["chunk_key_encoding"] = {"name": "v2", "configuration": {"separator": "."}}


def chunk_steps(value):
    def change(meta):
        meta["chunk_grid"]["configuration"]["chunk_shape"][0] = value
    return change


def length(value):
    def change(meta):
        meta["shape"][0] = value
    return change


def codecs_bytes_only(meta):
    meta["codecs"] = [{"name": "bytes", "configuration": {"endian": "little"}}]


def fill_nan(meta):
    meta["fill_value"] = "NaN"


def big_endian(meta):
    meta["codecs"][0] = {"name": "bytes", "configuration": {"endian": "big"}}


def transformer(meta):
    meta["storage_transformers"] = [{"name": "sharding"}]


EDITS = [
    ("image", chunk_key_v2, "chunk_key_encoding"),
    ("image", chunk_steps(10**12), "chunk_grid"),
    ("image", chunk_steps(0), "chunk_grid"),
    ("is_first", chunk_steps(0), "chunk_grid"),
    ("image", length(10**15), "shape"),
    ("reward", codecs_bytes_only, "codecs"),
    ("reward", fill_nan, "fill_value"),
    ("action", big_endian, "codecs"),
    ("is_last", transformer, "storage_transformers"),
]


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """A real collected Breakout store, copied for each test (collect resumes it)."""
    store = tmp_path_factory.mktemp("collected") / "store.zarr"
    result = cli("collect", "--game", "breakout", "--store", store, "--steps", "60", "--envs", "1", "--seed", "1",
                 "--max-episode-steps", "20", "--no-progress")
    assert result.exit_code == 0, result.output
    return store


@pytest.mark.parametrize("key, change, field", EDITS, ids=[f"{k}-{f}-{c.__name__}" for k, c, f in EDITS])
def test_edited_array_metadata_is_one_error_everywhere(tmp_path, collected, key, change, field):
    """Item 5: a chunk key encoding of v2 "." read all committed frames as zeros, and verify said ok;
    the other edits were MemoryError, ZeroDivisionError or decoding tracebacks."""
    store = tmp_path / "store.zarr"
    shutil.copytree(collected, store)
    before = ExperienceStore(store).read(key)
    edit(store, key, change)
    needles = (str(store), f"array {key!r}", f"field {field!r}")
    with pytest.raises(StoreError) as error:
        ExperienceStore(store)
    assert all(needle in str(error.value) for needle in needles), error.value
    report = verify_store(store)
    assert not report.ok and f"field {field!r}" in report.problems[0]
    verify = cli("verify", store, "--no-progress")
    assert verify.exit_code == 2 and "CORRUPT" in verify.output and "Traceback" not in verify.output
    assert_one_error(cli("inspect", store), *needles)
    assert_one_error(cli("stats", store, "--no-progress"), *needles)
    assert_one_error(cli("collect", "--game", "breakout", "--store", store, "--steps", "120", "--envs", "1",
                         "--seed", "1", "--max-episode-steps", "20", "--no-progress"), *needles)
    edit(store, key, lambda meta: meta.update(json.loads((collected / key / "zarr.json").read_text())))
    np.testing.assert_array_equal(ExperienceStore(store).read(key), before)  # nothing was lost


def test_resume_trims_a_long_uncommitted_tail_without_enumerating_it(tmp_path):
    """A declared length of 1e11 steps (allowed, past the committed range) is trimmed by listing
    the chunk files that exist, not every chunk of the declared length (zarr's resize hung)."""
    path = make_store(tmp_path / "s.zarr", [20, 30], chunk_steps=16)
    for key in ("image", "action", "reward", "is_first", "is_last", "is_terminal"):
        edit(path, key, length(10**11))
    with StoreWriter.open(path, provenance(), fsync=False) as writer:
        writer.append_episode(synthetic_episode(np.random.default_rng(0), 7, 50, terminal=True, reward_free=False,
                                                num_actions=6))
    store = ExperienceStore(path)
    assert store.num_steps == 57 and store.arrays["image"].shape[0] == 57 and verify_store(path).ok


def test_counters_and_lengths_edited_to_a_trillion_steps_are_one_error_at_once(tmp_path):
    """Opening checked every chunk file of the committed range: counters and lengths edited to 1e12
    steps (allowed lengths) made it list 15 billion missing chunks (memory, hours)."""
    path = make_store(tmp_path / "s.zarr", [20, 30], chunk_steps=16)
    for key in ("image", "action", "reward", "is_first", "is_last", "is_terminal"):
        edit(path, key, length(10**12))
    group = json.loads((path / "zarr.json").read_text())
    group["attributes"]["dreamer_pipeline"].update(committed_steps=10**12)
    (path / "zarr.json").write_text(json.dumps(group))
    with pytest.raises(StoreError, match=r"array 'image' chunk 4 .* is missing .*\(1000 or more of the committed"):
        ExperienceStore(path)
