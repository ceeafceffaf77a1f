"""Scores of raw-return games (Catch, Control Suite tasks) beside Atari's normalised scores."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from dreamer_pipeline.pipelines.scores import reference_curves
from dreamer_pipeline.pipelines.scores.command import scores_command, write_scores
from dreamer_pipeline.pipelines.scores.games import (DMC_VISION_TASKS, dmc_tasks, game_suite,
                                                     resolve_games)
from dreamer_pipeline.pipelines.scores.inputs import read_eval_json, read_runs, read_score_csv
from dreamer_pipeline.pipelines.scores.normalised import ScoresError, aggregate
from dreamer_pipeline.pipelines.scores.raw_returns import published_at
from dreamer_pipeline.pipelines.scores.reference_curves import reference_curve, reference_games

from test_scores import write_eval

REAL_DATA = Path(__file__).parents[2] / "pipelines" / "data"
# A Control Suite curve file in the schema of dreamerv2_curves.json: a 30k-frame grid.
TINY_DMC_CURVES = {
    "source": "test", "method": "dreamerv2", "frames_start": 30_000, "frames_step": 30_000,
    "games": {"walker_walk": {"seeds": [2, 2, 2], "mean": [100.0, 400.0, 700.0],
                              "std": [10.0, 20.0, 30.0], "final_scores": [650.0, 750.0],
                              "final_frames": [90_000, 90_000]}},
}


@pytest.fixture
def dmc_curves(tmp_path, monkeypatch):
    """A package data dir with the real Atari curves and a tiny Control Suite curve file."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(REAL_DATA / "dreamerv2_curves.json", data)
    (data / "dreamerv2_dmc_curves.json").write_text(json.dumps(TINY_DMC_CURVES))
    monkeypatch.setattr(reference_curves, "DATA_DIR", data)
    reference_curves._load.cache_clear()
    yield data
    reference_curves._load.cache_clear()


def write_raw_runs(runs: Path) -> None:
    """catch-1: two seeds; walker_walk: two seeds evaluated at 40k and 80k frames."""
    for seed, returns in ((0, [2.0, 4.0]), (1, [6.0, 6.0])):
        write_eval(runs, "catch-1", seed, 1, [-3.0], frames_per_iteration=4_000)
        write_eval(runs, "catch-1", seed, 2, returns, frames_per_iteration=4_000)
    for seed, final in ((0, 500.0), (1, 700.0)):
        write_eval(runs, "walker_walk", seed, 1, [50.0], frames_per_iteration=40_000)
        write_eval(runs, "walker_walk", seed, 2, [final, final + 2.0],
                   frames_per_iteration=40_000)


# --- names -----------------------------------------------------------------------------------

def test_game_kinds():
    assert [game_suite(name) for name in ("pong", "catch", "catch-3", "walker_walk",
                                          "cup_catch", "point_mass_easy")] == \
        ["atari", "catch", "catch", "dmc", "dmc", "dmc"]
    assert set(DMC_VISION_TASKS) <= set(dmc_tasks()) and len(DMC_VISION_TASKS) == 20
    assert resolve_games("walker_walk, catch-1,pong") == ("walker_walk", "catch-1", "pong")


@pytest.mark.parametrize("name, message", [
    ("pongg", "unknown Atari game 'pongg'; did you mean 'pong'"),
    ("mspacman", "unknown Atari game 'mspacman'; did you mean 'ms_pacman'"),
    ("walker_wlak", "unknown Control Suite task 'walker_wlak'; did you mean 'walker_walk'"),
    ("cartpole_swingupp", "unknown Control Suite task .*'cartpole_swingup'"),
    ("catch1", "unknown game 'catch1': the Catch games are 'catch' and 'catch-N'"),
    ("catch-x", "unknown game 'catch-x': the Catch games"),
    ("zzzz", "unknown Atari game 'zzzz' Game names.*Raw-return games: 'catch'"),
])
def test_misspelt_names_are_refused_with_close_matches(tmp_path, name, message):
    with pytest.raises(ScoresError, match=message):
        resolve_games(name)
    path = write_eval(tmp_path, "pong", 0, 1, [1.0])
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "game": name}))
    with pytest.raises(ScoresError, match=message):
        read_eval_json(path)
    table = tmp_path / "t.csv"
    table.write_text(f"game,method,seed,score\n{name},a,0,1\n")
    with pytest.raises(ScoresError, match=f":2: {message}"):
        read_score_csv(table)


def test_csv_accepts_raw_return_games(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("game,method,seed,score,frames\ncartpole_swingup,a,0,300,100000\n"
                     "catch,a,0,7,8000\n")
    assert [r.game for r in read_score_csv(table)] == ["cartpole_swingup", "catch"]


# --- published curves ------------------------------------------------------------------------

def test_interpolation_on_the_published_curve_by_hand(dmc_curves):
    assert "walker_walk" in reference_games() and "pong" in reference_games()
    curve = reference_curve("walker_walk")
    assert curve.frames.tolist() == [30_000, 60_000, 90_000]
    # 80k lies 20k of 30k between 60k (400) and 90k (700): 400 + 300 * 2 / 3.
    assert curve.interpolate(80_000) == pytest.approx(600.0)
    assert curve.interpolate(40_000) == pytest.approx(100.0 + 300.0 / 3)
    assert curve.interpolate(90_000) == 700.0 and curve.interpolate(30_000) == 100.0
    assert curve.interpolate(29_999) is None and curve.interpolate(90_001) is None
    assert published_at("walker_walk", [40_000, 80_000]) == pytest.approx((200.0 + 600.0) / 2)
    assert published_at("walker_walk", [80_000, None]) is None
    assert published_at("cartpole_swingup", [80_000]) is None     # no curve in this file
    assert curve.final_score == 700.0
    assert reference_curve("pong").frames[0] == 1_000_000            # Atari still found


def test_a_game_in_two_curve_files_is_an_error(dmc_curves):
    clash = dict(TINY_DMC_CURVES, games={"pong": TINY_DMC_CURVES["games"]["walker_walk"]})
    (dmc_curves / "dreamerv2_dmc_curves.json").write_text(json.dumps(clash))
    reference_curves._load.cache_clear()
    with pytest.raises(ScoresError, match="'pong' has a curve in both"):
        reference_games()


def test_real_dmc_curves_match_the_published_points():
    assert set(DMC_VISION_TASKS) <= set(reference_games())
    # The published points (mean over 5 seeds, 30k-frame grid) the issue quotes: 387 and 799
    # for cartpole_swingup, 670 and 911 for walker_stand, nearest to 100k and 200k frames.
    for task, points in (("cartpole_swingup", {90_000: 387, 210_000: 799}),
                         ("walker_stand", {90_000: 670, 210_000: 911})):
        curve = reference_curve(task)
        for frames, value in points.items():
            assert curve.interpolate(frames) == pytest.approx(value, abs=1.0)


# --- reports ---------------------------------------------------------------------------------

def test_raw_return_games_report_without_aggregates(tmp_path, dmc_curves):
    runs, out = tmp_path / "runs", tmp_path / "scores"
    write_raw_runs(runs)
    result = CliRunner().invoke(scores_command, [str(runs), "--out", str(out),
                                                 "--bootstrap-reps", "50"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "scores.json").read_text())
    assert data["games"] == [] and data["raw_return_games"] == ["catch-1", "walker_walk"]
    assert data["aggregates"] == {} and data["statistics"]["methods"] == {}
    assert data["per_game"] == [] and data["comparison"] == [] and data["warnings"] == []
    catch, walker = data["raw_returns"]
    # Final means: catch-1 seed 0 (2 + 4) / 2 = 3, seed 1 6; walker_walk 501 and 701.
    assert catch["seeds"] == {"0": 3.0, "1": 6.0} and catch["score"] == 4.5
    assert catch["score_std"] == pytest.approx(statistics.stdev([3.0, 6.0]))
    assert catch["frames"] == [8_000, 8_000] and catch["suite"] == "catch"
    assert catch["dreamerv2_at_frames"] is None and catch["dreamerv2_final"] is None
    assert walker["score"] == 601.0 and walker["frames"] == [80_000, 80_000]
    assert walker["dreamerv2_at_frames"] == pytest.approx(600.0)
    assert walker["dreamerv2_final"] == 700.0 and walker["dreamerv2_final_frames"] == [90_000] * 2
    markdown = (out / "scores.md").read_text()
    assert "No Atari games, so no human-normalised aggregates" in markdown
    assert "## Aggregates" not in markdown and "## Warnings" not in markdown
    assert "### walker_walk (Control Suite)" in markdown
    assert "| default | 2 | 80,000 | 601.0 | 141.4 | 600.0 | 700.0 at 90,000 |" in markdown
    assert "| default | 2 | 8,000 | 4.5 | 2.1 | — | — |" in markdown
    plots = sorted(path.name for path in (out / "plots").iterdir())
    assert plots == ["catch-1.png", "catch-1.svg", "walker_walk.png", "walker_walk.svg"]
    assert "walker_walk" in result.output and "601.0 ± 141.4" in result.output


def test_mixed_atari_and_dmc_keep_the_atari_aggregates(tmp_path, dmc_curves):
    atari_runs, mixed_runs = tmp_path / "atari", tmp_path / "mixed"
    for runs in (atari_runs, mixed_runs):
        for seed, offset in ((0, 0.0), (1, 4.0)):
            for iteration in (1, 2, 3):
                write_eval(runs, "pong", seed, iteration, [iteration - 21.0 + offset, -19.0])
                write_eval(runs, "breakout", seed, iteration, [10.0 * iteration + offset])
    write_raw_runs(mixed_runs)
    write_eval(mixed_runs, "walker_walk", 0, 2, [10.0], variant="dmc_only",
               frames_per_iteration=40_000)       # a method with no Atari game at all
    atari = write_scores(read_runs([atari_runs]), tmp_path / "a", None, plots=False,
                         bootstrap_reps=200)
    mixed = write_scores(read_runs([mixed_runs]), tmp_path / "m", None, plots=True,
                         bootstrap_reps=200)
    for key in ("games", "aggregates", "per_game", "comparison", "statistics", "warnings"):
        assert mixed[key] == atari[key], key
    # The numbers tests/scores/test_scores.py checks: pong -17.5 over seeds -18.5 and -16.5; breakout 32.
    assert mixed["aggregates"]["default"] == {"games": 2, "missing": [],
                                              **aggregate({"pong": -17.5, "breakout": 32.0})}
    assert mixed["raw_return_games"] == ["catch-1", "walker_walk"]
    assert [(row["game"], row["method"]) for row in mixed["raw_returns"]] == \
        [("catch-1", "default"), ("walker_walk", "default"), ("walker_walk", "dmc_only")]
    markdown = (tmp_path / "m" / "scores.md").read_text()
    assert "2 Atari game(s): breakout, pong." in markdown and "## Raw returns" in markdown
    for name in ("pong", "walker_walk", "catch-1", "aggregate_curves"):
        assert (tmp_path / "m" / "plots" / f"{name}.png").is_file()
