"""`dreamer-pipeline status RESULTS`: where every run of a results folder stands, in one screen.

Read from what the stages already write, whatever their names: each variant's configuration
snapshot (`configs/{variant}.yaml`, the plan: iterations, updates, frames budget), each run's
`metrics.jsonl` (its newest line: the stage, iteration, updates and frames so far, the stage's
elapsed time) and its `eval.json` files (the last greedy evaluation). Nothing is locked or written,
so it is safe to call while `snakemake` runs, e.g. `watch -n 30 dreamer-pipeline status results`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import click

from ..run_layout import RunLayout

_READ_TAIL = 64 * 1024    # the newest lines of a metrics.jsonl are in its last bytes


@dataclass(frozen=True)
class RunStatus:
    game: str
    variant: str
    seed: int
    iterations_done: int          # iterations whose eval.json exists
    iterations_planned: int | None
    last_eval: dict | None        # the newest eval.json: iteration, frames, mean_return
    last_line: dict | None        # the newest metrics.jsonl line
    stage_updates: tuple[int, int] | None   # (done, planned) of the newest line's iteration
    frames_budget: int | None


def last_metrics_line(path: Path) -> dict | None:
    """The newest complete line of a metrics.jsonl (a stage may be appending to it right now)."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - _READ_TAIL))
            tail = file.read()
    except FileNotFoundError:
        return None
    for line in reversed(tail.split(b"\n")):
        try:
            record = json.loads(line)
        except ValueError:
            continue   # the empty end, a line cut by the seek, or one being written
        if isinstance(record, dict) and "stage" in record:
            return record
    return None


def _plan(snapshot: Path):
    """(config, plan) of a variant's snapshot; None when it is missing or unreadable."""
    from ..config import load_config
    from ..schedule import plan

    try:
        cfg = load_config(snapshot)
        return cfg, plan(cfg)
    except Exception:  # noqa: BLE001 - a status line without the plan beats no status at all
        return None


def run_statuses(results: str | Path) -> list[RunStatus]:
    """Every run under `results/runs`, sorted by variant, game and seed."""
    layout = RunLayout(str(results))
    plans: dict[str, object] = {}
    statuses = []
    for run in sorted(Path(layout.runs_root()).glob("*/*/seed*")):
        game, variant, seed_dir = run.parts[-3:]
        if not seed_dir[4:].isdigit():
            continue
        if variant not in plans:
            plans[variant] = _plan(Path(layout.config_snapshot(variant)))
        planned = plans[variant]
        evals = []
        for path in run.glob("iter*/eval.json"):
            try:
                evals.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue   # being written; the next call sees it
        evals = [data for data in evals if isinstance(data, dict) and "iteration" in data]
        last_eval = max(evals, key=lambda data: data["iteration"], default=None)
        line = last_metrics_line(run / "metrics.jsonl")
        stage_updates = None
        if planned is not None and line is not None and 0 <= line.get("iteration", -1) < len(planned[1]):
            iterations = planned[1]
            k = line["iteration"]
            before = sum(it.updates for it in iterations[:k])
            stage_updates = (max(0, line.get("updates", 0) - before), iterations[k].updates)
        statuses.append(RunStatus(
            game, variant, int(seed_dir[4:]), len(evals),
            None if planned is None else len(planned[1]), last_eval, line, stage_updates,
            None if planned is None else planned[0].frames_budget))
    return sorted(statuses, key=lambda s: (s.variant, s.game, s.seed))


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def status_line(status: RunStatus, now: float) -> str:
    """One run: iterations done, the running (or last) stage with its updates, frames, last eval."""
    planned = "?" if status.iterations_planned is None else status.iterations_planned
    parts = [f"{status.game}/{status.variant}/seed{status.seed}",
             f"iterations {status.iterations_done}/{planned} evaluated"]
    line = status.last_line
    if line is not None:
        stage = f"{line['stage']} (iteration {line.get('iteration', '?')})"
        if status.stage_updates is not None:
            done, total = status.stage_updates
            stage += f" updates {min(done, total)}/{total}"
            rates = [value for key, value in line.items()
                     if key.startswith("time/") and key.endswith("_updates_per_s")]
            if rates and isinstance(rates[0], (int, float)) and rates[0] > 0 and done < total:
                stage += f", about {_duration((total - done) / rates[0])} left"
        budget = "" if status.frames_budget is None else f"/{status.frames_budget:,}"
        parts.append(stage)
        parts.append(f"frames {line.get('frames', 0):,}{budget}")
        if "elapsed_s" in line:
            parts.append(f"stage time {_duration(line['elapsed_s'])}")
        if "wall_time" in line:
            parts.append(f"last line {_duration(now - line['wall_time'])} ago")
    if status.last_eval is not None:
        evaluation = status.last_eval
        parts.append(f"last eval: iteration {evaluation['iteration']} return "
                     f"{evaluation.get('mean_return', float('nan')):.1f} at "
                     f"{evaluation.get('frames', 0):,} frames")
    return " | ".join(parts)


@click.command("status", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("results", default="results", type=click.Path(file_okay=False, path_type=Path))
def status_command(results: Path) -> None:
    """Where every run in RESULTS (default: results) stands: iterations evaluated out of planned,
    the newest stage with its updates done and planned, frames, the stage's time, how long ago it
    last wrote a metrics line, and the last evaluation's return. Reads, never writes: call it
    while a workflow runs. Each job's full output is in RESULTS/logs/."""
    if not (results / "runs").is_dir():
        raise click.ClickException(f"{results}: no runs/ folder here, so no runs to report "
                                   f"(give the workflow's results folder, paths.results)")
    statuses = run_statuses(results)
    now = time.time()
    for status in statuses:
        click.echo(status_line(status, now))
    if not statuses:
        click.echo(f"no runs under {results / 'runs'} yet")
