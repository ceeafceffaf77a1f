"""IQM, optimality gap, performance profiles and the stratified bootstrap, against plain references
that share no code with pipelines/scores/statistics.py."""

from __future__ import annotations

import json
import random
import statistics

import numpy as np
import pytest

from dreamer_pipeline.pipelines.scores.statistics import (
    iqm, median_of_means, method_statistics, optimality_gap, performance_profile, score_matrix, stratified_bootstrap,
)

SCORES = np.array([[0.1, 1.5, 3.0, -0.2], [0.4, 0.9, 2.0, 0.0], [0.2, 1.2, 8.0, 0.3]])  # 3 runs x 4 games


def plain_iqm(values):
    values = sorted(values)
    cut = len(values) // 4
    return statistics.fmean(values[cut:len(values) - cut])


def test_point_estimates_match_plain_definitions():
    flat = SCORES.ravel().tolist()
    assert iqm(SCORES) == pytest.approx(plain_iqm(flat))
    assert optimality_gap(SCORES) == pytest.approx(statistics.fmean(max(1.0 - x, 0.0) for x in flat))
    game_means = [statistics.fmean(SCORES[:, j]) for j in range(SCORES.shape[1])]
    assert median_of_means(SCORES) == pytest.approx(statistics.median(game_means))
    taus = np.array([0.0, 0.5, 1.0, 2.5])
    expected = [statistics.fmean(statistics.fmean(float(x > tau) for x in SCORES[:, j]) for j in range(4)) for tau in taus]
    np.testing.assert_allclose(performance_profile(SCORES, taus), expected)
    scipy_stats = pytest.importorskip("scipy.stats")
    assert iqm(SCORES) == pytest.approx(scipy_stats.trim_mean(flat, 0.25))


def test_bootstrap_is_stratified_by_game():
    samples = stratified_bootstrap(SCORES, 200, np.random.default_rng(1))
    assert samples.shape == (200, 3, 4)
    for game in range(4):
        assert set(samples[:, :, game].ravel()) <= set(SCORES[:, game])


def test_intervals_agree_with_a_plain_bootstrap():
    rng = np.random.default_rng(3)
    scores = rng.gamma(2.0, 0.6, size=(5, 12))
    ours = method_statistics(scores, reps=4000, seed=0).aggregates["iqm"]
    plain = random.Random(0)
    replicates = []
    for _ in range(4000):
        resampled = [scores[plain.randrange(5), game] for game in range(12) for _ in range(5)]
        replicates.append(plain_iqm(resampled))
    low, high = np.quantile(replicates, [0.025, 0.975])
    assert ours.low == pytest.approx(low, abs=0.03) and ours.high == pytest.approx(high, abs=0.03)
    assert ours.low < ours.point < ours.high


def test_one_run_has_no_interval_and_ragged_games_are_cut_to_the_fewest_runs():
    single = method_statistics(SCORES[:1], reps=100)
    assert single.aggregates["iqm"].low is None and single.profile["low"] is None
    matrix, note = score_matrix({"pong": [1.0, 2.0, 3.0], "breakout": [4.0, 5.0]}, ["pong", "breakout"])
    assert matrix.tolist() == [[1.0, 4.0], [2.0, 5.0]] and "2" in note
    assert score_matrix({"pong": [1.0]}, ["pong", "breakout"])[0] is None


def test_scores_report_shows_the_iqm_with_its_interval(tmp_path):
    from dreamer_pipeline.pipelines.scores.inputs import read_score_csv
    from dreamer_pipeline.pipelines.scores.command import write_scores

    table = tmp_path / "t.csv"
    table.write_text("game,method,seed,score\n" + "".join(
        f"{game},mine,{seed},{score}\n" for game, base in (("pong", -5.0), ("breakout", 40.0))
        for seed, score in enumerate([base, base + 3, base + 7, base + 1])))
    data = write_scores(read_score_csv(table), tmp_path / "out", None, compare=False, plots=True, bootstrap_reps=500)
    mine = data["statistics"]["methods"]["mine"]
    assert mine["runs"] == 4 and mine["games"] == 2 and mine["iqm"]["low"] < mine["iqm"]["point"] < mine["iqm"]["high"]
    markdown = (tmp_path / "out/scores.md").read_text()
    assert "## Statistics across runs" in markdown and f"{mine['iqm']['point']:.2f} [" in markdown
    assert (tmp_path / "out/plots/performance_profile.png").stat().st_size > 0
    assert (tmp_path / "out/plots/interval_estimates.svg").stat().st_size > 0
    assert json.loads((tmp_path / "out/scores.json").read_text())["statistics"]["methods"]["mine"]["runs"] == 4
