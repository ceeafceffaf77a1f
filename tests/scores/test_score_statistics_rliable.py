"""Cross-check against rliable itself (Agarwal et al. 2021), where it imports.

rliable is optional, not a dependency: its dependency `arch` fails to import with pandas 3. To run
this check: `pip install rliable "pandas<3"` in an environment of its own. Point estimates must be
equal; interval endpoints and profile bands, from two independent bootstraps, within Monte-Carlo
error (about 0.01 at this replicate count; differences measured: at most 0.017).
"""

from __future__ import annotations

import numpy as np
import pytest

from dreamer_pipeline.pipelines.scores.statistics import AGGREGATE_NAMES, TAUS, method_statistics

try:
    from rliable import library as rly
    from rliable import metrics as rly_metrics
except Exception as error:  # noqa: BLE001 - any import failure means the check cannot run here
    pytest.skip(f"rliable does not import here ({type(error).__name__}: {error}); it is optional: "
                f"pip install rliable 'pandas<3' to run this cross-check", allow_module_level=True)

REPS = 5_000         # rliable (arch) takes ~40 s for both checks here; our own takes ~0.1 s
SCORES = np.random.default_rng(11).gamma(2.0, 0.6, size=(5, 12))   # 5 runs x 12 games


def rliable_aggregates(scores: np.ndarray) -> np.ndarray:
    return np.array([rly_metrics.aggregate_iqm(scores), rly_metrics.aggregate_optimality_gap(scores),
                     rly_metrics.aggregate_median(scores), rly_metrics.aggregate_mean(scores)])


def test_aggregates_and_intervals_match_rliable():
    np.random.seed(0)   # rliable's bootstrap draws from numpy's global generator
    points, intervals = rly.get_interval_estimates({"m": SCORES}, rliable_aggregates, reps=REPS)
    ours = method_statistics(SCORES, reps=REPS, seed=0).aggregates
    for index, name in enumerate(AGGREGATE_NAMES):
        assert ours[name].point == pytest.approx(points["m"][index], abs=1e-12), name
        assert ours[name].low == pytest.approx(intervals["m"][0, index], abs=0.04), name
        assert ours[name].high == pytest.approx(intervals["m"][1, index], abs=0.04), name


def test_performance_profile_matches_rliable():
    np.random.seed(0)
    profiles, bands = rly.create_performance_profile({"m": SCORES}, TAUS, reps=REPS)
    ours = method_statistics(SCORES, reps=REPS, seed=0).profile
    np.testing.assert_allclose(ours["fraction"], profiles["m"], atol=1e-12)
    np.testing.assert_allclose(ours["low"], bands["m"][0], atol=0.035)   # the profile moves in steps of 1/60
    np.testing.assert_allclose(ours["high"], bands["m"][1], atol=0.035)   # the profile moves in steps of 1/60
