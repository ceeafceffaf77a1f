"""Attacks on the DQN Replay import (issue 16): truncated and damaged gzip streams, empty or
absurd arrays. Each was a traceback (or click's bare "Aborted!"); each is now one `error:` line
naming the file, and the committed episodes stay for a rerun.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from click.testing import CliRunner
from dqn_replay_files import LoggedReplayBuffer, play

from dreamer_pipeline.pipelines.cli import main

CAPACITY = 64


@pytest.fixture
def folder(tmp_path):
    buffer = LoggedReplayBuffer(tmp_path / "Pong/1/replay_logs", CAPACITY)
    play(buffer, [9, 12, 5, 12, 10, 7, 12, 3, 11, 12])
    return buffer.folder


def save(path, array):
    with gzip.open(path, "wb") as file:
        np.save(file, array, allow_pickle=False)


def truncated_gzip(folder):
    path = folder / "$store$_observation_ckpt.0.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "cannot be read past row 0 (EOFError"


def flip_crc(path):
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # the gzip trailer's CRC-32 of the data
    path.write_bytes(bytes(data))
    return path, "CRC check failed"


def crc_error(folder):
    return flip_crc(folder / "$store$_observation_ckpt.0.gz")


def crc_error_small(folder):
    return flip_crc(folder / "$store$_reward_ckpt.0.gz")


def empty_add_count(folder):
    path = folder / "add_count_ckpt.0.gz"
    save(path, np.zeros(0, np.int64))
    return path, "holds 0 values [];"


def zero_capacity(folder):
    for name, dtype in (("action", np.int32), ("reward", np.float32), ("terminal", np.uint8)):
        save(folder / f"$store$_{name}_ckpt.0.gz", np.zeros(0, dtype))
    save(folder / "$store$_observation_ckpt.0.gz", np.zeros((0, 84, 84), np.uint8))
    return folder / "$store$_action_ckpt.0.gz", "holds no entries"


def four_billion_actions(folder):
    path = folder / "$store$_action_ckpt.0.gz"
    with gzip.open(path, "wb") as file:  # a header declaring 4e9 int32 actions, then 8 bytes
        np.lib.format.write_array_header_1_0(file, {"descr": "<i4", "fortran_order": False,
                                                    "shape": (4_000_000_000,)})
        file.write(bytes(8))
    return path, "declares shape (4000000000,)"


@pytest.mark.parametrize("damage", [truncated_gzip, crc_error, crc_error_small, empty_add_count, zero_capacity, four_billion_actions])
def test_damaged_replay_files_are_one_error(tmp_path, folder, damage):
    path, problem = damage(folder)
    result = CliRunner().invoke(main, ["import-dqn-replay", str(folder), str(tmp_path / "d.zarr"), "--game", "pong",
                                       "--checkpoints", "0", "--no-progress"])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert str(path) in errors[0] and problem in errors[0], errors[0]
    assert "Traceback" not in result.output and "Aborted" not in result.output
