"""CLI: `stats`, `export-hdf5`, `import-hdf5` through the real `dreamer-pipeline` group."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from dreamer_pipeline.datasets.store import ExperienceStore
from dreamer_pipeline.pipelines.cli import main
from factories import make_store


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_stats_prints_a_table_and_writes_json(tmp_path):
    store = make_store(tmp_path / "a.zarr", [20, 30])
    result = run("stats", store, "--json", tmp_path / "out/stats.json", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "2 episodes, 50 steps" in result.output and "actions (transitions only)" in result.output
    stats = json.loads((tmp_path / "out/stats.json").read_text())
    assert stats["steps"] == 50 and stats["episode_length"]["max"] == 30
    printed = run("stats", store, "--recent-steps", "30", "--json", "-")
    assert json.loads(printed.output)["steps"] == 30


def test_stats_on_a_bad_path_is_one_clear_error(tmp_path):
    result = run("stats", tmp_path / "missing.zarr")
    assert result.exit_code == 2 and "error:" in result.output and "no such file" in result.output
    assert "Traceback" not in result.output


def test_export_then_import_round_trip(tmp_path):
    store = make_store(tmp_path / "a.zarr", [9, 14])
    exported = run("export-hdf5", store, tmp_path / "export", "--compression", "lzf", "--no-progress")
    assert exported.exit_code == 0, exported.output
    imported = run("import-hdf5", tmp_path / "export", tmp_path / "back.zarr", "--no-progress")
    assert imported.exit_code == 0, imported.output
    original, back = ExperienceStore(store), ExperienceStore(tmp_path / "back.zarr")
    for key in original.arrays:
        np.testing.assert_array_equal(original.read(key), back.read(key))
    again = run("import-hdf5", tmp_path / "export", tmp_path / "back.zarr", "--no-progress")
    assert again.exit_code == 2 and "already exists" in again.output
    (tmp_path / "junk.hdf5").write_bytes(b"\x00" * 64)
    junk = run("import-hdf5", tmp_path / "junk.hdf5", tmp_path / "junk.zarr")
    assert junk.exit_code == 2 and "not a readable HDF5 file" in junk.output
