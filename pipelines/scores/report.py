"""Turn score records into the per-game table and the aggregates, as JSON and Markdown.

A method's score on a game is the mean over seeds of each seed's final evaluation (the one with
the most frames). Aggregates follow Table 1 of the paper (see `normalised.py`) and are computed
over one set of Atari games for every method, so the rows compare like with like. The four
Dopamine baselines and DreamerV2's published final scores are added for the same games for
comparison. Catch and Control Suite tasks are scored on raw returns alone (`raw_returns.py`) and
never enter the aggregates or the statistics.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from .reference_curves import REFERENCE_METHOD, reference_curve, reference_games
from .games import is_raw_return
from .inputs import ScoreRecord, final_records
from .raw_returns import RawReturnScore, raw_return_score, raw_returns_json, raw_returns_markdown
from .statistics import (AGGREGATE_LABELS, AGGREGATE_NAMES, CONFIDENCE, DEFAULT_REPS, method_statistics,
                               score_matrix)
from .normalised import (AGGREGATE_TITLES, AGGREGATES, GameScore, atari55, baseline_table, game_score,
                     load_baselines, method_aggregates)

REPORT_FORMAT_VERSION = 1


@dataclass
class ScoreReport:
    games: tuple[str, ...]                 # the Atari games: the aggregates' game set
    rows: list[GameScore]                  # the evaluated methods, one row per (method, game)
    comparison: list[GameScore]            # published rows for the same games
    aggregates: dict[str, dict]            # method -> {"games", "missing", four aggregates}
    warnings: list[str] = field(default_factory=list)
    statistics: dict[str, dict] = field(default_factory=dict)  # method -> score_statistics.MethodStatistics.as_dict()
    bootstrap_reps: int = DEFAULT_REPS
    raw_games: tuple[str, ...] = ()        # Catch and Control Suite tasks, scored on raw returns
    raw_rows: list[RawReturnScore] = field(default_factory=list)


def build_report(records: Sequence[ScoreRecord], games: Sequence[str] | None = None,
                 compare: bool = True, bootstrap_reps: int = DEFAULT_REPS) -> ScoreReport:
    """Per-game rows and aggregates of `records` over `games` (default: the games present).

    Atari games get normalised rows and aggregates; raw-return games a row of raw returns.
    """
    baselines = load_baselines()
    finals = final_records(records)
    if games is None:
        games = tuple(sorted({game for _, game in finals})) or atari55()
    raw_games = tuple(game for game in games if is_raw_return(game))
    games = tuple(game for game in games if game not in raw_games)
    rows, raw_rows, warnings = [], [], []
    ignored = sorted({game for _, game in finals} - set(games) - set(raw_games))
    if ignored:
        warnings.append(f"results for {', '.join(ignored)} are left out: not in the game set")
    for (method, game), seeds in sorted(finals.items()):
        if game not in games and game not in raw_games:
            continue
        frames = sorted({record.frames for record in seeds.values()}, key=lambda f: f or 0)
        if len(frames) > 1:
            warnings.append(f"{method} on {game}: seeds end at different frames {frames}; the "
                            f"score averages each seed's last evaluation")
        ordered = [record for _, record in sorted(seeds.items(), key=lambda i: _seed_key(i[0]))]
        if game in raw_games:
            raw_rows.append(raw_return_score(game, method, ordered, compare))
            continue
        rows.append(game_score(game, method, {rec.seed: rec.score for rec in ordered},
                               [rec.frames for rec in ordered], baselines))
    comparison = []
    if compare:
        comparison = _reference_rows(games) + baseline_table(games, baselines)
    aggregates = method_aggregates(rows + comparison, games, baselines)
    for method, values in aggregates.items():
        if values["missing"]:
            warnings.append(f"{method} has no score for {', '.join(values['missing'])}; its "
                            f"aggregates are left out")
    report = ScoreReport(games, rows, comparison, aggregates, warnings,
                         bootstrap_reps=bootstrap_reps, raw_games=raw_games, raw_rows=raw_rows)
    if games:
        report.statistics = _statistics(report, baselines)
    return report


def _statistics(report: ScoreReport, baselines) -> dict[str, dict]:
    """rliable's aggregates with stratified-bootstrap intervals, per method over the game set,
    on gamer-normalised scores: each seed's final score for our runs, each published seed's last
    evaluation for DreamerV2, the one published score for the Dopamine baselines."""
    runs_of: dict[str, dict[str, list[float]]] = {}
    for row in report.rows:
        runs_of.setdefault(row.method, {})[row.game] = [
            baselines.normalise(row.game, score, "human_gamer") for score in row.seed_scores.values()]
    for row in report.comparison:
        if row.method == REFERENCE_METHOD:
            finals = [score for score, _ in reference_curve(row.game).kept_finals]
        else:
            finals = [row.score]
        runs_of.setdefault(row.method, {})[row.game] = [
            baselines.normalise(row.game, score, "human_gamer") for score in finals]
    statistics = {}
    for method, per_game in runs_of.items():
        matrix, note = score_matrix(per_game, report.games)
        if matrix is None:
            continue  # method_aggregates already warns about the missing games
        if note:
            report.warnings.append(f"{method}: {note} for the interval estimates")
        statistics[method] = method_statistics(matrix, reps=report.bootstrap_reps).as_dict()
    return statistics


def _seed_key(seed: str) -> tuple:
    return (0, int(seed), "") if seed.isdigit() else (1, 0, seed)


def _reference_rows(games: Sequence[str]) -> list[GameScore]:
    known, baselines = set(reference_games()), load_baselines()
    rows = []
    for game in games:
        if game in known:
            curve = reference_curve(game)
            score = curve.final_score
            frames = tuple(frames for _, frames in curve.kept_finals)
            rows.append(GameScore(game, REFERENCE_METHOD, {}, frames, score,
                                  baselines.normalise(game, score, "human_gamer"),
                                  baselines.normalise(game, score, "human_record"), True))
    return rows


def _frames_text(frames: Sequence[int | None]) -> str:
    known = [value for value in frames if value is not None]
    if not known:
        return "?"
    low, high = min(known), max(known)
    return _millions(low) if low == high else f"{_millions(low)}–{_millions(high)}"


def _millions(frames: int) -> str:
    return f"{frames / 1e6:.3g}M"


def _std(values: Sequence[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def report_json(report: ScoreReport) -> dict:
    """The report as plain JSON-ready data (scores.json)."""
    def row_json(row: GameScore) -> dict:
        seeds = list(row.seed_scores.values())
        entry = {"game": row.game, "method": row.method, "score": row.score,
                 "gamer_normalised": row.gamer_normalised,
                 "record_normalised": row.record_normalised, "frames": list(row.frames)}
        if not row.is_baseline:
            entry.update(seeds=dict(row.seed_scores), score_std=_std(seeds))
            entry["dreamerv2_at_frames"] = _reference_at(row)
        return entry

    return {
        "format_version": REPORT_FORMAT_VERSION,
        "games": list(report.games),
        "raw_return_games": list(report.raw_games),
        "normalisation": "(score - random) / (reference - random), reference human_gamer or "
                         "human_record; score = mean over seeds of each seed's final evaluation",
        "aggregates": report.aggregates,
        "per_game": [row_json(row) for row in report.rows],
        "comparison": [row_json(row) for row in report.comparison],
        "raw_returns": raw_returns_json(report.raw_rows),
        "statistics": {
            "normalisation": "human_gamer",
            "interval": f"{CONFIDENCE:.0%} percentile, stratified bootstrap over runs per game "
                        f"({report.bootstrap_reps} replicates, seed 0)",
            "methods": report.statistics,
        },
        "warnings": report.warnings,
    }


def _reference_at(row: GameScore) -> float | None:
    frames = [value for value in row.frames if value is not None]
    if not frames or row.game not in reference_games():
        return None
    return reference_curve(row.game).at(min(frames))


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def report_markdown(report: ScoreReport) -> str:
    """The report as Markdown (scores.md): the Atari aggregates, statistics, per-game and
    published tables; the raw-return games' tables; the warnings."""
    lines = ["# Scores"]
    if report.games:
        lines += _atari_markdown(report)
    else:
        lines += ["", "No Atari games, so no human-normalised aggregates or statistics: Catch and "
                  "Control Suite tasks are scored on raw returns."]
    lines += raw_returns_markdown(report.raw_rows, report.raw_games)
    if report.warnings:
        lines += ["", "## Warnings", ""] + [f"- {warning}" for warning in report.warnings]
    return "\n".join(lines) + "\n"


def _atari_markdown(report: ScoreReport) -> list[str]:
    methods = list(dict.fromkeys(row.method for row in report.rows))
    compared = list(dict.fromkeys(row.method for row in report.comparison))
    frames_of = {method: [f for row in report.rows + report.comparison if row.method == method
                          for f in row.frames] for method in methods + compared}
    lines = [
        "",
        f"{len(report.games)} Atari game(s): {', '.join(report.games)}.", "",
        "Score of a method on a game: the mean over seeds of each seed's final evaluation "
        "return. Normalised score: `(score - random) / (reference - random)`, reference the "
        "human gamer or the human world record (Hafner et al. 2021, Table 1). Clipped record "
        "mean caps each game at 1.", "",
        "## Aggregates", "",
        "| Method | Games | Frames | " + " | ".join(AGGREGATE_TITLES[k] for k in AGGREGATES) + " |",
        "|---|---:|---:|" + "---:|" * len(AGGREGATES),
    ]
    for method in methods + compared:
        values = report.aggregates[method]
        label = method if method in methods else f"{method}*"
        lines.append(f"| {label} | {values['games']}/{len(report.games)} | "
                     f"{_frames_text(frames_of[method])} | "
                     + " | ".join(_number(values[key]) for key in AGGREGATES) + " |")
    if compared:
        lines += ["", "\\* Published results, for comparison: DreamerV2's curves (mean over "
                  "seeds of each seed's last evaluation) and Dopamine's sticky-action baselines "
                  "at 200M frames."]
    lines += _statistics_markdown(report, methods + compared)
    if report.rows:
        lines += ["", "## Per game", "",
                  "| Game | Method | Seeds | Frames | Score | ± std | Gamer-norm. | Record-norm. "
                  "| DreamerV2 at these frames |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for row in sorted(report.rows, key=lambda r: (r.game, r.method)):
            seeds = list(row.seed_scores.values())
            lines.append(f"| {row.game} | {row.method} | {len(seeds)} | "
                         f"{_frames_text(row.frames)} | {_number(row.score, 1)} | "
                         f"{_number(_std(seeds), 1)} | {_number(row.gamer_normalised, 3)} | "
                         f"{_number(row.record_normalised, 3)} | "
                         f"{_number(_reference_at(row), 1)} |")
    if compared:
        by_key = {(row.method, row.game): row.score for row in report.comparison}
        lines += ["", "## Published scores on these games", "",
                  "| Game | " + " | ".join(compared) + " |",
                  "|---|" + "---:|" * len(compared)]
        for game in report.games:
            lines.append(f"| {game} | " + " | ".join(
                _number(by_key.get((method, game)), 1) for method in compared) + " |")
    return lines



def _statistics_markdown(report: ScoreReport, order: Sequence[str]) -> list[str]:
    if not report.statistics:
        return []

    def cell(estimate: dict) -> str:
        if estimate["low"] is None:
            return f"{estimate['point']:.2f}"
        return f"{estimate['point']:.2f} [{estimate['low']:.2f}, {estimate['high']:.2f}]"

    lines = ["", "## Statistics across runs", "",
             "Gamer-normalised final scores of every run (seed) and game, aggregated as Agarwal et al. "
             "(2021, rliable) recommend: interquartile mean (IQM), optimality gap (mean shortfall "
             "below 1, lower is better), median and mean of the per-game means, each with a "
             f"{CONFIDENCE:.0%} interval of a stratified bootstrap over runs "
             f"({report.bootstrap_reps} replicates). One run per game (published point scores) has "
             "no interval. Performance profiles: `plots/performance_profile.png`.", "",
             "| Method | Runs x games | " + " | ".join(AGGREGATE_LABELS[k] for k in AGGREGATE_NAMES) + " |",
             "|---|---:|" + "---:|" * len(AGGREGATE_NAMES)]
    for method in order:
        values = report.statistics.get(method)
        if values is None:
            continue
        lines.append(f"| {method} | {values['runs']} x {values['games']} | "
                     + " | ".join(cell(values[k]) for k in AGGREGATE_NAMES) + " |")
    return lines
