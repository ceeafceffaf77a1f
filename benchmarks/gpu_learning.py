"""DreamerV2 learning Atari on one GPU: the real pipeline on config/gpu_boxing.yaml, one table.

Run by benchmarks/gpu_learning.sh (which sets up a bare GPU machine first). It:

1. writes the configuration (with `--set` overrides: the dry run's debug sizes) into its own
   results folder and runs `snakemake train_all` on it, stopping Snakemake at `--deadline`;
2. plays the uniform random policy in the same run, beside Snakemake (same environment protocol,
   as many episodes as the last evaluation, at least 20);
3. prints one table, a row per finished evaluation: frames, the iteration's updates/s and agent
   steps/s, the greedy return with its 95% interval, random play's return, DreamerV2's published
   curve at those frames; then the planned wall time of a 200M-frame run at this run's rates
   (benchmarks/planned_wall_time.py), and writes it all as JSON (`gpu_learning.json` in the folder).

The interval, the random play, the evaluation curve and the published curve are
benchmarks/bench_learning.py's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from bench_learning import interval95, published, random_returns, read_configuration, read_curve
from planned_wall_time import IterationMeasure, describe, measured_rates, plan_of

ROOT = Path(__file__).resolve().parents[1]
PLAN_FRAMES = 200_000_000
GOAL_RETURN = 20.0
STOP_GRACE_SECONDS = 15
COLUMNS = ["frames", "iteration", "updates/s", "agent steps/s", "greedy return (95% CI)", "episodes",
           "random return (95% CI)", "DreamerV2 published"]


class RandomPlay(threading.Thread):
    """The uniform random policy's returns, played while Snakemake runs."""

    def __init__(self, cfg, game: str, episodes: int, seed: int):
        super().__init__(daemon=True)
        self.args, self.returns, self.error = (cfg, game, episodes, seed), None, None

    def run(self) -> None:
        try:
            self.returns = random_returns(*self.args)
        except Exception as error:  # noqa: BLE001 - reported in the table's place, the run goes on
            self.error = f"{type(error).__name__}: {error}"


def run_snakemake(command: list[str], log_path: Path, deadline: float, on_poll) -> tuple[int | None, bool]:
    """Snakemake in its own process group until it ends or `deadline` (epoch seconds) passes; then
    the whole group is stopped (SIGTERM, SIGKILL after a grace period). Returns (exit code, stopped)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # the rules call `dreamer-pipeline`: the caller's (gpu_learning.sh puts a shim first), else the
    # one beside this interpreter
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), str(Path(sys.executable).parent)])
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        while process.poll() is None and time.time() < deadline:
            time.sleep(2)
            on_poll()
        if process.poll() is not None:
            return process.returncode, False
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return process.returncode, True


def _seconds_between(start: str, end: str) -> float:
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def collection(stores: list[Path]) -> tuple[int, float] | None:
    """(agent steps, seconds) of the collectors that filled `stores`, from their run records: the
    steps they committed, from the first start to the last end. None if a store is missing or open."""
    from dreamer_pipeline.datasets.store import ExperienceStore, StoreError

    steps, starts, ends = 0, [], []
    for path in stores:
        try:
            runs = ExperienceStore(path).attrs.get("runs", [])
        except StoreError:
            return None
        finished = [run for run in runs if run.get("finished")]
        if not finished:
            return None
        steps += sum(int(run["steps_after"]) - int(run["steps_before"]) for run in finished)
        starts += [run["started"] for run in finished]
        ends += [run["finished"] for run in finished]
    if not stores or steps <= 0:
        return None
    first, last = min(starts, key=dt.datetime.fromisoformat), max(ends, key=dt.datetime.fromisoformat)
    return steps, max(_seconds_between(first, last), 1e-6)


def updates_per_second(records: list[dict], iteration: int) -> float | None:
    """The iteration's training stage's own rate: its last `time/<stage>_updates_per_s` (updates made
    over the seconds of its update loop)."""
    rate = None
    for record in records:
        if record.get("iteration") == iteration:
            for key, value in record.items():
                if key.startswith("time/") and key.endswith("_updates_per_s") and isinstance(value, (int, float)):
                    rate = float(value)
    return rate


def measure_iterations(cfg, run_dir: Path, layout, game: str, seed: int) -> tuple[list[dict], tuple[int, float] | None]:
    """Per finished iteration: updates, updates/s, agent steps, collection seconds, wall seconds.
    Also the prefill's (steps, seconds)."""
    from dreamer_pipeline.pipelines.schedule import plan
    from dreamer_pipeline.pipelines.tracking.metrics import read_metrics

    metrics = Path(layout.metrics(game, cfg.variant, seed))
    records = read_metrics(metrics) if metrics.exists() else []
    prefill = collection([Path(layout.dataset_store(game, cfg.prefill.name))])
    found, previous_end = [], None
    for it in plan(cfg):
        checkpoint = Path(layout.agent(game, cfg.variant, seed, it.index, cfg.interleaved))
        if not checkpoint.exists():
            break
        end = checkpoint.stat().st_mtime
        stores = [Path(layout.shard_store(game, cfg.variant, seed, it.index, j)) for j in range(it.num_shards)]
        collected = collection(stores) if it.index else prefill
        found.append({
            "iteration": it.index, "updates": it.updates, "updates_per_s": updates_per_second(records, it.index),
            "agent_steps": collected[0] if collected else None, "collect_seconds": collected[1] if collected else None,
            "wall_seconds": end - previous_end if previous_end is not None else None,
        })
        previous_end = end
    return found, prefill


def planned(config: dict, measures: list[dict], prefill) -> str:
    usable = [IterationMeasure(m["iteration"], m["updates"], m["updates"] / m["updates_per_s"], m["agent_steps"],
                               m["collect_seconds"], m["wall_seconds"])
              for m in measures if m["iteration"] >= 1 and m["updates_per_s"] and m["agent_steps"]
              and m["wall_seconds"] is not None]
    if not usable or prefill is None:
        return f"planned wall time of a {PLAN_FRAMES / 1e6:g}M-frame run: not measured (no finished online iteration)"
    rates = measured_rates(usable, *prefill)
    iterations, prefill_steps = plan_of(config, PLAN_FRAMES)
    return describe(iterations, prefill_steps, rates, PLAN_FRAMES)


def _interval(mean: float, low: float, high: float) -> str:
    return f"{mean:.1f} [{low:.1f}, {high:.1f}]"


def table(curve: list[dict], measures: list[dict], random: tuple[float, float, float] | None, game: str) -> list[str]:
    by_iteration = {m["iteration"]: m for m in measures}
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for point in curve:
        measure = by_iteration.get(point["iteration"], {})
        steps_per_s = (measure["agent_steps"] / measure["collect_seconds"]
                       if measure.get("agent_steps") and measure.get("collect_seconds") else None)
        reference = published(game, point["frames"])
        cells = [
            str(point["frames"]), str(point["iteration"]),
            "-" if measure.get("updates_per_s") is None else f"{measure['updates_per_s']:.1f}",
            "-" if steps_per_s is None else f"{steps_per_s:.0f}",
            _interval(point["mean"], point["low"], point["high"]), str(point["episodes"]),
            "-" if random is None else _interval(*random),
            "-" if reference is None else f"{reference:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "config/gpu_boxing.yaml"))
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="an override, dotted key and YAML value, as Snakemake's --config")
    parser.add_argument("--results", default=str(ROOT / "results/gpu_learning"))
    parser.add_argument("--deadline", type=float, default=None,
                        help="epoch seconds at which Snakemake is stopped (default: none)")
    parser.add_argument("--cores", type=int, default=0, help="Snakemake's --cores (default: enough for an "
                        "evaluation beside a training stage, at least this machine's cores)")
    args = parser.parse_args()

    from dreamer_pipeline.pipelines.config import config_from_mapping
    from dreamer_pipeline.pipelines.run_layout import RunLayout

    started = time.time()
    results = Path(args.results).resolve()
    results.mkdir(parents=True, exist_ok=True)
    data = read_configuration(args.config, args.settings)
    data.setdefault("paths", {})["results"] = str(results)
    cfg = config_from_mapping(data)
    if len(cfg.games) != 1 or len(cfg.seeds) != 1:
        raise SystemExit("gpu_learning runs one game and one seed")
    game, seed = cfg.games[0], cfg.seeds[0]
    config_path = results / f"{cfg.variant}.config.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    layout = RunLayout.from_config(cfg)
    run_dir = Path(layout.run_dir(game, cfg.variant, seed))

    episodes = max(20, cfg.evaluate.episodes)
    random_play = RandomPlay(cfg, game, episodes, seed=10_000 + seed)
    random_play.start()

    evaluation_threads = min(cfg.evaluate.envs, cfg.evaluate.episodes)
    cores = args.cores or max(os.cpu_count() or 1, evaluation_threads + cfg.collectors + 1)
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(results),
               "--cores", str(cores), "--rerun-incomplete", "train_all", "--configfile", str(config_path)]
    log_path = results / f"{cfg.variant}.snakemake.log"
    if any((results / ".snakemake" / "locks").glob("*")):  # left by a run stopped at its time limit
        subprocess.run([*command, "--unlock"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    print("running:", " ".join(command), f"(log: {log_path})", flush=True)

    reported: set[Path] = set()

    def report_evaluations() -> None:
        for path in sorted(run_dir.glob("iter*/eval.json")):
            if path not in reported:
                reported.add(path)
                result = json.loads(path.read_text())
                print(f"  {time.time() - started:6.0f} s  iteration {result['iteration']} evaluated: "
                      f"{result['mean_return']:.1f} over {len(result['returns'])} episodes at "
                      f"{result['frames']:,} frames", flush=True)

    code, stopped = run_snakemake(command, log_path, args.deadline or float("inf"), report_evaluations)
    wall = time.time() - started
    report_evaluations()
    random_play.join(timeout=10)  # it plays beside Snakemake: done long before, except at tiny time limits

    curve = read_curve(run_dir) if run_dir.exists() else []
    measures, prefill = measure_iterations(cfg, run_dir, layout, game, seed)
    random = interval95(random_play.returns) if random_play.returns else None
    status = ("stopped at its time limit" if stopped else "finished" if code == 0
              else f"FAILED (exit code {code}; see {log_path})")
    print(f"\n{game}, variant {cfg.variant}: Snakemake {status} after {wall / 60:.1f} min; "
          f"{len(curve)} evaluation(s) finished")
    print("\n".join(table(curve, measures, random, game)))
    if random is None:
        print(f"random play: {random_play.error or 'not finished'}")
    else:
        print(f"random play: {len(random_play.returns)} episodes, the same protocol (sticky actions, greedy "
              f"evaluation's environment settings)")
    plan_line = planned(data, measures, prefill)
    print(plan_line)
    final = curve[-1] if curve else None
    reached = bool(final and random and final["episodes"] >= 20 and final["mean"] >= GOAL_RETURN
                   and final["low"] > random[2])
    print(f"goal (greedy return >= {GOAL_RETURN:g} over >= 20 episodes, interval above random play's): "
          f"{'reached' if reached else 'NOT reached'}")

    out = results / "gpu_learning.json"
    out.write_text(json.dumps({
        "game": game, "variant": cfg.variant, "config": data, "wall_seconds": wall, "snakemake": status,
        "curve": curve, "iterations": measures,
        "random": None if random is None else {"returns": random_play.returns, "mean": random[0], "low": random[1],
                                               "high": random[2]},
        "planned": plan_line, "goal": GOAL_RETURN, "reached": reached,
    }, indent=2))
    print(f"wrote {out}")
    if code not in (0, None) and not stopped:
        sys.exit(1)


if __name__ == "__main__":
    main()
