"""`dreamer-pipeline status RESULTS`: each run's place from the files the stages write (issue 18:
stages of minutes showed nothing in the terminal)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from dreamer_pipeline.pipelines.cli import main
from dreamer_pipeline.pipelines.config import load_config
from dreamer_pipeline.pipelines.config_snapshot import write_snapshot
from dreamer_pipeline.pipelines.run_layout import RunLayout
from dreamer_pipeline.pipelines.schedule import plan
from dreamer_pipeline.pipelines.tracking.metrics import MetricsLogger
from dreamer_pipeline.pipelines.tracking.status import last_metrics_line

ROOT = Path(__file__).resolve().parents[2]


def test_status_shows_the_running_stage_updates_frames_and_last_eval(tmp_path):
    results = tmp_path / "results"
    layout = RunLayout(str(results))
    cfg = load_config(ROOT / "config/debug.yaml")          # variant debug, iterations 0 and 1
    write_snapshot(layout.config_snapshot("debug"), cfg)
    iterations = plan(cfg)
    eval_path = Path(layout.eval_json("pong", "debug", 0, 0))
    eval_path.parent.mkdir(parents=True)
    eval_path.write_text(json.dumps({"game": "pong", "variant": "debug", "seed": 0, "iteration": 0,
                                     "frames": 800, "returns": [-21.0, -19.0], "mean_return": -20.0}))
    before, planned = iterations[0].updates, iterations[1].updates
    # a stage of iteration 1, whatever its name, halfway through its updates
    logger = MetricsLogger(layout.metrics("pong", "debug", 0), None, stage="some_training_stage", iteration=1,
                           logging=cfg.logging)
    logger.log({"wm/loss": 1.0, "time/some_training_stage_updates_per_s": 2.0}, frames=1200,
               updates=before + planned // 2)
    Path(layout.run_dir("breakout", "debug", 1)).mkdir(parents=True)   # a run that has not started

    result = CliRunner().invoke(main, ["status", str(results)])
    assert result.exit_code == 0, result.output
    breakout, pong = result.output.splitlines()          # sorted by variant, game, seed
    assert breakout.startswith("breakout/debug/seed1") and "iterations 0/2 evaluated" in breakout
    assert pong.startswith("pong/debug/seed0 | iterations 1/2 evaluated")
    assert f"some_training_stage (iteration 1) updates {planned // 2}/{planned}" in pong
    assert planned == 12 and "updates 6/12, about 3s left" in pong    # 6 updates left at 2 per second
    assert f"frames 1,200/{cfg.frames_budget:,}" in pong
    assert "last eval: iteration 0 return -20.0 at 800 frames" in pong


def test_status_reads_the_newest_whole_line_of_a_metrics_file_being_written(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"stage": "a", "updates": 1}) + "\n" + json.dumps({"stage": "b", "updates": 2})
                    + "\n" + '{"stage": "c", "upd')          # a line half written
    assert last_metrics_line(path)["stage"] == "b"
    assert last_metrics_line(tmp_path / "missing.jsonl") is None


def test_status_of_a_folder_without_runs_says_so(tmp_path):
    result = CliRunner().invoke(main, ["status", str(tmp_path)])
    assert result.exit_code != 0 and "no runs/ folder" in result.output
