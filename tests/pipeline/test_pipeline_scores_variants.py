"""Two variants in one results folder: each keeps its own score report, and the report across
variants compares them (issue 18, item 4: both used to write results/scores/scores.md).

Real Snakemake runs of the two score rules alone (`--allowed-rules`), on eval.json files laid out
as `dreamer-pipeline evaluate` writes them: the training stages are not what is tested here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GAMES, SEEDS, ITERATIONS = ("pong", "breakout"), (0, 1), (0, 1)   # config/debug.yaml's runs


def write_evals(results: Path, variant: str, offset: float) -> None:
    for game in GAMES:
        for seed in SEEDS:
            for iteration in ITERATIONS:
                returns = [offset + 10.0 * iteration + seed, offset + 10.0 * iteration + seed + 2]
                path = results / "runs" / game / variant / f"seed{seed}" / f"iter{iteration:04d}" / "eval.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({
                    "game": game, "variant": variant, "seed": seed, "iteration": iteration,
                    "frames": 800 * (iteration + 1), "returns": returns,
                    "mean_return": sum(returns) / len(returns)}))


def score(workdir: Path, variant: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
               "--cores", "1", "--allowed-rules", "scores", "scores_all_variants",
               "--configfile", str(ROOT / "config/debug.yaml"), "--config", f"variant={variant}", "--",
               f"results/scores/variants/{variant}/scores.md", "results/scores/scores.md"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_two_variants_keep_their_reports_and_share_one_across_variants(tmp_path):
    results = tmp_path / "results"
    write_evals(results, "debug", offset=-20.0)
    write_evals(results, "ablation_a", offset=0.0)
    first = score(tmp_path, "debug")
    assert first.returncode == 0, first.stderr[-4000:]
    debug_report = results / "scores/variants/debug/scores.md"
    debug_text = debug_report.read_text()
    assert "| debug |" in debug_text and "ablation_a" not in debug_text

    second = score(tmp_path, "ablation_a")
    assert second.returncode == 0, second.stderr[-4000:]
    assert debug_report.read_text() == debug_text          # the second variant left it alone
    ablation = json.loads((results / "scores/variants/ablation_a/scores.json").read_text())
    assert "ablation_a" in ablation["aggregates"] and "debug" not in ablation["aggregates"]
    assert {row["method"] for row in ablation["per_game"]} == {"ablation_a"}
    assert (results / "scores/variants/ablation_a/plots/pong.png").stat().st_size > 0
    assert (results / "scores/variants/debug/plots/pong.png").stat().st_size > 0

    combined = json.loads((results / "scores/scores.json").read_text())
    assert {row["method"] for row in combined["per_game"]} == {"debug", "ablation_a"}
    assert {"debug", "ablation_a"} <= set(combined["aggregates"])
    # ablation_a's returns are 20 higher on every run: its row is higher in the table across variants
    pong = {row["method"]: row["score"] for row in combined["per_game"] if row["game"] == "pong"}
    assert pong["ablation_a"] - pong["debug"] == 20.0
    table = (results / "scores/scores.md").read_text()
    assert "| debug |" in table and "| ablation_a |" in table
    assert (results / "logs/scores_all_variants.log").is_file()
