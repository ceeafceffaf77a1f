"""Human-normalised Atari scores and the paper's four aggregates.

DreamerV2 (Hafner et al., 2021, Section 4 and Table 1) normalises a game's score as
`(score - random) / (reference - random)` with two references: the professional human gamer of
the DQN papers (`human_gamer`) and the human world record (`human_record`). Over the 55 games of
`atari55.txt` it reports four aggregates:

- gamer median: the median of the gamer-normalised scores (the common metric, dominated by
  middle-of-the-road games),
- gamer mean: their mean (dominated by a few games where agents beat humans by 100x),
- record mean: the mean of the record-normalised scores,
- clipped record mean: the mean of `min(record-normalised, 1)`, the paper's preferred metric
  because no single game can dominate it.

The constants and the four model-free baselines (Dopamine, sticky actions, 200M frames) are
package data (`pipelines/data/atari_baselines.json`, see its README for attribution).
This module is pure arithmetic; reading results lives in `inputs.py`, game names in `games.py`.
"""

from __future__ import annotations

import difflib
import functools
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..package_data import data_text

REFERENCES = ("human_gamer", "human_record")
AGGREGATES = ("gamer_median", "gamer_mean", "record_mean", "clipped_record_mean")
AGGREGATE_TITLES = {
    "gamer_median": "Gamer median",
    "gamer_mean": "Gamer mean",
    "record_mean": "Record mean",
    "clipped_record_mean": "Clipped record mean",
}
# Display name -> key in atari_baselines.json (Dopamine, sticky actions, 200M frames).
BASELINE_METHODS = {
    "DQN": "dqn_sticky_2e8",
    "C51": "c51_sticky_2e8",
    "Rainbow": "rainbow_sticky_2e8",
    "IQN": "iqn_sticky_2e8",
}
GAME_SET_ATARI55 = "atari55"


class ScoresError(ValueError):
    """A score input or a game name the scores code cannot use; the message says which and why."""


def _data_text(name: str) -> str:
    return data_text(name)


@functools.cache
def atari55() -> tuple[str, ...]:
    """The paper's 55 benchmark games, snake_case, in file order."""
    return tuple(line.strip() for line in _data_text("atari55.txt").splitlines() if line.strip())


@dataclass(frozen=True)
class Baselines:
    """Per-game normalisation constants and baseline scores, keyed by snake_case game name."""

    table: Mapping[str, Mapping[str, float]]
    games: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "games", tuple(sorted(self.table)))

    def check_game(self, game: str) -> str:
        """Return `game` if the baselines know it, else raise a ScoresError with close matches."""
        if game in self.table:
            return game
        raise ScoresError(unknown_game_message(game, self.games))

    def constant(self, game: str, key: str) -> float:
        """One constant (`random`, `human_gamer`, `human_record`) or baseline score of a game."""
        entry = self.table[self.check_game(game)]
        if key not in entry:
            raise ScoresError(f"no {key!r} value for game {game!r} in atari_baselines.json "
                              f"(it has: {', '.join(sorted(entry))})")
        return float(entry[key])

    def normalise(self, game: str, score: float, reference: str) -> float:
        """`(score - random) / (reference - random)`, reference `human_gamer` or `human_record`."""
        if reference not in REFERENCES:
            raise ScoresError(f"unknown reference {reference!r}; use one of {REFERENCES}")
        return normalised_score(score, self.constant(game, "random"),
                                self.constant(game, reference))

    def baseline_score(self, game: str, method: str) -> float | None:
        """Final score of a baseline (`DQN`, `C51`, `Rainbow`, `IQN`) on a game; None if not run."""
        if method not in BASELINE_METHODS:
            raise ScoresError(f"unknown baseline {method!r}; use one of {list(BASELINE_METHODS)}")
        value = self.table[self.check_game(game)].get(BASELINE_METHODS[method])
        return None if value is None else float(value)


def unknown_game_message(game: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(game.lower().replace("-", "_").replace(" ", "_"),
                                      known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(name) for name in close)}?" if close else ""
    return (f"unknown Atari game {game!r}{hint} Game names are snake_case as in "
            f"pipelines/data/atari55.txt (e.g. 'ms_pacman', 'james_bond').")


@functools.cache
def load_baselines() -> Baselines:
    """The package's `atari_baselines.json` (62 games; the paper's 55 are `atari55()`)."""
    return Baselines(json.loads(_data_text("atari_baselines.json")))


def normalised_score(score: float, random: float, reference: float) -> float:
    """The paper's normalisation: 0 is the random policy, 1 is the reference player."""
    if reference == random:
        raise ScoresError(f"reference score equals the random score ({random}); cannot normalise")
    return (float(score) - random) / (reference - random)


def aggregate(scores: Mapping[str, float], baselines: Baselines | None = None) -> dict[str, float]:
    """The four aggregates of raw final scores `{game: score}` over exactly those games.

    Gamer median and gamer mean use `human_gamer`; record mean and clipped record mean use
    `human_record`, the latter with each game capped at 1 (Table 1 of the paper).
    """
    if not scores:
        raise ScoresError("no games to aggregate")
    baselines = baselines or load_baselines()
    gamer = [baselines.normalise(game, score, "human_gamer") for game, score in scores.items()]
    record = [baselines.normalise(game, score, "human_record") for game, score in scores.items()]
    return {
        "gamer_median": statistics.median(gamer),
        "gamer_mean": statistics.fmean(gamer),
        "record_mean": statistics.fmean(record),
        "clipped_record_mean": statistics.fmean(min(value, 1.0) for value in record),
    }


@dataclass(frozen=True)
class GameScore:
    """One method's final score on one game: the mean over seeds of each seed's final score."""

    game: str
    method: str
    seed_scores: Mapping[str, float]   # seed -> final score; empty for the published baselines
    frames: tuple[int | None, ...]     # each seed's frames at its final score
    score: float
    gamer_normalised: float
    record_normalised: float
    is_baseline: bool = False


def game_score(game: str, method: str, seed_scores: Mapping[str, float],
               frames: Sequence[int | None] = (), baselines: Baselines | None = None,
               ) -> GameScore:
    """Average the seeds' final scores of one game and normalise the average."""
    baselines = baselines or load_baselines()
    if not seed_scores:
        raise ScoresError(f"{method} has no scores for {game!r}")
    score = statistics.fmean(seed_scores.values())
    return GameScore(game, method, dict(seed_scores), tuple(frames), score,
                     baselines.normalise(game, score, "human_gamer"),
                     baselines.normalise(game, score, "human_record"))


def baseline_table(games: Sequence[str], baselines: Baselines | None = None) -> list[GameScore]:
    """The four Dopamine baselines' rows for `games` (a game a baseline never ran is left out)."""
    baselines = baselines or load_baselines()
    rows = []
    for method in BASELINE_METHODS:
        for game in games:
            value = baselines.baseline_score(game, method)
            if value is not None:
                rows.append(GameScore(game, method, {}, (200_000_000,), value,
                                      baselines.normalise(game, value, "human_gamer"),
                                      baselines.normalise(game, value, "human_record"), True))
    return rows


def method_aggregates(rows: Iterable[GameScore], games: Sequence[str],
                      baselines: Baselines | None = None) -> dict[str, dict]:
    """Per method, the four aggregates over `games`.

    A method that lacks some of `games` gets `None` aggregates and lists them under `missing`:
    an aggregate over a different game set would not be comparable.
    """
    baselines = baselines or load_baselines()
    by_method: dict[str, dict[str, float]] = {}
    for row in rows:
        by_method.setdefault(row.method, {})[row.game] = row.score
    result = {}
    for method, scores in by_method.items():
        missing = [game for game in games if game not in scores]
        values = (dict.fromkeys(AGGREGATES) if missing else
                  aggregate({game: scores[game] for game in games}, baselines))
        result[method] = {"games": len(games) - len(missing), "missing": missing, **values}
    return result
