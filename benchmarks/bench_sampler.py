"""Training-batch throughput of the sequence sampler (B=16, T=50) against a numpy-in-RAM ceiling.

Data: a store of --steps agent steps whose frames are real Atari frames. A short random-policy
rollout of --game through the project's collector (the paper's protocol) provides real episodes
(cached as npz, the same cache as bench_store_layout.py); the benchmark store re-appends those
episodes in shuffled order until it holds --steps steps, so chunk compressibility is that of the
real game. Actions and rewards are synthetic (they are a few bytes per step and do not matter here).

Measured, each as the median over --repeats runs of --batches batches:
- numpy-ram: the ceiling, fancy-indexing 16 windows of 50 out of arrays preloaded in RAM;
- sampler (cache none, 2 threads / 1 thread): the default, reading chunk files on demand;
- sampler (cache lru): with the default 512 MiB decoded-chunk cache (the store may fit in it);
- sampler (cache ram): every image decoded into RAM first;
- DataLoader, 2 workers: `datasets.torch_loader.make_loader`, torch tensors out.
The store's files sit in the OS page cache after it is built, so "on disk" measures file reads
and decoding, not a cold disk.

With --integrity, a second store with the same episodes but no crc32c checksums is built, and the
sampler (cache none, 1 and 2 threads) and the bare chunk reader (`ChunkReader.read_into` over every
image chunk) alternate between the two: the ratios are the checksums' cost on the read path.

    python benchmarks/bench_sampler.py --steps 150000 --out benchmarks/bench_sampler.json
    python benchmarks/bench_sampler.py --steps 50000 --integrity --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--game", default="pong")
    parser.add_argument("--real-steps", type=int, default=20_000, help="steps of real random-policy play collected")
    parser.add_argument("--steps", type=int, default=150_000, help="steps in the benchmark store")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--batches", type=int, default=100, help="batches per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip", nargs="*", default=[], help="variants to skip (e.g. dataloader lru)")
    parser.add_argument("--integrity", action="store_true", help="measure the cost of crc32c checksums on reads")
    parser.add_argument("--frames-cache", type=Path, default=Path(tempfile.gettempdir()) / "dreamer_bench_frames")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dreamer_bench_sampler")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("bench_sampler.json"))
    return parser.parse_args(argv)


def real_episodes(game: str, steps: int, cache_dir: Path) -> list[np.ndarray]:
    """Image arrays of whole random-policy episodes of `game` (cached npz: image, boundaries)."""
    cache = cache_dir / f"{game}-{steps}.npz"
    if not cache.exists():
        from dreamer_pipeline.datasets.store import ExperienceStore
        from dreamer_pipeline.pipelines.acting.collector import collect

        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            collect(Path(tmp) / "frames.zarr", game, steps, num_envs=2, seed=0, progress=True)
            store = ExperienceStore(Path(tmp) / "frames.zarr")
            np.savez(cache, image=store.read("image"), boundaries=store.episodes().starts[1:])
    data = np.load(cache)
    return np.split(data["image"], data["boundaries"])


def build_store(path: Path, episodes: list[np.ndarray], steps: int, game: str, checksum: bool = True) -> Path:
    from tqdm.auto import tqdm

    from dreamer_pipeline.datasets.store import ExperienceStore, StoreWriter

    if path.exists():
        try:
            if ExperienceStore(path).num_steps >= steps:
                return path
        except ValueError:
            pass
        import shutil

        shutil.rmtree(path)
    rng = np.random.default_rng(0)
    attrs = {"game": game, "action_set": {"full": False, "ids": list(range(6)), "meanings": []},
             "policy": {"kind": "random"}, "env": {}, "seed": 0, "writer_id": "bench_sampler"}
    writer = StoreWriter.open(path, attrs, checksum=checksum, fsync=False)  # scratch data
    bar = tqdm(total=steps, desc="building store", unit="step")
    while writer.committed_steps < steps:
        image = episodes[int(rng.integers(len(episodes)))]
        length = len(image)
        flags = np.zeros(length, bool)
        last = flags.copy()
        last[-1] = True
        first = flags.copy()
        first[0] = True
        action = rng.integers(0, 6, length).astype(np.int32)
        action[0] = 0
        reward = (rng.random(length) < 0.02).astype(np.float32)
        reward[0] = 0
        writer.append_episode({"image": image, "action": action, "reward": reward, "is_first": first,
                               "is_last": last, "is_terminal": last.copy()})
        bar.update(length)
    bar.close()
    writer.close()
    return path


def timed_interleaved(iterators: dict, batches: int, repeats: int) -> tuple[dict, dict]:
    """batches/s per variant; the variants take turns within each repeat, so they share the same
    background load (this machine is shared) and their ratios are fair even when the absolute
    numbers are noisy. Also batches per CPU-second of this process (`time.process_time`), which
    other processes' load barely changes: what one idle core would do (not counted for DataLoader
    workers, whose CPU time is spent in other processes)."""
    rates: dict[str, list[float]] = {name: [] for name in iterators}
    cpu_rates: dict[str, list[float]] = {name: [] for name in iterators}
    for name, iterator in iterators.items():  # warm-up: worker start, first reads, LRU fill
        for _ in range(batches // 4 + 1):
            next(iterator)
    names = list(iterators)
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[: repeat % len(names)]:  # rotate who goes first
            iterator = iterators[name]
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(batches):
                next(iterator)
            rates[name].append(batches / (time.perf_counter() - start))
            cpu_rates[name].append(batches / max(time.process_time() - cpu_start, 1e-9))
            if "DataLoader" in name:
                time.sleep(1.0)  # its workers refill their queue now, not during the next variant
    return rates, cpu_rates


def numpy_ceiling(data, batch_size: int, seq_len: int):
    """Windows fancy-indexed from arrays already in RAM: the fastest any sampler can be."""
    from dreamer_pipeline.datasets.sampler import SequenceSampler

    reference = SequenceSampler(data, batch_size, seq_len, cache="ram")  # decode once; reuse its selection
    images, small = reference._images_in_ram, reference._small

    def batches():
        steps = np.arange(seq_len)
        while True:
            episode, offset = reference.sample_windows()
            flat = (reference._flat_start[episode] + offset)[:, None] + steps
            yield {"image": images[flat], **{key: value[flat] for key, value in small.items()}}

    return batches


def chunk_reads_per_second(stores: dict[str, Path], repeats: int) -> dict[str, list[float]]:
    """`ChunkReader.read_into` over every image chunk of each store, alternating stores per repeat."""
    from dreamer_pipeline.datasets.chunks import ChunkReader
    from dreamer_pipeline.datasets.store import ExperienceStore

    readers = {name: ChunkReader(ExperienceStore(path).arrays["image"], path) for name, path in stores.items()}
    rates: dict[str, list[float]] = {name: [] for name in readers}  # chunks per CPU-second of this process
    for repeat in range(repeats + 1):  # the first pass warms the page cache
        for name, reader in (list(readers.items())[::-1] if repeat % 2 else list(readers.items())):
            buffer = np.empty((reader.chunk_steps, *reader.step_shape), reader.dtype)
            start = time.process_time()
            for index in range(reader.num_chunks):
                reader.read_into(index, buffer)
            if repeat:
                rates[name].append(reader.num_chunks / max(time.process_time() - start, 1e-9))
    return rates


def integrity_main(args, episodes) -> dict:
    from dreamer_pipeline.datasets.dataset import open_dataset
    from dreamer_pipeline.datasets.sampler import SequenceSampler

    stores = {checksum: build_store(args.workdir / f"{args.game}-{args.steps}-crc{int(checksum)}.zarr", episodes,
                                    args.steps, args.game, checksum=checksum) for checksum in (True, False)}
    B, T = args.batch_size, args.seq_len
    iterators = {}
    for threads in (1, 2):
        for checksum in (False, True):
            name = f"sampler none, {threads} thread(s), {'crc32c' if checksum else 'no checksums'}"
            iterators[name] = iter(SequenceSampler(open_dataset(stores[checksum]), B, T, cache="none", threads=threads))
    rates, cpu_rates = timed_interleaved(iterators, args.batches, args.repeats)
    chunks = chunk_reads_per_second({"crc32c": stores[True], "no checksums": stores[False]}, args.repeats)
    load = os.getloadavg()[0]
    print(f"\nload {load:.1f}; {args.steps} steps of {args.game}; medians of {args.repeats} alternating runs")
    print(f"{'variant':<40} {'per s':>8} {'ratio crc32c/none':>18} {'per CPU-s':>10} {'CPU ratio':>10}")
    results = {}
    paired = lambda a, b: statistics.median(x / y for x, y in zip(a, b))  # noqa: E731
    for threads in (1, 2):
        plain, checked = (f"sampler none, {threads} thread(s), {kind}" for kind in ("no checksums", "crc32c"))
        entry = {"batches_per_s_crc32c": statistics.median(rates[checked]),
                 "batches_per_s_plain": statistics.median(rates[plain]), "ratio": paired(rates[checked], rates[plain]),
                 "batches_per_cpu_s_crc32c": statistics.median(cpu_rates[checked]),
                 "cpu_ratio": paired(cpu_rates[checked], cpu_rates[plain])}
        results[f"sampler {threads} thread(s)"] = entry
        print(f"{f'sampler batches, {threads} thread(s)':<40} {entry['batches_per_s_crc32c']:>8.1f} "
              f"{entry['ratio']:>18.3f} {entry['batches_per_cpu_s_crc32c']:>10.1f} {entry['cpu_ratio']:>10.3f}")
    ratio = paired(chunks["crc32c"], chunks["no checksums"])
    results["chunk reader"] = {"chunks_per_cpu_s_crc32c": statistics.median(chunks["crc32c"]),
                               "chunks_per_cpu_s_plain": statistics.median(chunks["no checksums"]), "cpu_ratio": ratio}
    print(f"{'ChunkReader.read_into, image chunks':<40} {'':>8} {'':>18} {statistics.median(chunks['crc32c']):>10.0f} "
          f"{ratio:>10.3f}")
    report = {"game": args.game, "steps": args.steps, "load": load, "integrity": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.integrity:
        return integrity_main(args, real_episodes(args.game, args.real_steps, args.frames_cache))
    from dreamer_pipeline.datasets.dataset import open_dataset
    from dreamer_pipeline.datasets.sampler import SequenceSampler

    episodes = real_episodes(args.game, args.real_steps, args.frames_cache)
    store = build_store(args.workdir / f"{args.game}-{args.steps}.zarr", episodes, args.steps, args.game)
    data = open_dataset(store)
    B, T = args.batch_size, args.seq_len
    disk = sum(f.stat().st_size for f in (store / "image").rglob("*") if f.is_file())
    print(f"store {store}: {data.num_steps} steps, {data.num_episodes} episodes, "
          f"images {disk / data.num_steps:.0f} B/step on disk ({4096 * data.num_steps / disk:.0f}x compression)")

    variants = {
        "numpy-ram (ceiling)": lambda: numpy_ceiling(data, B, T)(),
        "sampler none, 2 threads": lambda: iter(SequenceSampler(data, B, T, cache="none", threads=2)),
        "sampler none, 1 thread": lambda: iter(SequenceSampler(data, B, T, cache="none", threads=1)),
        "sampler lru 512 MiB": lambda: iter(SequenceSampler(data, B, T, cache="lru")),
        "sampler ram": lambda: iter(SequenceSampler(data, B, T, cache="ram")),
        "DataLoader 2 workers": lambda: iter(__import__("dreamer_pipeline.datasets.torch_loader", fromlist=["x"])
                                             .make_loader(data, num_workers=2, batch_size=B, seq_len=T)),
    }
    iterators = {}
    for name, make in variants.items():
        if any(skip.lower() in name.lower() for skip in args.skip):
            continue
        start = time.perf_counter()
        iterators[name] = make()
        print(f"  {name:<30} built in {time.perf_counter() - start:.2f} s", flush=True)
    rates, cpu_rates = timed_interleaved(iterators, args.batches, args.repeats)
    results = {
        name: {"median_batches_per_s": statistics.median(r), "runs": r,
               "median_batches_per_cpu_s": None if "DataLoader" in name else statistics.median(cpu_rates[name])}
        for name, r in rates.items()
    }
    ceiling = results["numpy-ram (ceiling)"]["median_batches_per_s"]
    cpu_ceiling = results["numpy-ram (ceiling)"]["median_batches_per_cpu_s"]
    print(f"\n{'variant':<30} {'batches/s':>10} {'steps/s':>10} {'ratio to RAM':>13} {'batches/cpu-s':>14} {'ratio':>6}")
    for name, result in results.items():
        rate, cpu = result["median_batches_per_s"], result["median_batches_per_cpu_s"]
        result["ratio_to_ceiling"] = rate / ceiling
        result["cpu_ratio_to_ceiling"] = None if cpu is None else cpu / cpu_ceiling
        cpu_text = f"{cpu:>14.1f} {cpu / cpu_ceiling:>6.2f}" if cpu is not None else f"{'n/a':>14} {'':>6}"
        print(f"{name:<30} {rate:>10.1f} {rate * B * T:>10.0f} {rate / ceiling:>13.2f} {cpu_text}")
    report = {"game": args.game, "store_steps": data.num_steps, "image_bytes_per_step_on_disk": disk / data.num_steps,
              "batch_size": B, "seq_len": T, "batches_per_run": args.batches, "repeats": args.repeats,
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return report


if __name__ == "__main__":
    main()
