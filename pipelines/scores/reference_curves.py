"""DreamerV2's published learning curves, for comparison plots and tables.

Two package data files, one schema (see `pipelines/data/README.md` for attribution):

- `dreamerv2_curves.json`: the Atari curves published with the paper (8 seeds per game,
  evaluated every 1M frames up to 200M; some seeds stop at 199M), rebuilt by
  `make_dreamerv2_curves.py` next to it;
- `dreamerv2_dmc_curves.json`, when present: the Control Suite curves of the `dmc_vision`
  configuration (5 seeds per task to 2M frames).

Per game a file holds the mean and standard deviation over seeds on a regular frames grid
(`frames_start`, `frames_step`), the number of seeds at each point, and each seed's last point.
"""

from __future__ import annotations

import functools
import json
import statistics
from dataclasses import dataclass

import numpy as np

from ..package_data import DATA_DIR
from .normalised import ScoresError

REFERENCE_METHOD = "DreamerV2 (published)"
CURVE_FILES = ("dreamerv2_curves.json", "dreamerv2_dmc_curves.json")   # Atari, Control Suite


@dataclass(frozen=True)
class ReferenceCurve:
    """One game's published curve: arrays over the file's frames grid."""

    game: str
    frames: np.ndarray        # int64, e.g. 1M, 2M, ... (Atari) or 30k, 60k, ... (Control Suite)
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
        """Mean return at the last grid point at or before `frames`; None before the first one.

        The Atari per-game table's convention (its grid is 1M frames, runs end on it)."""
        index = int(np.searchsorted(self.frames, frames, side="right")) - 1
        return None if index < 0 else float(self.mean[index])

    def interpolate(self, frames: int) -> float | None:
        """Mean return linearly interpolated at `frames`; None outside the published range."""
        if not self.frames[0] <= frames <= self.frames[-1]:
            return None
        return float(np.interp(frames, self.frames, self.mean))


@functools.cache
def _load() -> dict[str, tuple[dict, dict]]:
    """game -> (its entry, its file's header), over the curve files present."""
    games: dict[str, tuple[dict, dict]] = {}
    for name in CURVE_FILES:
        path = DATA_DIR / name
        if not path.is_file():
            continue   # the Control Suite curves are optional package data
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if "games" in data:  # one frame grid for every game (the Atari file)
                header = {"file": name, "frames_start": int(data["frames_start"]),
                          "frames_step": int(data["frames_step"])}
                entries = [(game, entry, header) for game, entry in data["games"].items()]
            else:  # a grid per task (the Control Suite file: humanoid_walk has its own)
                entries = [(task, entry, {"file": name, "frames_start": int(entry["frames_start"]),
                                          "frames_step": int(entry["frames_step"])})
                           for task, entry in data["tasks"].items()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ScoresError(f"{path}: not a published-curves file ({error!r})") from None
        for game, entry, header in entries:
            if game in games:
                raise ScoresError(f"{game!r} has a curve in both {games[game][1]['file']} and "
                                  f"{name}")
            games[game] = (entry, header)
    return games


def reference_games() -> tuple[str, ...]:
    """Games with a published DreamerV2 curve (the paper's 55 Atari games, the DMC tasks)."""
    return tuple(sorted(_load()))


def reference_curve(game: str) -> ReferenceCurve:
    """The published DreamerV2 curve of one game; a ScoresError if it has none.

    Names are not checked against the known games here: `games.py` asks this module which tasks
    have curves, so this module must not import it (callers validate names with `games.py`)."""
    found = _load().get(game)
    if found is None:
        raise ScoresError(f"no published DreamerV2 curve for {game!r}; the curves cover "
                          f"{', '.join(CURVE_FILES)} in pipelines/data")
    entry, header = found
    count = len(entry["mean"])
    frames = header["frames_start"] + header["frames_step"] * np.arange(count, dtype=np.int64)
    return ReferenceCurve(game, frames, np.asarray(entry["mean"], dtype=np.float64),
                          np.asarray(entry["std"], dtype=np.float64),
                          np.asarray(entry["seeds"], dtype=np.int64),
                          tuple(entry["final_scores"]), tuple(entry["final_frames"]))
