"""Learning curves per game and aggregate curves over frames, saved as PNG and SVG.

Figures are drawn on matplotlib `Figure` objects with an Agg canvas, never through pyplot, so
plotting changes no global backend state and works without a display. Each plot is written as
`NAME.png` (for the Snakemake report and quick looks) and `NAME.svg` (for papers).

- Learning curve of one game (Atari, Catch or Control Suite): evaluation return against
  environment frames, a thin line per seed and a thick line for the mean over the seeds evaluated
  at each point, one colour per method; optionally DreamerV2's published mean curve (± one
  standard deviation over its seeds) over the same frame range, where one exists.
- Aggregate curves (Atari games only): the gamer median and the clipped record mean (Table 1 of
  the paper) of each method against frames, over a game set, at the frames where every game of the set has an
  evaluation; optionally the same for DreamerV2's published curves.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .reference_curves import REFERENCE_METHOD, reference_curve, reference_games
from .inputs import ScoreRecord
from .normalised import aggregate, load_baselines

PLOT_FORMATS = ("png", "svg")
REFERENCE_COLOUR = "black"
_MIN_REFERENCE_POINTS = 2   # always show at least the first two published points

Series = dict[str, dict[str, list[tuple[int, float]]]]   # method -> seed -> [(frames, score)]


def curves_by_game(records: Sequence[ScoreRecord]) -> dict[str, Series]:
    """Group records that carry frames as game -> method -> seed -> sorted [(frames, score)]."""
    grouped: dict[str, Series] = {}
    for record in records:
        if record.frames is None:
            continue
        seeds = grouped.setdefault(record.game, {}).setdefault(record.method, {})
        seeds.setdefault(record.seed, []).append((record.frames, record.score))
    for series in grouped.values():
        for seeds in series.values():
            for points in seeds.values():
                points.sort()
    return grouped


def mean_curve(seeds: dict[str, list[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the seeds evaluated at each frames value: (frames, mean score)."""
    at: dict[int, list[float]] = {}
    for points in seeds.values():
        for frames, score in points:
            at.setdefault(frames, []).append(score)
    frames = np.array(sorted(at), dtype=np.int64)
    return frames, np.array([statistics.fmean(at[f]) for f in frames.tolist()])


def _frames_axis(axes) -> None:
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value / 1e6:g}M"))
    axes.set_xlabel("environment frames")
    axes.grid(alpha=0.3)


def _save(figure: Figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    paths = []
    for extension in PLOT_FORMATS:
        path = stem.with_name(f"{stem.name}.{extension}")
        figure.savefig(path, dpi=120, bbox_inches="tight")
        paths.append(path)
    return paths


def _marker(frames: Sequence[int]) -> str | None:
    # Dots show where the evaluations are; on a long run they would only clutter the line.
    return "o" if len(frames) <= 50 else None


def _colours(methods: Sequence[str]) -> dict[str, str]:
    return {method: f"C{index % 10}" for index, method in enumerate(methods)}


def plot_learning_curve(game: str, series: Series, stem: Path, reference: bool = True,
                        ) -> list[Path]:
    """One game's learning curves (every method and seed) to `stem`.png/.svg."""
    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    colours = _colours(sorted(series))
    last = 0
    for method in sorted(series):
        seeds = series[method]
        for points in seeds.values():
            frames, scores = zip(*points)
            axes.plot(frames, scores, color=colours[method], alpha=0.35, linewidth=0.8)
            last = max(last, max(frames))
        frames, mean = mean_curve(seeds)
        label = f"{method} (mean of {len(seeds)} seed{'s' * (len(seeds) > 1)})"
        axes.plot(frames, mean, color=colours[method], linewidth=2.2, marker=_marker(frames),
                  markersize=3, label=label)
    if reference and game in reference_games():
        curve = reference_curve(game)
        shown = curve.frames[min(_MIN_REFERENCE_POINTS, len(curve.frames)) - 1]
        keep = curve.frames <= max(last, shown)
        axes.plot(curve.frames[keep], curve.mean[keep], color=REFERENCE_COLOUR, linestyle="--",
                  linewidth=1.5, label=REFERENCE_METHOD)
        axes.fill_between(curve.frames[keep], (curve.mean - curve.std)[keep],
                          (curve.mean + curve.std)[keep], color=REFERENCE_COLOUR, alpha=0.1)
    axes.set_title(game)
    axes.set_ylabel("evaluation return")
    _frames_axis(axes)
    axes.legend(fontsize="small")
    return _save(figure, stem)


def aggregate_curves(records: Sequence[ScoreRecord], games: Sequence[str],
                     ) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """Per method, gamer median and clipped record mean at each frames value all `games` share.

    Per game the score at a frames value is the mean over the seeds evaluated there. Returns
    ({method: {"frames", "gamer_median", "clipped_record_mean"}}, notes on methods left out).
    """
    baselines, grouped = load_baselines(), curves_by_game(records)
    methods = sorted({method for series in grouped.values() for method in series})
    result, notes = {}, []
    for method in methods:
        missing = [game for game in games if method not in grouped.get(game, {})]
        if missing:
            notes.append(f"{method}: no curve for {', '.join(missing)}; aggregate curve left out")
            continue
        means = {game: dict(zip(*(array.tolist() for array in mean_curve(grouped[game][method]))))
                 for game in games}
        shared = sorted(set.intersection(*(set(curve) for curve in means.values())))
        if not shared:
            notes.append(f"{method}: the games share no evaluation frames; aggregate curve left "
                         f"out")
            continue
        values = [aggregate({game: means[game][frames] for game in games}, baselines)
                  for frames in shared]
        result[method] = {"frames": np.array(shared, dtype=np.int64),
                          **{key: np.array([value[key] for value in values])
                             for key in ("gamer_median", "clipped_record_mean")}}
    return result, notes


def reference_aggregate_curve(games: Sequence[str], max_frames: int | None = None,
                              ) -> dict[str, np.ndarray] | None:
    """The same aggregates over DreamerV2's published mean curves; None if a game has none."""
    if not set(games) <= set(reference_games()):
        return None
    curves = [reference_curve(game) for game in games]
    length = min(len(curve.frames) for curve in curves)
    if max_frames is not None:
        length = min(length, max(int(np.searchsorted(curves[0].frames, max_frames, "right")), 2))
    values = [aggregate({curve.game: float(curve.mean[index]) for curve in curves})
              for index in range(length)]
    return {"frames": curves[0].frames[:length],
            **{key: np.array([value[key] for value in values])
               for key in ("gamer_median", "clipped_record_mean")}}


def plot_aggregate_curves(records: Sequence[ScoreRecord], games: Sequence[str], stem: Path,
                          reference: bool = True) -> tuple[list[Path], list[str]]:
    """Gamer median and clipped record mean against frames to `stem`.png/.svg, and notes."""
    curves, notes = aggregate_curves(records, games)
    if not curves:
        return [], notes + ["no method has curves for every game; no aggregate plot"]
    last = max(int(curve["frames"][-1]) for curve in curves.values())
    published = reference_aggregate_curve(games, last) if reference else None
    figure = Figure(figsize=(10.0, 4.0))
    colours = _colours(sorted(curves))
    for column, (key, title) in enumerate((("gamer_median", "Gamer median"),
                                           ("clipped_record_mean", "Clipped record mean"))):
        axes = figure.add_subplot(1, 2, column + 1)
        for method, curve in sorted(curves.items()):
            axes.plot(curve["frames"], curve[key], color=colours[method], linewidth=2,
                      marker=_marker(curve["frames"]), markersize=3, label=method)
        if published is not None:
            axes.plot(published["frames"], published[key], color=REFERENCE_COLOUR,
                      linestyle="--", linewidth=1.5, label=REFERENCE_METHOD)
        axes.set_title(f"{title} over {len(games)} game{'s' * (len(games) > 1)}")
        axes.set_ylabel("human-normalised score")
        _frames_axis(axes)
        axes.legend(fontsize="small")
    return _save(figure, stem), notes


def plot_statistics(statistics: dict[str, dict], out_dir: Path) -> list[Path]:
    """rliable's two figures from `score_statistics` results: `interval_estimates` (IQM, optimality
    gap, median, mean with their intervals, one row per method) and `performance_profile`."""
    from .statistics import AGGREGATE_LABELS, AGGREGATE_NAMES

    if not statistics:
        return []
    methods = list(statistics)
    colours = _colours(methods)
    figure = Figure(figsize=(3.2 * len(AGGREGATE_NAMES), 0.5 * len(methods) + 1.5))
    for column, name in enumerate(AGGREGATE_NAMES):
        axes = figure.add_subplot(1, len(AGGREGATE_NAMES), column + 1)
        for row, method in enumerate(methods):
            estimate = statistics[method][name]
            if estimate["low"] is not None:
                axes.barh(row, estimate["high"] - estimate["low"], left=estimate["low"], height=0.6,
                          color=colours[method], alpha=0.5)
            axes.vlines(estimate["point"], row - 0.3, row + 0.3, color="black")
        axes.set_yticks(range(len(methods)), methods if column == 0 else [""] * len(methods))
        axes.set_title(AGGREGATE_LABELS[name])
        axes.set_xlabel("gamer-normalised score")
        axes.grid(alpha=0.3, axis="x")
    paths = _save(figure, out_dir / "interval_estimates")
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    for method in methods:
        profile = statistics[method]["performance_profile"]
        axes.plot(profile["tau"], profile["fraction"], label=method, color=colours[method])
        if profile["low"] is not None:
            axes.fill_between(profile["tau"], profile["low"], profile["high"], color=colours[method], alpha=0.2)
    axes.set_xlabel("gamer-normalised score (tau)")
    axes.set_ylabel("fraction of runs with score > tau")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return paths + _save(figure, out_dir / "performance_profile")
