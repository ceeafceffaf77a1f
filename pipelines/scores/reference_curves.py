"""DreamerV2's published Atari learning curves, for comparison plots and tables.

`pipelines/data/dreamerv2_curves.json` is a compact copy of the curves published with the paper
(8 seeds per game, evaluated every 1M frames up to 200M; some seeds stop at 199M). Per game it
holds the mean and standard deviation over seeds on the 1M-frame grid, the number of seeds at
each point, and each seed's last point. `make_dreamerv2_curves.py` next to it rebuilt it from
the published file; see `pipelines/data/README.md` for attribution.
"""

from __future__ import annotations

import functools
import json
import statistics
from dataclasses import dataclass

import numpy as np

from ..package_data import data_text
from .normalised import ScoresError, load_baselines

REFERENCE_METHOD = "DreamerV2 (published)"


@dataclass(frozen=True)
class ReferenceCurve:
    """One game's published curve: arrays over the 1M-frame grid."""

    game: str
    frames: np.ndarray        # int64, 1M, 2M, ...
    mean: np.ndarray          # mean evaluation return over the seeds at each point
    std: np.ndarray           # their standard deviation
    seeds: np.ndarray         # how many seeds reached each point
    final_scores: tuple[float, ...]   # each seed's last evaluation
    final_frames: tuple[int, ...]

    @property
    def final_score(self) -> float:
        """Mean over seeds of each seed's last evaluation, leaving out broken seeds.

        A seed whose run stopped before half of the game's longest run is left out: three of
        breakout's eight seeds stop at 2M frames, for example. Over the 55 games this gives
        2.14 / 11.43 / 0.43 / 0.28 against the paper's Table 1 row 2.15 / 11.33 / 0.44 / 0.28;
        the paper does not say exactly how it reduced its curves to one number.
        """
        return statistics.fmean(score for score, _ in self.kept_finals)

    @property
    def kept_finals(self) -> list[tuple[float, int]]:
        """(last score, its frames) of the seeds that ran at least half as long as the longest."""
        longest = max(self.final_frames)
        return [(score, frames) for score, frames in zip(self.final_scores, self.final_frames)
                if frames >= longest / 2]

    def at(self, frames: int) -> float | None:
        """Mean return at the last grid point at or before `frames`; None before the first one."""
        index = int(np.searchsorted(self.frames, frames, side="right")) - 1
        return None if index < 0 else float(self.mean[index])


@functools.cache
def _load() -> dict:
    text = data_text("dreamerv2_curves.json")
    return json.loads(text)


def reference_games() -> tuple[str, ...]:
    """Games with a published DreamerV2 curve (the paper's 55)."""
    return tuple(sorted(_load()["games"]))


def reference_curve(game: str) -> ReferenceCurve:
    """The published DreamerV2 curve of one game; a ScoresError if it has none."""
    data = _load()
    load_baselines().check_game(game)
    entry = data["games"].get(game)
    if entry is None:
        raise ScoresError(f"no published DreamerV2 curve for {game!r}; the paper's curves cover "
                          f"the 55 games of atari55.txt")
    count = len(entry["mean"])
    frames = data["frames_start"] + data["frames_step"] * np.arange(count, dtype=np.int64)
    return ReferenceCurve(game, frames, np.asarray(entry["mean"], dtype=np.float64),
                          np.asarray(entry["std"], dtype=np.float64),
                          np.asarray(entry["seeds"], dtype=np.int64),
                          tuple(entry["final_scores"]), tuple(entry["final_frames"]))
