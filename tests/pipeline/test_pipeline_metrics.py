"""metrics.jsonl + TensorBoard logging, and atomic outputs."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from dreamer_pipeline.datasets.durable import atomic_write, atomic_write_json, write_if_changed
from dreamer_pipeline.pipelines.tracking.metrics import MetricsLogger, read_metrics


def test_lines_hold_stage_iteration_frames_updates_and_wall_time(tmp_path):
    with MetricsLogger(tmp_path / "metrics.jsonl", tmp_path / "tb", stage="train_world_model", iteration=3) as log:
        log.log({"wm/loss": 1.5, "wm/kl": 0.25}, frames=4000, updates=10)
        log.log({"wm/loss": float("nan")}, frames=4000, updates=20)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["stage"] == "train_world_model" and lines[0]["iteration"] == 3
    assert (lines[0]["frames"], lines[0]["updates"], lines[0]["wm/loss"]) == (4000, 10, 1.5)
    assert lines[0]["wall_time"] > 1e9 and lines[0]["elapsed_s"] >= 0
    assert lines[1]["wm/loss"] == "nan"  # visible, and still valid JSON
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tmp_path / "tb"))
    accumulator.Reload()
    assert [e.value for e in accumulator.Scalars("wm/kl")] == [0.25]


def test_keys_must_be_namespaced(tmp_path):
    log = MetricsLogger(tmp_path / "m.jsonl", None, stage="s", iteration=0)
    with pytest.raises(ValueError, match="namespaced"):
        log.log({"loss": 1.0}, frames=0, updates=0)
    with pytest.raises(ValueError, match="namespaced"):
        log.log({"frames": 1.0}, frames=0, updates=0)


def _append(path, worker):
    log = MetricsLogger(path, None, stage=f"w{worker}", iteration=0)
    for i in range(200):
        log.log({"collect/value": i, "collect/padding": "x" * 200}, frames=i, updates=0)


def test_concurrent_writers_never_interleave_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    processes = [multiprocessing.Process(target=_append, args=(path, w)) for w in range(2)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 400 and all(json.loads(line)["collect/padding"] for line in lines)


def test_read_metrics_keeps_the_last_of_a_resumed_update(tmp_path):
    path = tmp_path / "m.jsonl"
    log = MetricsLogger(path, None, stage="train_world_model", iteration=1)
    log.log({"wm/loss": 3.0}, frames=8, updates=5)
    log.log({"wm/loss": 2.0}, frames=8, updates=5)  # the same update, logged again after a resume
    log.log({"wm/loss": 1.0}, frames=8, updates=10)
    assert [r["wm/loss"] for r in read_metrics(path)] == [2.0, 1.0]


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "eval.json"

    def broken(tmp):
        tmp.write_text('{"half": ')
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert not target.exists() and list(tmp_path.iterdir()) == []
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    mtime = target.stat().st_mtime_ns
    assert write_if_changed(target, target.read_text()) is False and target.stat().st_mtime_ns == mtime
