"""`dreamer-pipeline scores`: human-normalised scores, Table 1 aggregates and plots (Atari);
raw returns beside DreamerV2's published curves (Catch, Control Suite tasks).

Reads evaluation results (run directories or eval.json files, and/or a CSV table), writes
`scores.json`, `scores.md` and the plots under `--out`. See docs/scores.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from tqdm import tqdm

from .inputs import ScoreRecord, read_runs, read_score_csv
from .plots import curves_by_game, plot_aggregate_curves, plot_learning_curve, plot_statistics
from .games import resolve_games
from .raw_returns import raw_returns_summary
from .report import build_report, report_json, report_markdown
from .statistics import DEFAULT_REPS
from .normalised import AGGREGATE_TITLES, AGGREGATES, ScoresError, atari55

PLOTS_DIR = "plots"
AGGREGATE_PLOT = "aggregate_curves"


def write_scores(records: list[ScoreRecord], out: Path, games: tuple[str, ...] | None,
                 compare: bool = True, plots: bool = True, progress: bool = False,
                 bootstrap_reps: int = DEFAULT_REPS) -> dict:
    """Write scores.json, scores.md and (if `plots`) plots/ under `out`; return the JSON data.

    `games=None` scores the games present in `records` (all 55 of the paper when there are
    none). `compare` adds the published DreamerV2 and Dopamine results for the same games to the
    tables and DreamerV2's curves to the plots.
    """
    if not records and games is None:
        games = atari55()
    report = build_report(records, games, compare=compare, bootstrap_reps=bootstrap_reps)
    out.mkdir(parents=True, exist_ok=True)
    notes = []
    if plots:
        plot_dir = out / PLOTS_DIR
        plot_dir.mkdir(exist_ok=True)
        series = {game: value for game, value in curves_by_game(records).items()
                  if game in report.games + report.raw_games}
        for game in tqdm(sorted(series), desc="learning curves", unit="game",
                         disable=not progress):
            plot_learning_curve(game, series[game], plot_dir / game, reference=compare)
        atari_records = [record for record in records if record.game in report.games]
        if set(series) & set(report.games):
            _, notes = plot_aggregate_curves(atari_records, report.games,
                                             plot_dir / AGGREGATE_PLOT, reference=compare)
        plot_statistics(report.statistics, plot_dir)
    report.warnings.extend(notes)
    data = report_json(report)
    (out / "scores.json").write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    (out / "scores.md").write_text(report_markdown(report))
    return data


def _summary(data: dict) -> str:
    lines = []
    if data["aggregates"]:
        lines.append(f"{'method':<24}" + "".join(f"{AGGREGATE_TITLES[key]:>21}"
                                                 for key in AGGREGATES))
        for method, values in data["aggregates"].items():
            cells = "".join(f"{'—' if values[key] is None else format(values[key], '.2f'):>21}"
                            for key in AGGREGATES)
            lines.append(f"{method:<24}{cells}")
    return "\n".join(lines + raw_returns_summary(data["raw_returns"]))


@click.command("scores", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("runs", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--table", "tables", multiple=True, type=click.Path(exists=True, dir_okay=False,
              path_type=Path), metavar="CSV",
              help="CSV with header game,method,seed,score[,frames]: results from elsewhere. "
                   "Repeatable.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results/scores"), show_default=True,
              help="Folder for scores.json, scores.md and plots/.")
@click.option("--games", metavar="LIST",
              help="Games to score and aggregate over: 'atari55', comma-separated snake_case "
                   "names (pong,ms_pacman), or a text file with one name a line. "
                   "Default: the games in the inputs.")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Add the published results (DreamerV2's curves; DQN, C51, Rainbow and IQN at "
                   "200M frames) for the same games to the tables, and DreamerV2's curves to "
                   "the plots.")
@click.option("--plots/--no-plots", default=True, show_default=True,
              help="Draw learning curves per game and aggregate curves (PNG and SVG).")
@click.option("--bootstrap-reps", default=DEFAULT_REPS, show_default=True, type=click.IntRange(min=0),
              help="Stratified-bootstrap replicates for the IQM, optimality gap, median and mean "
                   "intervals (0: point estimates only).")
def scores_command(runs: tuple[Path, ...], tables: tuple[Path, ...], out: Path,
                   games: str | None, baselines: bool, plots: bool, bootstrap_reps: int) -> None:
    """Human-normalised scores, Table 1 aggregates and learning-curve plots.

    RUNS are run directories (searched for iter*/eval.json, e.g. results/runs or
    results/runs/pong/default/seed0) or eval.json files. A method's score on a game is the mean
    over seeds of each seed's final evaluation; scores are normalised as (score - random) /
    (reference - random) against the human gamer and the human world record, and aggregated as
    in Table 1 of the paper: gamer median, gamer mean, record mean, clipped record mean. Next to
    them: the interquartile mean, optimality gap, median and mean over all runs and games with
    stratified-bootstrap 95% intervals, and performance profiles (Agarwal et al. 2021).

    \b
    Writes OUT/scores.json, OUT/scores.md and OUT/plots/{GAME,aggregate_curves,
    interval_estimates,performance_profile}.{png,svg}.

    \b
    Examples:
      dreamer-pipeline scores results/runs
      dreamer-pipeline scores results/runs --games pong,breakout --out results/scores
      dreamer-pipeline scores --table other_agent.csv --games atari55
      dreamer-pipeline scores --games atari55      # the published rows of Table 1 alone
    """
    try:
        records = read_runs(runs, progress=True) if runs else []
        for table in tables:
            records += read_score_csv(table)
        if not records and not baselines:
            raise ScoresError("nothing to score: give run directories, eval.json files or "
                              "--table, or keep --baselines to list the published results")
        data = write_scores(records, out, resolve_games(games), compare=baselines, plots=plots,
                            progress=True, bootstrap_reps=bootstrap_reps)
    except ScoresError as error:
        raise click.ClickException(str(error)) from None
    click.echo(_summary(data))
    for warning in data["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"wrote {out / 'scores.json'} and {out / 'scores.md'}"
               + (f" and plots in {out / PLOTS_DIR}" if plots and records else ""))

