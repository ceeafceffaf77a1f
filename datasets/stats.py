"""Dataset statistics computed with dask over the zarr stores (local threads or a dask.distributed cluster).

`dataset_stats(data, scheduler=None)` returns a JSON-ready dict:

- `steps`, `episodes`, `transitions` (steps minus episodes), `steps_per_store`;
- `episode_length` and `episode_return` summaries (min, mean, median, max, p5/p25/p75/p95);
  returns are the sum of an episode's rewards (its first step holds reward 0 by convention);
- `terminal_episodes` / `truncated_episodes` (how episodes ended);
- `actions`, over transitions: for a discrete action space a histogram of the indices; for a
  continuous one the mean, std, min and max of each dimension. Each episode's first step is
  excluded: its action 0 (the zero vector) is a placeholder by convention (no action led to the
  reset image), not a choice of the policy;
- `reward`: count, nonzero, sum, mean, min, max over transitions (first steps excluded likewise),
  or None for reward-free data (never zeros);
- `pixels`: mean and std of every image pixel, and of each channel (`channel_mean`, `channel_std`:
  one value for grayscale, three for RGB), from exact integer sums.

Only the committed steps of the episodes the dataset uses are read (a Replay's window, not its
stores' whole history). Arrays are opened by path on the workers (`StoreArray`: the chunk files
through `ChunkReader`, so checksums are verified and a missing or corrupt chunk is a `StoreError`
naming the store, the array and the chunk, never zeros), so the task graph ships to distributed
workers that see the same file system. `scheduler` is None or
"threads" (local thread pool), "synchronous", "processes", or the address of a dask.distributed
scheduler ("tcp://host:8786"); a `distributed.Client` also works.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .chunks import ChunkReader
from .dataset import Dataset, open_dataset


class SchedulerError(ValueError):
    """A `scheduler` that is neither a local scheduler's name nor a dask.distributed address."""


def check_scheduler(scheduler: Any) -> None:
    if scheduler is None or not isinstance(scheduler, str) or scheduler in LOCAL_SCHEDULERS:
        return
    if not _SCHEDULER_ADDRESS.fullmatch(scheduler):
        raise SchedulerError(f"dask scheduler {scheduler!r} is neither {', '.join(LOCAL_SCHEDULERS)} nor the address "
                             "of a dask.distributed scheduler ([tcp://]host:port, e.g. tcp://10.0.0.5:8786)")


class StoreArray:
    """One array of a store as a picklable, read-only array-like for `dask.array.from_array`.

    Reads go through `ChunkReader` (verified); each process opens the array on first use.
    """

    def __init__(self, store_path: str | os.PathLike, key: str, length: int, step_shape: tuple[int, ...], dtype):
        self.store_path, self.key = str(store_path), key
        self.shape = (int(length), *step_shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self._reader: ChunkReader | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_reader": None}

    def __getitem__(self, index) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        rows = index[0] if index else slice(None)
        if not isinstance(rows, slice):
            raise TypeError("StoreArray supports slices along time only")
        start, stop, step = rows.indices(self.shape[0])
        if self._reader is None:
            import zarr

            self._reader = ChunkReader(zarr.open_group(self.store_path, mode="r", zarr_format=3)[self.key],
                                       Path(self.store_path))
        values = self._reader.read_range(start, max(start, stop))[::step]
        return values[(slice(None), *index[1:])]

LOCAL_SCHEDULERS = ("threads", "synchronous", "sync", "processes")
# A dask.distributed address: [protocol://]host:port (or inproc://, a cluster in this process).
# Anything else made `distributed.Client` fail with a traceback, then hang 60 s at exit closing the half-made client.
_SCHEDULER_ADDRESS = re.compile(r"((tcp|tls|ucx|ws|wss)://)?[A-Za-z0-9._\-]+:[0-9]{1,5}|"
                                r"((tcp|tls|ucx|ws|wss)://)?\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}|inproc://[^\s]+")
PERCENTILES = (5, 25, 75, 95)


def dataset_stats(
    data: Dataset | str | os.PathLike, *, scheduler: Any = None, block_steps: int = 2048, progress: bool = False
) -> dict[str, Any]:
    """Statistics of a dataset (see the module docstring). `block_steps` sets the dask chunk length."""
    check_scheduler(scheduler)  # before any work
    import dask
    import dask.array as da

    data = data if isinstance(data, Dataset) else open_dataset(data)
    table = data.episodes
    has_reward = data.has_reward
    keys = ["image", "action", "is_first", "is_terminal", *(["reward"] if has_reward else [])]
    columns: dict[str, list] = {key: [] for key in keys}
    for store_index, (lo, hi) in _runs(table):
        store = data.stores[store_index]
        for key in keys:
            array = store.arrays[key]
            source = StoreArray(store.path, key, store.num_steps, tuple(array.shape[1:]), array.dtype)
            columns[key].append(da.from_array(source, chunks=(block_steps, *array.shape[1:]), lock=False,
                                              name=f"store-{key}-{abs(hash((str(store.path), store.num_steps)))}")[lo:hi])
    arrays = {key: da.concatenate(parts) for key, parts in columns.items()}
    image, action, first = arrays["image"], arrays["action"], arrays["is_first"]
    transition = ~first
    space = data.action_space
    lazy: dict[str, Any] = {
        "pixel_sum": image.sum(axis=(0, 1, 2), dtype=np.uint64),  # per channel
        "pixel_sumsq": (image.astype(np.uint16) ** 2).sum(axis=(0, 1, 2), dtype=np.uint64),  # 255**2 fits in uint16
        "terminal": arrays["is_terminal"].sum(),
    }
    if space is None or space.is_discrete:
        lazy["action_hist"] = da.bincount(action.astype(np.int64), weights=transition.astype(np.int64),
                                          minlength=data.num_actions or 0)
    else:
        vectors = da.where(transition[:, None], action.astype(np.float64), 0.0)
        lazy["action_sum"] = vectors.sum(axis=0)
        lazy["action_sumsq"] = (vectors**2).sum(axis=0)
        lazy["action_min"] = da.where(transition[:, None], action, np.inf).min(axis=0)
        lazy["action_max"] = da.where(transition[:, None], action, -np.inf).max(axis=0)
    ends = np.cumsum(table.length)
    if has_reward:
        reward = arrays["reward"].astype(np.float64)
        lazy["reward_nonzero"] = ((reward != 0) & transition).sum()
        lazy["reward_sum"] = reward.sum()
        lazy["reward_min"] = da.where(transition, reward, np.inf).min()
        lazy["reward_max"] = da.where(transition, reward, -np.inf).max()
        lazy["return_ends"] = da.cumsum(reward)[ends - 1] if len(ends) else da.zeros(0)
    values = _compute(lazy, scheduler, progress)

    steps, episodes = int(table.total_steps), len(table)
    transitions = steps - episodes
    channel_sum = np.asarray(values["pixel_sum"], np.float64)
    channel_sumsq = np.asarray(values["pixel_sumsq"], np.float64)
    per_channel = steps * int(np.prod(image.shape[1:3]))
    pixels = per_channel * len(channel_sum)
    mean = float(channel_sum.sum()) / pixels if pixels else float("nan")
    variance = float(channel_sumsq.sum()) / pixels - mean**2 if pixels else float("nan")
    channel_mean = channel_sum / per_channel if per_channel else np.full(len(channel_sum), np.nan)
    channel_var = channel_sumsq / per_channel - channel_mean**2 if per_channel else channel_mean
    result: dict[str, Any] = {
        "dataset": data.name,
        "games": data.games,
        "stores": len(data.stores),
        "steps": steps,
        "episodes": episodes,
        "transitions": transitions,
        "steps_per_store": data.steps_per_store(),
        "has_reward": has_reward,
        "terminal_episodes": int(values["terminal"]),
        "truncated_episodes": episodes - int(values["terminal"]),
        "episode_length": summarize(table.length),
        "episode_return": None,
        "actions": _action_stats(data, values, transitions),
        "reward": None,
        "pixels": {"mean": mean, "std": float(np.sqrt(max(variance, 0.0))), "channel_mean": channel_mean.tolist(),
                   "channel_std": np.sqrt(np.maximum(channel_var, 0.0)).tolist()},
    }
    if has_reward:
        cumulative = np.asarray(values["return_ends"], np.float64)
        result["episode_return"] = summarize(np.diff(cumulative, prepend=0.0))
        result["reward"] = {
            "count": transitions,
            "nonzero": int(values["reward_nonzero"]),
            "sum": float(values["reward_sum"]),
            "mean": float(values["reward_sum"]) / transitions if transitions else float("nan"),
            "min": float(values["reward_min"]) if transitions else float("nan"),
            "max": float(values["reward_max"]) if transitions else float("nan"),
        }
    return result


def _action_stats(data: Dataset, values: dict[str, Any], transitions: int) -> dict[str, Any]:
    space = data.action_space
    if space is None or space.is_discrete:
        return {
            "kind": "discrete",
            "num_actions": data.num_actions or 0,
            "meanings": list((data.action_set or {}).get("meanings", [])),
            "histogram": [int(round(c)) for c in np.asarray(values["action_hist"]).tolist()],
        }
    count = max(transitions, 0)
    mean = np.asarray(values["action_sum"]) / count if count else np.full(space.dims, np.nan)
    variance = np.asarray(values["action_sumsq"]) / count - mean**2 if count else mean
    empty = np.full(space.dims, np.nan)
    return {
        "kind": "continuous",
        "dims": space.dims,
        "low": list(space.low),
        "high": list(space.high),
        "count": count,
        "mean": mean.tolist(),
        "std": np.sqrt(np.maximum(variance, 0.0)).tolist(),
        "min": (np.asarray(values["action_min"], np.float64) if count else empty).tolist(),
        "max": (np.asarray(values["action_max"], np.float64) if count else empty).tolist(),
    }


def summarize(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {"count": 0}
    summary = {"count": int(values.size), "min": float(values.min()), "mean": float(values.mean()),
               "median": float(np.median(values)), "max": float(values.max())}
    summary.update({f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES})
    return summary


def format_stats(stats: dict[str, Any]) -> str:
    """A readable plain-text table of `dataset_stats` output."""
    lines = [
        f"dataset {stats['dataset']} ({', '.join(stats['games'])}): {stats['stores']} store(s), "
        f"{stats['episodes']} episodes, {stats['steps']} steps ({stats['transitions']} transitions)",
        f"episodes ended: {stats['terminal_episodes']} terminal, {stats['truncated_episodes']} truncated",
        "",
        f"{'':16}{'min':>10}{'p5':>10}{'p25':>10}{'median':>10}{'mean':>10}{'p75':>10}{'p95':>10}{'max':>10}",
    ]
    for label, key in (("episode length", "episode_length"), ("episode return", "episode_return")):
        summary = stats.get(key)
        if summary is None:
            lines.append(f"{label:16}{'(reward-free: no rewards stored)':>80}")
        elif summary.get("count", 0) == 0:
            lines.append(f"{label:16}{'(no episodes)':>80}")
        else:
            cells = "".join(f"{summary[k]:>10.4g}" for k in ("min", "p5", "p25", "median", "mean", "p75", "p95", "max"))
            lines.append(f"{label:16}{cells}")
    reward = stats.get("reward")
    lines.append("")
    if reward is None:
        lines.append("rewards: none stored (reward-free dataset)")
    else:
        lines.append(
            f"rewards over transitions: nonzero {reward['nonzero']}/{reward['count']}, sum {reward['sum']:.6g}, "
            f"mean {reward['mean']:.4g}, min {reward['min']:.4g}, max {reward['max']:.4g}"
        )
    pixels = stats["pixels"]
    channels = ""
    if len(pixels.get("channel_mean", [])) > 1:
        channels = "; per channel mean " + ", ".join(f"{v:.3f}" for v in pixels["channel_mean"]) + \
            ", std " + ", ".join(f"{v:.3f}" for v in pixels["channel_std"])
    lines.append(f"pixels: mean {pixels['mean']:.3f}, std {pixels['std']:.3f}{channels}")
    actions = stats["actions"]
    lines.append("")
    lines.append("actions (transitions only):")
    if actions.get("kind") == "continuous":
        lines.append(f"  {'dim':>5}{'mean':>10}{'std':>10}{'min':>10}{'max':>10}   bounds")
        for dim in range(actions["dims"]):
            cells = "".join(f"{actions[k][dim]:>10.4g}" for k in ("mean", "std", "min", "max"))
            lines.append(f"  {dim:>5}{cells}   [{actions['low'][dim]:.4g}, {actions['high'][dim]:.4g}]")
    else:
        total = max(1, sum(actions["histogram"]))
        for index, count in enumerate(actions["histogram"]):
            meaning = actions["meanings"][index] if index < len(actions["meanings"]) else ""
            lines.append(f"  {index:>3} {meaning:<16}{count:>12} {100 * count / total:6.2f}%")
    lines.append("")
    lines.append("steps per store:")
    for path, count in stats["steps_per_store"].items():
        lines.append(f"  {count:>12}  {path}")
    return "\n".join(lines)


def _runs(table) -> list[tuple[int, tuple[int, int]]]:
    """Merge the table's consecutive episodes into (store, (lo, hi)) step ranges, in table order."""
    runs: list[tuple[int, tuple[int, int]]] = []
    for store, start, length in zip(table.store.tolist(), table.start.tolist(), table.length.tolist()):
        if runs and runs[-1][0] == store and runs[-1][1][1] == start:
            runs[-1] = (store, (runs[-1][1][0], start + length))
        else:
            runs.append((store, (start, start + length)))
    return runs


def _compute(lazy: dict[str, Any], scheduler: Any, progress: bool) -> dict[str, Any]:
    import dask

    names = list(lazy)
    if scheduler is None or (isinstance(scheduler, str) and scheduler in LOCAL_SCHEDULERS):
        name = {"sync": "synchronous"}.get(scheduler or "threads", scheduler or "threads")
        if progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                values = dask.compute(*lazy.values(), scheduler=name)
        else:
            values = dask.compute(*lazy.values(), scheduler=name)
        return dict(zip(names, values))
    from distributed import Client

    if isinstance(scheduler, Client):
        return dict(zip(names, scheduler.compute(list(lazy.values()), sync=True)))
    with Client(scheduler, set_as_default=False) as client:
        return dict(zip(names, client.compute(list(lazy.values()), sync=True)))
