"""Choose the experience store's image chunking and compression from measurements on real frames.

Collects real Atari frames with the random policy (the paper's protocol, our collector), then, for
every chunk size and compressor, appends the same episodes to a fresh zarr image array exactly as
`StoreWriter` does (resize, then write one whole episode) and measures:

- bytes per step on disk (file sizes, and allocated blocks, which is what a file system pays for
  many small chunk files),
- write speed (steps/s of episode appends, compression included),
- read time of a random 50-step training window (the paper's T=50), median: through zarr's
  slicing, and through `datasets.chunks.ChunkReader`, the sampler's direct chunk-file path (zstd
  only; other codecs fall back to zarr inside it).

    python benchmarks/bench_store_layout.py --games pong breakout --steps 20000 --out layout.json

Frames are cached in --frames-cache (npz) so reruns skip collection.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

CHUNKS = (16, 32, 64, 128, 256)
COMPRESSORS = {
    "zstd-1": lambda: [ZstdCodec(level=1)],
    "zstd-3": lambda: [ZstdCodec(level=3)],
    "zstd-5": lambda: [ZstdCodec(level=5)],
    "blosc-lz4": lambda: [BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle")],
    "none": lambda: [],
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", nargs="+", default=["pong", "breakout", "ms_pacman"])
    parser.add_argument("--steps", type=int, default=20_000, help="agent steps collected per game")
    parser.add_argument("--envs", type=int, default=2)
    parser.add_argument("--chunks", type=int, nargs="+", default=list(CHUNKS))
    parser.add_argument("--compressors", nargs="+", default=list(COMPRESSORS), choices=list(COMPRESSORS))
    parser.add_argument("--reads", type=int, default=300, help="random 50-step windows read per layout")
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--frames-cache", type=Path, default=Path(tempfile.gettempdir()) / "dreamer_bench_frames")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("bench_store_layout.json"))
    return parser.parse_args(argv)


def episodes_of(game: str, steps: int, envs: int, cache_dir: Path) -> list[np.ndarray]:
    """Image arrays of whole random-policy episodes of `game` (cached)."""
    cache = cache_dir / f"{game}-{steps}.npz"
    if cache.exists():
        data = np.load(cache)
        return np.split(data["image"], data["boundaries"])
    from dreamer_pipeline.datasets.store import ExperienceStore
    from dreamer_pipeline.pipelines.acting.collector import collect

    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "frames.zarr"
        collect(store_path, game, steps, num_envs=envs, seed=0, progress=True)
        store = ExperienceStore(store_path)
        image = store.read("image")
        starts = store.episodes().starts
    np.savez(cache, image=image, boundaries=starts[1:])
    return np.split(image, starts[1:])


def disk_usage(path: Path) -> tuple[int, int, int]:
    """(bytes in files, bytes in allocated blocks, number of files)."""
    sizes = blocks = files = 0
    for file in path.rglob("*"):
        if file.is_file():
            stat = file.stat()
            sizes += stat.st_size
            blocks += stat.st_blocks * 512
            files += 1
    return sizes, blocks, files


def measure(episodes: list[np.ndarray], chunk: int, compressor: str, reads: int, window: int, root: Path) -> dict:
    path = root / f"c{chunk}-{compressor}.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    array = group.create_array(
        "image", shape=(0, 64, 64, 1), chunks=(chunk, 64, 64, 1), dtype=np.uint8,
        compressors=COMPRESSORS[compressor](), fill_value=0,
    )
    total = sum(len(e) for e in episodes)
    start = time.perf_counter()
    at = 0
    for episode in episodes:  # StoreWriter's access pattern: grow, then write one whole episode
        array.resize((at + len(episode), 64, 64, 1))
        array[at : at + len(episode)] = episode
        at += len(episode)
    write_seconds = time.perf_counter() - start
    sizes, blocks, files = disk_usage(path)

    from dreamer_pipeline.datasets.chunks import ChunkReader

    reader = zarr.open_array(str(path / "image"), mode="r")
    chunk_reader = ChunkReader(reader)
    rng = np.random.default_rng(0)
    times, fast_times = [], []
    for begin in rng.integers(0, total - window, size=reads):
        t0 = time.perf_counter()
        reader[begin : begin + window]
        t1 = time.perf_counter()
        chunk_reader.read_range(int(begin), int(begin) + window)
        fast_times.append(time.perf_counter() - t1)
        times.append(t1 - t0)
    shutil.rmtree(path)
    return {
        "chunk_steps": chunk,
        "compressor": compressor,
        "steps": total,
        "bytes_per_step": sizes / total,
        "disk_bytes_per_step": blocks / total,
        "files": files,
        "write_steps_per_s": total / write_seconds,
        "read_window_ms_median": 1e3 * statistics.median(times),
        "read_window_ms_p90": 1e3 * float(np.percentile(times, 90)),
        "chunk_reader_window_ms_median": 1e3 * statistics.median(fast_times),
        "chunk_reader_fast_path": chunk_reader.fast,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for game in args.games:
            episodes = episodes_of(game, args.steps, args.envs, args.frames_cache)
            for chunk in args.chunks:
                for compressor in args.compressors:
                    row = {"game": game, **measure(episodes, chunk, compressor, args.reads, args.window, Path(tmp))}
                    rows.append(row)
                    print(f"{game:<10} chunk {chunk:>4} {compressor:<9} {row['bytes_per_step']:>8.1f} B/step "
                          f"{row['disk_bytes_per_step']:>8.1f} disk B/step {row['write_steps_per_s']:>9.0f} writes/s "
                          f"{row['read_window_ms_median']:>6.2f} ms/window (zarr) "
                          f"{row['chunk_reader_window_ms_median']:>6.2f} ms/window (ChunkReader)", file=sys.stderr, flush=True)
    print(format_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": {"cpus": os.cpu_count()}, "window": args.window, "rows": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


def format_table(rows: list[dict]) -> str:
    """Per layout: bytes/step and read time per game, write speed as the median over games."""
    games = sorted({r["game"] for r in rows})
    header = "| chunk | compressor | " + " | ".join(f"{g} B/step" for g in games) + " | " \
        + " | ".join(f"{g} disk B/step" for g in games) \
        + " | write steps/s | 50-step window ms (zarr) | 50-step window ms (ChunkReader) |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    layouts = sorted({(r["chunk_steps"], r["compressor"]) for r in rows})
    for chunk, compressor in layouts:
        mine = {r["game"]: r for r in rows if r["chunk_steps"] == chunk and r["compressor"] == compressor}
        sizes = " | ".join(f"{mine[g]['bytes_per_step']:.0f}" for g in games)
        disks = " | ".join(f"{mine[g]['disk_bytes_per_step']:.0f}" for g in games)
        write = statistics.median(mine[g]["write_steps_per_s"] for g in games)
        read = statistics.median(mine[g]["read_window_ms_median"] for g in games)
        fast = statistics.median(mine[g]["chunk_reader_window_ms_median"] for g in games)
        lines.append(f"| {chunk} | {compressor} | {sizes} | {disks} | {write:.0f} | {read:.2f} | {fast:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
