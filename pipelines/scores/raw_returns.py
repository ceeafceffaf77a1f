"""Raw-return games (Catch, Control Suite tasks): one table per game, beside DreamerV2's curve.

These games have no random or human reference scores to normalise against, so they are scored
on their evaluation returns alone and never enter the human-normalised aggregates or the
rliable statistics (those are Atari's). Per game and method: the seeds, the mean over seeds of
each seed's final return (the evaluation with the most frames) ± their standard deviation, the
frames, and, where DreamerV2 published a curve for the game, its mean return **linearly
interpolated at our frames** (averaged over our seeds when they end at different frames; none
outside the published frames) and its final return (mean over seeds of each seed's last
evaluation, as for Atari).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .games import SUITE_TITLES, game_suite
from .inputs import ScoreRecord
from .reference_curves import REFERENCE_METHOD, reference_curve, reference_games


@dataclass(frozen=True)
class RawReturnScore:
    """One method's final return on one raw-return game, and DreamerV2's beside it."""

    game: str
    method: str
    seed_scores: Mapping[str, float]       # seed -> final return
    frames: tuple[int | None, ...]         # each seed's frames at its final return
    score: float                           # mean over seeds
    score_std: float | None                # standard deviation over seeds (None for one seed)
    published_at_frames: float | None      # DreamerV2's mean curve interpolated at `frames`
    published_final: float | None         # DreamerV2's final return
    published_final_frames: tuple[int, ...] = ()   # the frames of its seeds' last evaluations


def published_at(game: str, frames: Sequence[int | None]) -> float | None:
    """DreamerV2's mean return interpolated at each of `frames`, averaged; None if undefined."""
    if game not in reference_games() or not frames or None in frames:
        return None
    curve = reference_curve(game)
    values = [curve.interpolate(value) for value in frames]
    return None if None in values else statistics.fmean(values)


def raw_return_score(game: str, method: str, seeds: Sequence[ScoreRecord],
                     compare: bool = True) -> RawReturnScore:
    """The row of one method on one game from each seed's final record (seeds in order)."""
    returns = [record.score for record in seeds]
    frames = tuple(record.frames for record in seeds)
    final, final_frames = None, ()
    if compare and game in reference_games():
        curve = reference_curve(game)
        final, final_frames = curve.final_score, tuple(f for _, f in curve.kept_finals)
    return RawReturnScore(game, method, {record.seed: record.score for record in seeds}, frames,
                          statistics.fmean(returns),
                          statistics.stdev(returns) if len(returns) > 1 else None,
                          published_at(game, frames) if compare else None, final, final_frames)


def raw_returns_json(rows: Sequence[RawReturnScore]) -> list[dict]:
    return [{"game": row.game, "suite": game_suite(row.game), "method": row.method,
             "seeds": dict(row.seed_scores), "score": row.score, "score_std": row.score_std,
             "frames": list(row.frames), "dreamerv2_at_frames": row.published_at_frames,
             "dreamerv2_final": row.published_final,
             "dreamerv2_final_frames": list(row.published_final_frames)} for row in rows]


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _frames(frames: Sequence[int | None]) -> str:
    known = sorted({value for value in frames if value is not None})
    if not known:
        return "?"
    text = [f"{value:,}" for value in (known[0], known[-1])]
    return text[0] if known[0] == known[-1] else f"{text[0]}–{text[1]}"


def raw_returns_markdown(rows: Sequence[RawReturnScore], games: Sequence[str]) -> list[str]:
    """The "Raw returns" section: one table per game."""
    if not games:
        return []
    lines = ["", "## Raw returns", "",
             "Catch and Control Suite tasks have no human or random reference scores, so they are "
             "scored on returns: the mean over seeds of each seed's final evaluation return, ± "
             f"the standard deviation over seeds. {REFERENCE_METHOD}: its mean curve linearly "
             "interpolated at the same frames (— outside its published frames) and its final "
             "return (mean over its seeds' last evaluations)."]
    for game in games:
        own = sorted((row for row in rows if row.game == game), key=lambda row: row.method)
        lines += ["", f"### {game} ({SUITE_TITLES[game_suite(game)]})", ""]
        if not own:
            lines.append("No results for this game.")
            continue
        lines += ["| Method | Seeds | Frames | Return | ± std | DreamerV2 at these frames "
                  "| DreamerV2 final |", "|---|---:|---:|---:|---:|---:|---:|"]
        for row in own:
            final = ("—" if row.published_final is None else
                     f"{_number(row.published_final)} at {_frames(row.published_final_frames)}")
            lines.append(f"| {row.method} | {len(row.seed_scores)} | {_frames(row.frames)} | "
                         f"{_number(row.score)} | {_number(row.score_std)} | "
                         f"{_number(row.published_at_frames)} | {final} |")
    return lines


def raw_returns_summary(rows: Sequence[dict]) -> list[str]:
    """One terminal line per row of `raw_returns_json`."""
    lines = []
    for row in sorted(rows, key=lambda row: (row["game"], row["method"])):
        std = "" if row["score_std"] is None else f" ± {row['score_std']:.1f}"
        published = ("" if row["dreamerv2_at_frames"] is None else
                     f" (DreamerV2 {row['dreamerv2_at_frames']:.1f} at these frames)")
        lines.append(f"{row['game']:<24}{row['method']:<24}{row['score']:.1f}{std} over "
                     f"{len(row['seeds'])} seed(s) at {_frames(row['frames'])} frames{published}")
    return lines
