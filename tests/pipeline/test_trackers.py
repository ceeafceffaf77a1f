"""Tracker backends behind MetricsLogger: the same keys everywhere, all against frames.

W&B runs offline and MLflow against a local file store; each test skips when its extra is absent.
"""

from __future__ import annotations

import json
import struct

import pytest

from dreamer_pipeline.models.config_schema import ConfigError
from dreamer_pipeline.pipelines.config import LoggingConfig, config_from_mapping
from dreamer_pipeline.pipelines.tracking.metrics import MetricsLogger

RECORDS = [({"wm/loss": 1.5, "wm/kl": 0.25}, 400), ({"wm/loss": 1.0, "wm/kl": 0.5}, 800)]
EVALUATION = ({"eval/return_mean": -20.0}, 800)


def log_two_stages(run_dir, settings):
    with MetricsLogger(run_dir / "metrics.jsonl", run_dir / "tensorboard", stage="train_world_model", iteration=0,
                       logging=settings, config={"variant": "test"}) as log:
        for metrics, frames in RECORDS:
            log.log(metrics, frames=frames, updates=frames // 64)
    with MetricsLogger(run_dir / "metrics.jsonl", run_dir / "tensorboard", stage="evaluate", iteration=0,
                       logging=settings) as log:
        log.log(EVALUATION[0], frames=EVALUATION[1], updates=12)


def jsonl_series(run_dir) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        for key, value in record.items():
            if "/" in key:
                series.setdefault(key, []).append((record["frames"], value))
    return series


def test_tensorboard_gets_the_jsonl_keys_against_frames(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "runs/pong/test/seed0"
    log_two_stages(run, LoggingConfig())
    accumulator = EventAccumulator(str(run / "tensorboard"))
    accumulator.Reload()
    series = jsonl_series(run)
    assert set(accumulator.Tags()["scalars"]) == set(series)
    for key, points in series.items():
        assert [(e.step, e.value) for e in accumulator.Scalars(key)] == points


def test_mlflow_one_run_per_pipeline_run_with_frames_as_step(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind a switch
    uri = f"file:{tmp_path / 'mlruns'}"
    run = tmp_path / "runs/pong/test/seed0"
    log_two_stages(run, LoggingConfig(backends=["jsonl", "mlflow"], mlflow_tracking_uri=uri, project="unit"))
    run_id = (run / "mlflow_run_id").read_text().strip()
    client = MlflowClient(tracking_uri=uri)
    [found] = client.search_runs([client.get_experiment_by_name("unit").experiment_id])
    assert found.info.run_id == run_id and found.info.run_name == "pong/test/seed0"
    assert found.data.params["variant"] == "test"
    series = jsonl_series(run)
    assert set(found.data.metrics) == set(series)
    for key, points in series.items():
        assert sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) == sorted(points)


def read_wandb_history(path) -> list[dict]:
    """History rows of an offline run's .wandb file (a LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    rows, buffer, position, block = [], b"", 7, 32768
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:
            position += left
            continue
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        buffer = chunk if kind in (1, 2) else buffer + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buffer)
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})
    return rows


def test_wandb_offline_runs_grouped_by_pipeline_run_with_frames_as_step(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "runs/pong/test/seed0"
    log_two_stages(run, LoggingConfig(backends=["jsonl", "wandb"], wandb_mode="offline"))
    # run.finish() can return before W&B's service has written the run's .wandb file (it was
    # still its 7-byte header in about 1 of 4 tries); shutting the service down, as a stage
    # process's exit does, flushes every file
    import wandb

    wandb.teardown()
    files = sorted((run / "wandb").glob("offline-run-*/*.wandb"))
    assert len(files) == 2  # one W&B run per stage
    logged: dict[str, list] = {}
    for path in files:
        for row in read_wandb_history(path):
            for key, value in row.items():
                if not key.startswith("_") and key != "frames":
                    logged.setdefault(key, []).append((row["frames"], value))
    series = jsonl_series(run)
    assert logged.keys() == series.keys()
    for key, points in series.items():
        assert sorted(logged[key]) == sorted(points)
    # the W&B run of a stage is grouped by the pipeline run and named by stage and iteration (the
    # run record in the .wandb file may be written late, so ask the live run)
    settings = LoggingConfig(backends=["wandb"], wandb_mode="offline")
    with MetricsLogger(run / "metrics.jsonl", None, stage="collect", iteration=2, logging=settings) as log:
        [tracker] = log.trackers
        assert tracker.run.group == "pong/test/seed0" and tracker.run.name == "pong/test/seed0/collect/iter0002"


def test_backends_are_validated():
    with pytest.raises(ConfigError, match="unknown backend"):
        config_from_mapping({"logging": {"backends": ["jsonl", "neptune"]}})
    with pytest.raises(ConfigError, match="wandb_mode"):
        config_from_mapping({"logging": {"wandb_mode": "sometimes"}})


def test_a_missing_extra_fails_the_configuration_check(monkeypatch):
    import importlib.util

    from dreamer_pipeline.pipelines.check_config import validate_config

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r'pip install "dreamer-pipeline\[wandb\]"'):
        validate_config(config_from_mapping({"logging": {"backends": ["wandb"]}}))


def test_training_metrics_are_plotted_at_the_paper_loops_frame():
    from dreamer_pipeline.pipelines.stages.training import update_frames

    cfg = config_from_mapping({})  # train_every 16, action repeat 4: one update per 64 frames
    # iteration k collected up to 3,200,000 frames and makes 15,625 updates for its 1,000,000 frames
    assert update_frames(cfg, 3_200_000, 15_625, 0, 0) == 2_200_000
    assert update_frames(cfg, 3_200_000, 15_625, 15_625, 0) == 3_200_000
    assert update_frames(cfg, 0, 100, 10, 40) == 50 * 64  # no environment frames: the updates' equivalent
