"""`dreamer-pipeline inspect`: what an experience store holds, how it is laid out, where it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

COUNTER_KEYS = ("committed_steps", "committed_episodes")


def _bytes_on_disk(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _codecs(array) -> list[str]:
    names = []
    for codec in list(getattr(array, "compressors", ()) or ()):
        config = codec.to_dict() if hasattr(codec, "to_dict") else {"name": type(codec).__name__}
        settings = ", ".join(f"{k}={v}" for k, v in (config.get("configuration") or {}).items())
        names.append(f"{config.get('name', type(codec).__name__)}({settings})")
    return names


def describe_store(path: str | Path) -> dict[str, Any]:
    """A JSON-ready description: schema, provenance, counts and integrity. Raises StoreError for
    bad stores, including one that fails verification (datasets/verify.py), naming the problem."""
    from dreamer_pipeline.datasets.store import ExperienceStore, StoreError
    from dreamer_pipeline.datasets.verify import verify_store

    report = verify_store(path)
    if not report.ok:
        more = len(report.problems) - 1 + report.more_problems
        raise StoreError(path, f"fails verification: {report.problems[0]}"
                               + (f" (and {more} more problems; see `dreamer-pipeline verify`)" if more else ""))
    store = ExperienceStore(path)
    root = Path(path)
    arrays = {}
    for key, array in store.arrays.items():
        itemsize = array.dtype.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
        disk = _bytes_on_disk(root / key)
        raw = itemsize * store.num_steps
        arrays[key] = {
            "dtype": str(array.dtype),
            "shape": [store.num_steps, *array.shape[1:]],
            "allocated_steps": int(array.shape[0]),
            "chunks": list(array.chunks),
            "compressors": _codecs(array),
            "bytes_on_disk": disk,
            "bytes_raw": raw,
            "compression_ratio": round(raw / disk, 2) if disk else None,
        }
    episodes = store.episodes()
    lengths = episodes.lengths
    counts: dict[str, Any] = {
        "steps": store.num_steps,
        "episodes": store.num_episodes,
        "frames": store.num_steps * int((store.attrs.get("env") or {}).get("action_repeat", 4)),
        "bytes_on_disk": _bytes_on_disk(root),
    }
    if len(lengths):
        terminal = store.read("is_terminal")[episodes.starts + lengths - 1]
        counts.update(
            episode_length_mean=float(lengths.mean()),
            episode_length_min=int(lengths.min()),
            episode_length_max=int(lengths.max()),
            terminal_episodes=int(terminal.sum()),
            truncated_episodes=int(len(lengths) - terminal.sum()),
        )
        if store.has_reward:
            returns = np.add.reduceat(store.read("reward").astype(np.float64), episodes.starts)
            counts.update(
                return_mean=float(returns.mean()),
                return_std=float(returns.std()),
                return_min=float(returns.min()),
                return_max=float(returns.max()),
            )
    counts["bytes_per_step"] = round(counts["bytes_on_disk"] / store.num_steps, 1) if store.num_steps else None
    provenance = {k: v for k, v in store.attrs.items() if k not in COUNTER_KEYS}
    integrity = {"ok": True, "chunks_read": report.chunks, "checksummed": report.checksummed}
    return {"path": str(root), "reward_free": store.reward_free, "counts": counts, "arrays": arrays,
            "integrity": integrity, "provenance": provenance}


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_description(info: dict[str, Any]) -> str:
    counts, lines = info["counts"], [f"experience store {info['path']}"]
    lines.append(f"  steps {counts['steps']:,}  episodes {counts['episodes']:,}  frames {counts['frames']:,}  "
                 f"on disk {_human_bytes(counts['bytes_on_disk'])}"
                 + (f" ({counts['bytes_per_step']} B/step)" if counts["bytes_per_step"] is not None else ""))
    if "episode_length_mean" in counts:
        lines.append(f"  episode length mean {counts['episode_length_mean']:.1f} (min {counts['episode_length_min']}, "
                     f"max {counts['episode_length_max']}); {counts['terminal_episodes']} terminal, "
                     f"{counts['truncated_episodes']} truncated by the time limit")
    if "return_mean" in counts:
        lines.append(f"  return mean {counts['return_mean']:.2f} (std {counts['return_std']:.2f}, "
                     f"min {counts['return_min']:g}, max {counts['return_max']:g})")
    elif info["reward_free"]:
        lines.append("  reward-free: the store holds no rewards")
    integrity = info["integrity"]
    lines.append(f"  integrity: ok, {integrity['chunks_read']:,} chunks read and decoded, "
                 + ("crc32c checksums match" if integrity["checksummed"] else "no checksums (written before them)")
                 + ", flags and counters agree")
    lines.append("arrays:")
    header = f"  {'name':<12} {'dtype':<8} {'shape':<22} {'chunks':<18} {'compressors':<34} {'on disk':>10} {'ratio':>6}"
    lines.append(header)
    for key, a in info["arrays"].items():
        lines.append(f"  {key:<12} {a['dtype']:<8} {str(tuple(a['shape'])):<22} {str(tuple(a['chunks'])):<18} "
                     f"{', '.join(a['compressors']) or 'none':<34} {_human_bytes(a['bytes_on_disk']):>10} "
                     f"{a['compression_ratio'] if a['compression_ratio'] is not None else '-':>6}")
    lines.append("provenance:")
    for key, value in info["provenance"].items():
        if key == "runs":
            lines.append(f"  runs: {len(value)}")
            for run in value:
                lines.append(f"    - {json.dumps(run)}")
        else:
            lines.append(f"  {key}: {json.dumps(value)}")
    return "\n".join(lines)


@click.command("inspect", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def inspect_command(store: Path, as_json: bool) -> None:
    """Describe the experience store STORE: counts, integrity, array layout and provenance.

    Counts: committed steps, episodes, episode lengths and returns. Integrity: the result of
    `dreamer-pipeline verify` (a store that fails it is an error naming the problem). Layout: each
    array's dtype, shape, chunks, compressors and bytes on disk. Provenance: game, ale-py version,
    environment settings, action set, policy, seed, writer and the history of collection runs.

    Example: dreamer-pipeline inspect results/datasets/pong/random50k.zarr --json
    """
    info = describe_store(store)  # a bad store is one line and exit code 2 (pipelines/cli.py)
    click.echo(json.dumps(info, indent=2) if as_json else format_description(info))
