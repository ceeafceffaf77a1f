"""Scores: normalisation, Table 1 aggregates, eval.json and CSV inputs, the report and plots."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dreamer_pipeline.pipelines.scores.reference_curves import reference_curve, reference_games
from dreamer_pipeline.pipelines.scores.inputs import (final_records, read_eval_json, read_runs,
                                                     read_score_csv)
from dreamer_pipeline.pipelines.scores.plots import aggregate_curves
from dreamer_pipeline.pipelines.scores.report import build_report
from dreamer_pipeline.pipelines.scores.games import resolve_games
from dreamer_pipeline.pipelines.scores.normalised import (AGGREGATES, Baselines, ScoresError, aggregate,
                                               atari55, baseline_table, load_baselines,
                                               method_aggregates, normalised_score)
from dreamer_pipeline.pipelines.scores.command import scores_command

# Table 1 of the paper: gamer median, gamer mean, record mean, clipped record mean.
TABLE1 = {
    "DQN": (0.65, 2.84, 0.12, 0.12),
    "C51": (1.09, 7.70, 0.15, 0.15),
    "Rainbow": (1.47, 9.12, 0.17, 0.17),
    "IQN": (1.29, 8.85, 0.21, 0.21),
}


def write_eval(root: Path, game: str, seed: int, iteration: int, returns: list[float],
               variant: str = "default", frames_per_iteration: int = 1_000_000, **extra) -> Path:
    """One eval.json in the run layout, as `dreamer-pipeline evaluate` writes it."""
    path = root / game / variant / f"seed{seed}" / f"iter{iteration:04d}" / "eval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"game": game, "variant": variant, "seed": seed, "iteration": iteration,
            "frames": iteration * frames_per_iteration, "returns": returns,
            "mean_return": sum(returns) / len(returns), **extra}
    path.write_text(json.dumps(data))
    return path


# --- normalisation and aggregates -----------------------------------------------------------

def test_atari55_is_the_papers_benchmark():
    games = atari55()
    assert len(games) == len(set(games)) == 55
    assert {"james_bond", "ms_pacman", "pong"} <= set(games)
    assert set(games) <= set(load_baselines().games)


@pytest.mark.parametrize("method", list(TABLE1))
def test_baselines_reproduce_table1(method):
    rows = baseline_table(atari55())
    values = method_aggregates(rows, atari55())[method]
    assert values["games"] == 55 and values["missing"] == []
    computed = [round(values[key], 2) for key in AGGREGATES]
    expected = list(TABLE1[method])
    if method == "IQN":
        # The baselines file gives IQN a gamer mean of 8.866, which rounds to 8.87; the paper
        # prints 8.85. Every other number of the four rows matches to two decimals. Pin the
        # computed value so a change in the data or the formula still fails this test.
        assert values["gamer_mean"] == pytest.approx(8.8664, abs=1e-4)
        assert abs(values["gamer_mean"] - 8.85) < 0.02
        computed[1], expected[1] = None, None
    assert computed == expected


def test_normalised_score_by_hand():
    # Pong: random -20.7, human gamer 14.6, human record 21.0.
    baselines = load_baselines()
    assert baselines.normalise("pong", 10.0, "human_gamer") == pytest.approx(30.7 / 35.3)
    assert baselines.normalise("pong", 10.0, "human_record") == pytest.approx(30.7 / 41.7)
    assert baselines.normalise("pong", -20.7, "human_gamer") == 0.0
    assert baselines.normalise("pong", 14.6, "human_gamer") == pytest.approx(1.0)
    assert normalised_score(5.0, random=1.0, reference=3.0) == 2.0


def test_aggregates_by_hand():
    # Three games with random 0 and reference 10 (gamer) / 100 (record): normalised = score/10.
    table = {name: {"random": 0.0, "human_gamer": 10.0, "human_record": 100.0}
             for name in ("a", "b", "c")}
    values = aggregate({"a": 5.0, "b": 20.0, "c": 300.0}, Baselines(table))
    assert values["gamer_median"] == pytest.approx(2.0)
    assert values["gamer_mean"] == pytest.approx((0.5 + 2.0 + 30.0) / 3)
    assert values["record_mean"] == pytest.approx((0.05 + 0.2 + 3.0) / 3)
    assert values["clipped_record_mean"] == pytest.approx((0.05 + 0.2 + 1.0) / 3)


def test_method_missing_a_game_gets_no_aggregates():
    rows = [row for row in baseline_table(["pong", "breakout"]) if row.method == "DQN"]
    rows = [row for row in rows if row.game == "pong"]
    values = method_aggregates(rows, ["pong", "breakout"])["DQN"]
    assert values["missing"] == ["breakout"] and values["gamer_median"] is None


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, suggestion", [("mspacman", "ms_pacman"),
                                              ("jamesbond", "james_bond"),
                                              ("MsPacman", "ms_pacman")])
def test_unknown_game_names_close_matches(name, suggestion):
    with pytest.raises(ScoresError, match=f"unknown Atari game '{name}'.*'{suggestion}'"):
        load_baselines().check_game(name)


def test_missing_constant_is_a_clear_error():
    with pytest.raises(ScoresError, match="no 'human_gamer' value for game 'air_raid'"):
        aggregate({"air_raid": 1000.0})


def test_resolve_games(tmp_path):
    assert resolve_games(None) is None
    assert resolve_games("atari55") == atari55()
    assert resolve_games("pong, breakout") == ("pong", "breakout")
    listing = tmp_path / "games.txt"
    listing.write_text("# mine\npong\n\nms_pacman\n")
    assert resolve_games(str(listing)) == ("pong", "ms_pacman")
    with pytest.raises(ScoresError, match="pong more than once"):
        resolve_games("pong,pong")
    with pytest.raises(ScoresError, match="'pongg'.*'pong'"):
        resolve_games("pongg")


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("returns"), "missing required field.*returns"),
    (lambda d: d.update(score=3), "undocumented field.*score.*put extras under 'info'"),
    (lambda d: d.update(mean_return=99.0), "mean_return 99.0 is not the mean"),
    (lambda d: d.update(seed=True), "'seed' must be int"),
    (lambda d: d.update(returns=[]), "non-empty list"),
    (lambda d: d.update(frames=-4), "'frames' must be >= 0"),
    (lambda d: d.update(game="pongg"), "unknown Atari game 'pongg'"),
    (lambda d: d.update(iteration=7), "iteration is 7 but the run layout"),
    (lambda d: d.update(format_version=2), "format_version 2 is not supported"),
    (lambda d: d.update(lengths=[10]), "'lengths' holds 1 entries"),
])
def test_bad_eval_json_is_one_clear_error(tmp_path, change, message):
    path = write_eval(tmp_path, "pong", 0, 3, [1.0, 3.0])
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ScoresError, match=message) as error:
        read_eval_json(path)
    assert str(path) in str(error.value)


def test_documented_optional_fields_are_accepted(tmp_path):
    path = write_eval(tmp_path, "pong", 2, 1, [1.0, 3.0], format_version=1, lengths=[5, 6],
                      episodes=2, policy="greedy", info={"anything": [1]})
    record = read_eval_json(path)
    assert (record.game, record.method, record.seed, record.score, record.frames) == \
        ("pong", "default", "2", 2.0, 1_000_000)


def test_directory_without_evaluations(tmp_path):
    with pytest.raises(ScoresError, match="no iter\\*/eval.json"):
        read_runs([tmp_path])


# --- inputs to report ------------------------------------------------------------------------

def test_csv_input(tmp_path):
    table = tmp_path / "scores.csv"
    table.write_text("game,method,seed,score,frames\n"
                     "pong,mine,0,-20.0,1000000\n"
                     "pong,mine,0,10.0,2000000\n"      # seed 0's final score
                     "pong,mine,1,4.0,2000000\n"
                     "breakout,mine,a,31.7,2000000\n")
    records = read_score_csv(table)
    assert len(records) == 4
    assert {seed: r.score for seed, r in final_records(records)["mine", "pong"].items()} == \
        {"0": 10.0, "1": 4.0}
    report = build_report(records)
    assert report.games == ("breakout", "pong")
    pong = next(row for row in report.rows if row.game == "pong")
    assert pong.score == 7.0
    assert pong.gamer_normalised == pytest.approx((7.0 + 20.7) / 35.3)
    expected = aggregate({"pong": 7.0, "breakout": 31.7})
    assert report.aggregates["mine"] == {"games": 2, "missing": [], **expected}
    assert report.aggregates["IQN"]["gamer_median"] == pytest.approx(statistics.median(
        [(20.13 + 20.7) / 35.3, (79.48 - 1.7) / (30.5 - 1.7)]))


@pytest.mark.parametrize("text, message", [
    ("game,method,score\npong,a,1\n", "missing \\['seed'\\]"),
    ("game,method,seed,score,notes\npong,a,0,1,x\n", "unknown \\['notes'\\]"),
    ("game,method,seed,score\npong,a,0,abc\n", ":2: score 'abc' is not a number"),
    ("game,method,seed,score\npong,a,0,1\npong,a,0,2\n", "two results for a seed 0 on pong"),
    ("game,method,seed,score\npacman,a,0,1\n", ":2: unknown Atari game 'pacman'"),
    ("game,method,seed,score,frames\npong,a,0,1,2.5\n", "frames must be a whole number"),
    ("game,method,seed,score\n", "no rows"),
])
def test_bad_csv_is_one_clear_error(tmp_path, text, message):
    table = tmp_path / "bad.csv"
    table.write_text(text)
    with pytest.raises(ScoresError, match=message):
        read_score_csv(table)


def test_run_directory_input_through_the_command(tmp_path):
    runs = tmp_path / "runs"
    for seed, offset in ((0, 0.0), (1, 4.0)):
        for iteration in (1, 2, 3):
            write_eval(runs, "pong", seed, iteration, [iteration - 21.0 + offset, -19.0])
            write_eval(runs, "breakout", seed, iteration, [10.0 * iteration + offset])
    out = tmp_path / "scores"
    result = CliRunner().invoke(scores_command, [str(runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "scores.json").read_text())
    assert data["games"] == ["breakout", "pong"]
    pong = next(row for row in data["per_game"] if row["game"] == "pong")
    # Final (iteration 3) means: seed 0 (-18 - 19) / 2 = -18.5, seed 1 (-14 - 19) / 2 = -16.5.
    assert pong["seeds"] == {"0": -18.5, "1": -16.5} and pong["score"] == -17.5
    assert pong["frames"] == [3_000_000, 3_000_000]
    assert pong["dreamerv2_at_frames"] == pytest.approx(reference_curve("pong").mean[2])
    assert set(data["aggregates"]) == {"default", "DreamerV2 (published)", "DQN", "C51",
                                       "Rainbow", "IQN"}
    markdown = (out / "scores.md").read_text()
    assert "| pong | default | 2 | 3M | -17.5 |" in markdown
    for name in ("pong", "breakout", "aggregate_curves"):
        for extension, magic in (("png", b"\x89PNG"), ("svg", b"<?xml")):
            assert (out / "plots" / f"{name}.{extension}").read_bytes().startswith(magic)
    assert "gamer median" in result.output.lower()


def test_command_errors_are_one_line(tmp_path):
    write_eval(tmp_path / "runs", "pong", 0, 1, [1.0])
    result = CliRunner().invoke(scores_command, [str(tmp_path / "runs"), "--games", "pongg",
                                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "Error: unknown Atari game 'pongg'" in result.output
    assert "Traceback" not in result.output


def test_published_rows_alone_through_the_cli(tmp_path):
    # A real subprocess through the installed entry point: Table 1's baseline rows.
    completed = subprocess.run(
        [sys.executable, "-m", "dreamer_pipeline.pipelines.cli", "scores", "--games", "atari55",
         "--no-plots", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    markdown = (tmp_path / "scores.md").read_text()
    assert "| DQN* | 55/55 | 200M | 0.65 | 2.84 | 0.12 | 0.12 |" in markdown
    assert "| Rainbow* | 55/55 | 200M | 1.47 | 9.12 | 0.17 | 0.17 |" in markdown


# --- curves ----------------------------------------------------------------------------------

def test_aggregate_curves_match_pointwise_aggregates(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        for iteration in (1, 2):
            write_eval(runs, "pong", seed, iteration, [float(5 * iteration + seed)])
            write_eval(runs, "boxing", seed, iteration, [float(40 * iteration - seed)])
    write_eval(runs, "boxing", 0, 3, [99.0])           # frames pong never reached: left out
    curves, notes = aggregate_curves(read_runs([runs]), ["pong", "boxing"])
    assert notes == []
    curve = curves["default"]
    assert curve["frames"].tolist() == [1_000_000, 2_000_000]
    for index, iteration in enumerate((1, 2)):
        expected = aggregate({"pong": 5 * iteration + 0.5, "boxing": 40 * iteration - 0.5})
        assert curve["gamer_median"][index] == pytest.approx(expected["gamer_median"])
        assert curve["clipped_record_mean"][index] == pytest.approx(
            expected["clipped_record_mean"])


def test_reference_curves_are_compact_and_match_the_paper():
    path = Path(__file__).parents[2] / "pipelines" / "data" / "dreamerv2_curves.json"
    assert path.stat().st_size < 300_000
    atari = {game for game in reference_games() if game in load_baselines().table}
    assert atari == set(atari55())   # the Control Suite curves, when present, add their tasks
    pong = reference_curve("pong")
    assert pong.frames[0] == 1_000_000 and np.all(np.diff(pong.frames) == 1_000_000)
    assert pong.at(999_999) is None and pong.at(1_500_000) == pong.mean[0]
    # DreamerV2's Table 1 row is 2.15 / 11.33 / 0.44 / 0.28; the published curves reduced to
    # one final score per game (see ReferenceCurve.final_score) land close to it.
    values = aggregate({game: reference_curve(game).final_score for game in atari55()})
    assert values["gamer_median"] == pytest.approx(2.15, abs=0.02)
    assert values["gamer_mean"] == pytest.approx(11.33, abs=0.15)
    assert values["record_mean"] == pytest.approx(0.44, abs=0.01)
    assert values["clipped_record_mean"] == pytest.approx(0.28, abs=0.01)
