"""Does the agent learn? The real pipeline (snakemake, a config in config/) on one game, on this CPU.

1. Runs `snakemake --cores N train_all` with the configuration (default `config/boxing_cpu.yaml`,
   the CPU recipe), optionally with overrides (`--set loop.online=false`), into its own results
   folder, timing it and sampling the machine's load average.
2. Plays the uniform random policy in the same run, with the same environment protocol (sticky
   actions on) and as many episodes as the final evaluation.
3. Reads every `eval.json` of the run: the learning curve against frames, the final greedy return
   with its 95% confidence interval (Student t over episodes), and the random policy's.
4. Prints a table with DreamerV2's published curve beside it (first published point: 1M frames)
   and writes JSON (`--out`). The run's score report (`results/.../scores/`, its plots showing the
   published curve and the random policy) is the pipeline's own.

    python benchmarks/bench_learning.py                                  # the Boxing recipe, ~2 hours
    python benchmarks/bench_learning.py --set loop.online=false --variant staged   # an A/B arm
    python benchmarks/bench_learning.py --config config/small.yaml       # the README's 30-minute cut

Goal (issue "Learning, shown"): a final greedy return of at least 10 over at least 20 episodes on
Boxing, whose 95% interval excludes the random policy's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def read_configuration(path: str | Path, settings: list[str]) -> dict:
    """The configuration file with `--set KEY=VALUE` applied: the pipeline's one dotted override
    syntax (`pipelines/config_overrides.py`, as Snakemake's `--config`), typed by the schema. A bad
    file or setting ends the benchmark with one line naming it."""
    from dreamer_pipeline.models.config_schema import ConfigError
    from dreamer_pipeline.pipelines.config import read_config_data
    from dreamer_pipeline.pipelines.config_overrides import apply_settings

    try:
        return apply_settings(read_config_data(path), settings)
    except ConfigError as error:
        raise SystemExit(f"error: {error}") from None


def t_quantile_975(df: int) -> float:
    """Student t's 97.5% quantile (Cornish-Fisher expansion around the normal; within 0.2% for df >= 9)."""
    z = 1.959963984540054
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def interval95(values: list[float]) -> tuple[float, float, float]:
    """Mean and the 95% Student-t confidence interval of the mean."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(t_quantile_975(len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


class LoadSampler(threading.Thread):
    """Samples the 1-minute load average every `period` seconds while the run goes on."""

    def __init__(self, period: float = 30.0):
        super().__init__(daemon=True)
        self.period, self.samples, self.stopped = period, [], threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.period):
            self.samples.append(os.getloadavg()[0])


def random_returns(cfg, game: str, episodes: int, seed: int) -> list[float]:
    from dreamer_pipeline.pipelines.envs.registry import vector_env
    from dreamer_pipeline.pipelines.stages.evaluate import evaluation_env_config, run_episodes
    from dreamer_pipeline.pipelines.acting.policy import RandomPolicy

    envs = min(episodes, max(1, cfg.evaluate.envs))
    with vector_env(game, envs, evaluation_env_config(cfg)) as env:
        returns, _ = run_episodes(env, RandomPolicy(env.action_space, seed), episodes, seed, progress=False)
    return returns


def read_curve(run_dir: Path) -> list[dict]:
    points = []
    for path in sorted(run_dir.glob("iter*/eval.json")):
        data = json.loads(path.read_text())
        mean, low, high = interval95(data["returns"])
        points.append({"iteration": data["iteration"], "frames": data["frames"], "episodes": len(data["returns"]),
                       "mean": mean, "low": low, "high": high})
    return points


def published(game: str, frames: int) -> float | None:
    from dreamer_pipeline.pipelines.scores.reference_curves import reference_curve, reference_games

    if game not in reference_games():
        return None
    curve = reference_curve(game)  # linearly interpolated inside the published grid, else its last point before
    value = curve.interpolate(frames)
    return value if value is not None else curve.at(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "config/boxing_cpu.yaml"))
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="an override, dotted key and YAML value (train.batch_size=32), as Snakemake's --config")
    parser.add_argument("--variant", default=None, help="variant name (default: the config's)")
    parser.add_argument("--results", default=str(ROOT / "results/bench_learning"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--goal", type=float, default=10.0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--skip-run", action="store_true", help="only read an existing run")
    args = parser.parse_args()

    from dreamer_pipeline.pipelines.config import config_from_mapping

    data = read_configuration(args.config, args.settings)
    if args.variant:
        data["variant"] = args.variant
    data.setdefault("paths", {})["results"] = str(Path(args.results).resolve())  # absolute: snakemake runs with -d in that folder
    cfg = config_from_mapping(data)
    if len(cfg.games) != 1 or len(cfg.seeds) != 1:
        raise SystemExit("the learning benchmark runs one game and one seed")
    game, seed = cfg.games[0], cfg.seeds[0]
    results = Path(args.results).resolve()
    results.mkdir(parents=True, exist_ok=True)
    config_path = results / f"{cfg.variant}.config.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    log_path = results / f"{cfg.variant}.snakemake.log"

    load = LoadSampler()
    started = time.time()
    if not args.skip_run:
        load.start()
        command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(results),
                   "--cores", str(args.cores), "--rerun-incomplete", "train_all", "--configfile", str(config_path)]
        print("running:", " ".join(command), flush=True)
        # the rules call the `dreamer-pipeline` script: the one beside this interpreter, even when
        # its environment is not activated
        env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
        with open(log_path, "ab") as log:
            code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        load.stopped.set()
        if code != 0:
            raise SystemExit(f"snakemake failed with exit code {code}; see {log_path}")
    wall = time.time() - started

    run_dir = results / "runs" / game / cfg.variant / f"seed{seed}"
    curve = read_curve(run_dir)
    if not curve:
        raise SystemExit(f"no eval.json under {run_dir}")
    final = curve[-1]
    final_returns = json.loads(sorted(run_dir.glob("iter*/eval.json"))[-1].read_text())["returns"]
    random = random_returns(cfg, game, max(20, final["episodes"]), seed=10_000 + seed)
    r_mean, r_low, r_high = interval95(random)
    reached = final["mean"] >= args.goal and final["low"] > r_high

    print(f"\n{game}, variant {cfg.variant}: wall {wall / 60:.1f} min, load average median "
          f"{np.median(load.samples) if load.samples else float('nan'):.1f}")
    print(f"{'frames':>10} {'iter':>4} {'episodes':>8} {'greedy return (95% CI)':>26} {'DreamerV2 published':>20}")
    for point in curve:
        ref = published(game, point["frames"])
        print(f"{point['frames']:>10} {point['iteration']:>4} {point['episodes']:>8} "
              f"{point['mean']:>8.1f} [{point['low']:6.1f}, {point['high']:6.1f}] "
              f"{'-' if ref is None else f'{ref:.1f}':>20}")
    print(f"random policy ({len(random)} episodes): {r_mean:.1f} [{r_low:.1f}, {r_high:.1f}]")
    print(f"goal (>= {args.goal} and interval above random's): {'reached' if reached else 'NOT reached'}")

    result = {
        "game": game, "variant": cfg.variant, "config": data, "wall_seconds": wall,
        "load_average": {"median": float(np.median(load.samples)) if load.samples else None,
                         "samples": load.samples},
        "curve": curve, "final_returns": final_returns,
        "random": {"returns": random, "mean": r_mean, "low": r_low, "high": r_high},
        "published_at_1M_frames": published(game, 1_000_000), "goal": args.goal, "reached": reached,
    }
    out = Path(args.out or results / f"{cfg.variant}.bench_learning.json")
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
