"""Build `dreamerv2_curves.json`, the compact copy of DreamerV2's published Atari learning curves.

A maintainer's tool, run once by hand; nothing imports it. The source is the published
`atari-dreamerv2.json` (a list of runs `{task, method, seed, xs, ys}`, frames binned every 1M).
Only the `dreamerv2` method is kept (the source also holds a `nosched` ablation). Per game the
output holds, on the 1M-frame grid, the mean and standard deviation over the seeds that reached
each point and how many did, plus each seed's last point (the "final score" of a run).

    python pipelines/data/make_dreamerv2_curves.py SOURCE.json pipelines/data/dreamerv2_curves.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

METHOD = "dreamerv2"
STEP = 1_000_000


def _round(value: float) -> float:
    # Five significant digits keeps the file small; plots need far less.
    return float(f"{value:.5g}")


def build(source: Path) -> dict:
    runs: dict[str, list[dict]] = defaultdict(list)
    for run in json.loads(source.read_text()):
        if run["method"] == METHOD:
            runs[run["task"].removeprefix("atari_")].append(run)
    games = {}
    for game in sorted(runs):
        length = max(len(run["xs"]) for run in runs[game])
        grid = np.full((len(runs[game]), length), np.nan)
        finals, final_frames = [], []
        for row, run in enumerate(runs[game]):
            xs = np.asarray(run["xs"])
            index = np.rint(xs / STEP).astype(int) - 1
            if not np.allclose(xs, (index + 1) * STEP):
                raise ValueError(f"{game}: frames off the 1M grid")
            grid[row, index] = run["ys"]
            finals.append(float(run["ys"][-1]))
            final_frames.append(int(xs[-1]))
        counts = np.sum(~np.isnan(grid), axis=0)
        games[game] = {
            "seeds": [int(count) for count in counts],
            "mean": [_round(value) for value in np.nanmean(grid, axis=0)],
            "std": [_round(value) for value in np.nanstd(grid, axis=0)],
            "final_scores": finals,
            "final_frames": final_frames,
        }
    return {
        "source": "DreamerV2 (Hafner et al., ICLR 2021), published Atari learning curves",
        "method": METHOD,
        "frames_start": STEP,
        "frames_step": STEP,
        "games": games,
    }


if __name__ == "__main__":
    source, target = map(Path, sys.argv[1:3])
    target.write_text(json.dumps(build(source), separators=(",", ":")) + "\n")
    print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KiB)")
