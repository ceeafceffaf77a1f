"""Statistics across runs and games (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
Precipice", the rliable library), next to the paper's four point aggregates.

Input: per method, a matrix of gamer-normalised final scores, one row per run (seed) and one
column per game. Aggregates (rliable's definitions):

- **IQM**, the interquartile mean: the mean of the middle 50% of all run-game scores (the
  lowest and the highest `floor(n / 4)` of the n scores dropped, like `scipy.stats.trim_mean(x,
  0.25)`); robust to outlier games and runs, and more efficient than the median.
- **Optimality gap**: the mean over all scores of `max(1 - score, 0)`: how far the method falls
  short of human-gamer level (lower is better; scores above 1 do not buy anything).
- **Median** and **mean** of the per-game means over runs.
- **Performance profile**: for each threshold tau, the fraction of runs whose score exceeds tau
  (averaged per game, so games weigh equally).

Uncertainty: 95% percentile intervals of a **stratified bootstrap**: each replicate resamples
the runs of every game with replacement, separately per game (rliable's StratifiedBootstrap), and
recomputes the aggregate. With one run per game (a published point score) an interval is not
defined and is left out.

rliable itself is not used: it installs, but its dependency `arch` (7.2) fails to import with
pandas 3, which this environment has; the formulas above are short, and tests/scores/test_score_statistics.py
checks them against plain reference implementations; tests/scores/test_score_statistics_rliable.py
against rliable where it imports (`pip install rliable "pandas<3"`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

AGGREGATE_NAMES = ("iqm", "optimality_gap", "median", "mean")
AGGREGATE_LABELS = {"iqm": "IQM", "optimality_gap": "Optimality gap", "median": "Median", "mean": "Mean"}
CONFIDENCE = 0.95
DEFAULT_REPS = 50_000   # endpoints stable to < 0.01 over bootstrap seeds (measured: docs/scores.md)
BOOTSTRAP_CHUNK = 2000   # replicates drawn at a time (memory: chunk x runs x games numbers)
TAUS = np.linspace(0.0, 8.0, 81)  # rliable's Atari-200M grid of gamer-normalised thresholds


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean over the last two axes (runs, games); leading axes are replicates."""
    flat = np.sort(scores.reshape(*scores.shape[:-2], -1), axis=-1)
    n = flat.shape[-1]
    cut = int(0.25 * n)
    return flat[..., cut:n - cut].mean(axis=-1)


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    return np.maximum(gamma - scores, 0.0).mean(axis=(-2, -1))


def median_of_means(scores: np.ndarray) -> np.ndarray:
    return np.median(scores.mean(axis=-2), axis=-1)


def mean_of_means(scores: np.ndarray) -> np.ndarray:
    return scores.mean(axis=(-2, -1))


AGGREGATES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "iqm": iqm, "optimality_gap": optimality_gap, "median": median_of_means, "mean": mean_of_means,
}


def performance_profile(scores: np.ndarray, taus: np.ndarray = TAUS) -> np.ndarray:
    """Fraction of runs above each tau, averaged over games: shape (*replicates, len(taus))."""
    above = scores[..., None] > taus  # (..., runs, games, taus)
    return above.mean(axis=-3).mean(axis=-2)


def stratified_bootstrap(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, runs, games): each game's runs resampled with replacement, independently per game."""
    runs, games = scores.shape
    rows = rng.integers(0, runs, size=(reps, runs, games))
    return scores[rows, np.arange(games)]


@dataclass
class Estimate:
    point: float
    low: float | None = None
    high: float | None = None

    def as_dict(self) -> dict:
        return {"point": self.point, "low": self.low, "high": self.high}


@dataclass
class MethodStatistics:
    runs: int
    games: int
    aggregates: dict[str, Estimate]
    profile: dict[str, list] = field(default_factory=dict)  # tau, fraction, low, high

    def as_dict(self) -> dict:
        return {"runs": self.runs, "games": self.games,
                **{name: estimate.as_dict() for name, estimate in self.aggregates.items()},
                "performance_profile": self.profile}


def method_statistics(scores: np.ndarray, reps: int = DEFAULT_REPS, seed: int = 0,
                      taus: np.ndarray = TAUS) -> MethodStatistics:
    """Point estimates and stratified-bootstrap intervals of a (runs, games) score matrix."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"expected a (runs, games) matrix of scores, got shape {scores.shape}")
    runs, games = scores.shape
    replicates = (bootstrap_replicates(scores, reps, np.random.default_rng(seed), taus)
                  if runs > 1 and reps > 0 else None)
    alpha = (1 - CONFIDENCE) / 2
    estimates = {}
    for name, function in AGGREGATES.items():
        point = float(function(scores))
        if replicates is None:
            estimates[name] = Estimate(point)
        else:
            low, high = np.quantile(replicates[0][name], [alpha, 1 - alpha])
            estimates[name] = Estimate(point, float(low), float(high))
    fraction = performance_profile(scores, taus)
    profile = {"tau": taus.tolist(), "fraction": fraction.tolist(), "low": None, "high": None}
    if replicates is not None:
        low, high = np.quantile(replicates[1], [alpha, 1 - alpha], axis=0)
        profile.update(low=low.tolist(), high=high.tolist())
    return MethodStatistics(runs, games, estimates, profile)


def bootstrap_replicates(scores: np.ndarray, reps: int, rng: np.random.Generator,
                         taus: np.ndarray = TAUS) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each aggregate over `reps` stratified-bootstrap replicates, (reps,) each, and each replicate's
    performance profile, (reps, len(taus)).

    Replicates are drawn `BOOTSTRAP_CHUNK` at a time, so memory does not grow with `reps`. A
    replicate's profile is a weighted count: how often it drew each run of a game times whether
    that run is above tau, one matrix product instead of a (reps, runs, games, taus) comparison.
    """
    runs, games = scores.shape
    above = (scores[..., None] > taus).reshape(runs * games, len(taus)).astype(np.float64)
    values: dict[str, list[np.ndarray]] = {name: [] for name in AGGREGATES}
    profiles = []
    for start in range(0, reps, BOOTSTRAP_CHUNK):
        count = min(BOOTSTRAP_CHUNK, reps - start)
        rows = rng.integers(0, runs, size=(count, runs, games))
        samples = scores[rows, np.arange(games)]
        for name, function in AGGREGATES.items():
            values[name].append(function(samples))
        drawn = (rows[..., None] == np.arange(runs)).sum(axis=1)           # (count, games, runs)
        drawn = drawn.transpose(0, 2, 1).reshape(count, runs * games)      # as `above`'s rows
        profiles.append(drawn @ above / (runs * games))
    return {name: np.concatenate(parts) for name, parts in values.items()}, np.concatenate(profiles)


def score_matrix(per_game_runs: Mapping[str, Sequence[float]], games: Sequence[str]) -> tuple[np.ndarray | None, str | None]:
    """A (runs, games) matrix from {game: [run scores]}; None and the reason if it cannot be built.

    Games with different numbers of runs keep their first `min` runs (seeds in order), as the
    stratified bootstrap here, like rliable's, wants the same number of runs per game.
    """
    missing = [game for game in games if not per_game_runs.get(game)]
    if missing:
        return None, f"no runs for {', '.join(missing)}"
    counts = {len(per_game_runs[game]) for game in games}
    runs = min(counts)
    note = None if len(counts) == 1 else f"games have {sorted(counts)} runs; the first {runs} of each are used"
    return np.array([[per_game_runs[game][i] for game in games] for i in range(runs)], np.float64), note
