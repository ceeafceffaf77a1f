"""Our full DreamerV2 update against sheeprl's, side by side, in one run: the ratio sheeprl / ours.

    python benchmarks/bench_update_compare.py                        # atari preset, B=16, T=50, 2 rounds
    python benchmarks/bench_update_compare.py --rounds 3 --repeats 3 --out compare.json

Each round runs our side (`benchmarks/bench_update.py`, this python) and then sheeprl's side
(`benchmarks/bench_update_sheeprl.py`, the python of a separate environment with sheeprl installed,
`--sheeprl-python` or $SHEEPRL_PYTHON, default /work/sheeprl-venv/bin/python), each in a fresh
process with the same thread count, the order swapping every round. Alternating in one run is what
makes the ratio meaningful on a machine shared with other jobs: both sides see the same load. The
table gives every round's medians and ratio, and the pooled medians of all timed updates.

With `--mode interleaved` both sides run in ONE process of the sheeprl environment instead (our
`models/` needs only torch and numpy, and is imported from this working tree), alternating single
updates: the steadiest ratio on a busy machine, since every pair of updates sees the same load.

A ratio above 1 means our update is faster than sheeprl's. Nothing here is imported by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SHEEPRL_PYTHON = os.environ.get("SHEEPRL_PYTHON", "/work/sheeprl-venv/bin/python")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="atari", help="our configuration preset (models/config.py)")
    parser.add_argument("--batch", type=int, default=16, help="B, sequences per batch")
    parser.add_argument("--length", type=int, default=50, help="T, steps per sequence")
    parser.add_argument("--num-actions", type=int, default=6)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads, both sides")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two sides")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates per process")
    parser.add_argument("--repeats", type=int, default=3, help="timed updates per process")
    parser.add_argument("--mode", choices=["processes", "interleaved"], default="processes",
                        help="processes: alternate fresh processes per side; interleaved: alternate single "
                        "updates of both sides inside one sheeprl-environment process")
    parser.add_argument("--sheeprl-python", default=DEFAULT_SHEEPRL_PYTHON)
    parser.add_argument("--ours-arg", action="append", default=[], help="extra argument for bench_update.py")
    parser.add_argument("--sheeprl-arg", action="append", default=[], help="extra argument for the sheeprl side")
    parser.add_argument("--out", default=str(HERE / "bench_update_compare.json"))
    return parser.parse_args(argv)


class SideFailed(RuntimeError):
    """One side's benchmark process exited with an error."""


def _run(name: str, command: list[str], threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=HERE.parent, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise SideFailed(f"{name} benchmark failed (exit {done.returncode}): {' '.join(command)}\n{tail}")
    return time.perf_counter() - start


def run_ours(args: argparse.Namespace, out: Path) -> dict:
    command = [
        sys.executable, str(HERE / "bench_update.py"), "--presets", args.preset,
        "--batch", str(args.batch), "--length", str(args.length), "--num-actions", str(args.num_actions),
        "--threads", str(args.threads), "--warmup", str(args.warmup), "--repeats", str(args.repeats),
        "--skip-parts", "--out", str(out), *args.ours_arg,
    ]
    wall = _run("our", command, args.threads)
    report = json.loads(out.read_text())
    result = report["results"][0]
    return {"runs": result["update_all_s"], "median": result["update_s"], "threads": report.get("threads"),
            "process_wall_s": wall, "parameters": result.get("parameters"), "torch": report.get("torch")}


def run_sheeprl(args: argparse.Namespace, out: Path) -> dict:
    command = [
        args.sheeprl_python, str(HERE / "bench_update_sheeprl.py"),
        "--batch-size", str(args.batch), "--seq-len", str(args.length), "--actions", str(args.num_actions),
        "--threads", str(args.threads), "--warmup", str(args.warmup), "--runs", str(args.repeats),
        "--out", str(out), *args.sheeprl_arg,
    ]
    wall = _run("sheeprl", command, args.threads)
    report = json.loads(out.read_text())
    return {"runs": report["runs"], "median": report["seconds_per_update_median"],
            "threads": report["torch_threads"], "process_wall_s": wall, "parameters": report["parameters"],
            "sheeprl_version": report["sheeprl_version"], "config": report["config"],
            "torch": report["torch_version"]}


def run_interleaved(args: argparse.Namespace) -> dict:
    """Both sides in one sheeprl-environment process, single updates alternating."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "interleaved.json"
        command = [
            args.sheeprl_python, str(HERE / "bench_update_sheeprl.py"), "--with-ours", args.preset,
            "--batch-size", str(args.batch), "--seq-len", str(args.length), "--actions", str(args.num_actions),
            "--threads", str(args.threads), "--warmup", str(args.warmup), "--runs", str(args.rounds * args.repeats),
            "--out", str(out), *args.sheeprl_arg,
        ]
        print(f"interleaved: {args.rounds * args.repeats} updates per side ...", file=sys.stderr, flush=True)
        _run("interleaved", command, args.threads)
        report = json.loads(out.read_text())
    ours = report["ours"]
    summary = {
        "benchmark": "update_compare", "mode": "interleaved",
        "preset": args.preset, "batch": args.batch, "length": args.length, "num_actions": args.num_actions,
        "threads": args.threads, "warmup": args.warmup, "updates_per_side": len(ours["runs"]),
        "ours_median_s": ours["seconds_per_update_median"],
        "sheeprl_median_s": report["seconds_per_update_median"],
        "ratio_sheeprl_over_ours": ours["ratio_sheeprl_over_ours"],
        "ratio_per_pair": ours["ratio_per_run"],
        "ours_runs": ours["runs"], "sheeprl_runs": report["runs"],
        "sheeprl_version": report["sheeprl_version"], "sheeprl_config": report["config"],
        "parameters": {"ours": ours["parameters"], "sheeprl": report["parameters"]},
        "load_average": os.getloadavg(),
    }
    print(f"full update, B={args.batch} T={args.length}, {args.threads} threads, preset {args.preset}, "
          "interleaved in one process")
    print(f"{'pair':>5} {'ours s':>9} {'sheeprl s':>10} {'ratio':>7}")
    for i, (o, s_) in enumerate(zip(ours["runs"], report["runs"])):
        print(f"{i + 1:>5} {o:9.3f} {s_:10.3f} {s_ / o:7.2f}")
    print(f"{'all':>5} {summary['ours_median_s']:9.3f} {summary['sheeprl_median_s']:10.3f} "
          f"{summary['ratio_sheeprl_over_ours']:7.2f}   (ratio = sheeprl / ours; > 1: ours is faster)")
    return summary


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not Path(args.sheeprl_python).exists():
        sys.exit(f"sheeprl python not found: {args.sheeprl_python} (see the recipe in benchmarks/README.md, "
                 "or pass --sheeprl-python / set SHEEPRL_PYTHON)")
    if args.mode == "interleaved":
        summary = run_interleaved(args)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {out}")
        return summary
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.rounds):
            order = ["ours", "sheeprl"] if index % 2 == 0 else ["sheeprl", "ours"]
            entry = {"round": index + 1, "order": order}
            for side in order:
                out = Path(tmp) / f"{side}{index}.json"
                print(f"round {index + 1}/{args.rounds}: {side} ...", file=sys.stderr, flush=True)
                entry[side] = run_ours(args, out) if side == "ours" else run_sheeprl(args, out)
            entry["ratio"] = entry["sheeprl"]["median"] / entry["ours"]["median"]
            rounds.append(entry)
            print(f"round {index + 1}: ours {entry['ours']['median']:.3f} s, sheeprl "
                  f"{entry['sheeprl']['median']:.3f} s, ratio {entry['ratio']:.2f}", file=sys.stderr, flush=True)

    ours_all = [t for r in rounds for t in r["ours"]["runs"]]
    sheeprl_all = [t for r in rounds for t in r["sheeprl"]["runs"]]
    summary = {
        "benchmark": "update_compare", "mode": "processes",
        "preset": args.preset, "batch": args.batch, "length": args.length, "num_actions": args.num_actions,
        "threads": args.threads, "warmup": args.warmup, "repeats": args.repeats,
        "ours_median_s": statistics.median(ours_all),
        "sheeprl_median_s": statistics.median(sheeprl_all),
        "ratio_sheeprl_over_ours": statistics.median(sheeprl_all) / statistics.median(ours_all),
        "ratio_per_round": [r["ratio"] for r in rounds],
        "sheeprl_version": rounds[0]["sheeprl"]["sheeprl_version"],
        "sheeprl_config": rounds[0]["sheeprl"]["config"],
        "parameters": {"ours": rounds[0]["ours"]["parameters"], "sheeprl": rounds[0]["sheeprl"]["parameters"]},
        "load_average": os.getloadavg(),
        "rounds": rounds,
    }
    print(f"full update, B={args.batch} T={args.length}, {args.threads} threads, preset {args.preset}")
    print(f"{'round':>5} {'ours s':>9} {'sheeprl s':>10} {'ratio':>7}")
    for r in rounds:
        print(f"{r['round']:>5} {r['ours']['median']:9.3f} {r['sheeprl']['median']:10.3f} {r['ratio']:7.2f}")
    print(f"{'all':>5} {summary['ours_median_s']:9.3f} {summary['sheeprl_median_s']:10.3f} "
          f"{summary['ratio_sheeprl_over_ours']:7.2f}   (ratio = sheeprl / ours; > 1: ours is faster)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return summary


if __name__ == "__main__":
    main()
