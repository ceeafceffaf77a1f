"""Build `dreamerv2_dmc_curves.json`, the compact copy of DreamerV2's published Control Suite curves.

A maintainer's tool, run once by hand; nothing imports it. The sources are the published
`dmc_vision` curves (20 tasks x 5 seeds to 2M frames; a list of runs `{task, method, seed, xs,
ys}` with `task` = `dmc_<domain>_<task>` and `xs` in environment frames, binned every 30k) and the
humanoid-walk curves (10 seeds, binned every 300k, to about 43M frames). The summaries
`stats_normalized_mean` / `stats_normalized_median` are left out: they are not tasks. Per task the
output holds, on the task's frame grid, the mean and standard deviation over the seeds that reached
each point and how many did, plus each seed's last point and its frames (as
`make_dreamerv2_curves.py` does for Atari).

    python pipelines/data/make_dreamerv2_dmc_curves.py DMC_VISION.json HUMANOID.json \
        pipelines/data/dreamerv2_dmc_curves.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def _round(value: float) -> float:
    # Five significant digits keeps the file small; plots need far less.
    return float(f"{value:.5g}")


def _curve(runs: list[dict], method: str, task: str) -> dict:
    step = runs[0]["xs"][1] - runs[0]["xs"][0]
    start = runs[0]["xs"][0]
    length = max(len(run["xs"]) for run in runs)
    grid = np.full((len(runs), length), np.nan)
    finals, final_frames = [], []
    for row, run in enumerate(runs):
        xs = np.asarray(run["xs"], dtype=float)
        index = np.rint((xs - start) / step).astype(int)
        if not np.allclose(xs, start + index * step):
            raise ValueError(f"{task}: frames off the {step:g}-frame grid")
        grid[row, index] = run["ys"]
        finals.append(float(run["ys"][-1]))
        final_frames.append(int(xs[-1]))
    counts = np.sum(~np.isnan(grid), axis=0)
    return {
        "method": method,
        "frames_start": int(start),
        "frames_step": int(step),
        "seeds": [int(count) for count in counts],
        "mean": [_round(value) for value in np.nanmean(grid, axis=0)],
        "std": [_round(value) for value in np.nanstd(grid, axis=0)],
        "final_scores": finals,
        "final_frames": final_frames,
    }


def build(dmc_vision: Path, humanoid: Path) -> dict:
    runs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in (dmc_vision, humanoid):
        for run in json.loads(path.read_text()):
            if run["task"].startswith("dmc_"):
                runs[run["task"].removeprefix("dmc_"), run["method"]].append(run)
    tasks = {}
    for (task, method), task_runs in sorted(runs.items()):
        if task in tasks:
            raise ValueError(f"{task}: more than one method ({tasks[task]['method']}, {method})")
        tasks[task] = _curve(task_runs, method, task)
    return {
        "source": "DreamerV2 (Hafner et al., ICLR 2021), published DeepMind Control Suite curves from pixels "
                  "(dmc_vision, and humanoid_walk)",
        "frames": "environment frames (agent steps x action repeat 2)",
        "tasks": tasks,
    }


if __name__ == "__main__":
    dmc_vision, humanoid, target = map(Path, sys.argv[1:4])
    target.write_text(json.dumps(build(dmc_vision, humanoid), separators=(",", ":")) + "\n")
    print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KiB)")
