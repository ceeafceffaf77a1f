"""Datasets: sets of experience stores that the sampler sees as one list of episodes.

A *source* names stores in one of three ways (see docs/data.md):

- a store: a directory holding `zarr.json` (any name; `*.zarr` by convention);
- a directory of stores: searched recursively, in sorted path order, for directories holding
  `zarr.json`; the search never descends into a store, nor into hidden directories (a name that
  starts with `.`, e.g. the staging folder of an unfinished import). Zero-padded names
  (`iter0001/`) therefore come out oldest first;
- a manifest: a `.yaml`, `.yml` or `.json` file `{name: optional str, stores: [source, ...]}`
  whose entries are paths relative to the manifest (stores, directories, or other manifests).

`open_dataset(*sources)` combines any number of sources (and `Dataset` objects); a store named
twice is used once. `Replay(recent, capacity_steps, shared)` is the paper's replay: the most recent
`capacity_steps` steps of `recent` (whole episodes only) plus every episode of `shared`.

Every store of a dataset must have the same action space and image shape (a discrete and a
continuous store, or grayscale and RGB images, cannot be sampled together), and discrete stores the
same action set (action indices must mean the same thing). Version-1 and version-2 stores mix
freely when they agree (a version-1 store is discrete over its action set, with grayscale images).
A dataset has rewards only if every store has them: mixing in a reward-free store drops rewards
for the whole dataset (`has_reward` is False) rather than inventing zeros.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, Union

import numpy as np

from .durable import replace_files
from .schema import ActionSpace
from .store import IMAGE_SHAPE, ExperienceStore, StoreError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MANIFEST_KEYS = {"name", "stores"}
_MAX_MANIFEST_DEPTH = 16
MAX_MANIFEST_BYTES = 1 << 20  # about 10,000 paths


class DatasetError(ValueError):
    """A dataset source that cannot be used: not a store, directory of stores or manifest, or inconsistent."""


@dataclass(frozen=True)
class EpisodeTable:
    """One row per episode over all stores of a dataset: `store[i]` indexes `Dataset.stores`,
    `start[i]` is the episode's first step inside that store, `length[i]` its number of steps."""

    store: np.ndarray  # int32
    start: np.ndarray  # int64
    length: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.start)

    @property
    def total_steps(self) -> int:
        return int(self.length.sum())

    def take(self, rows: np.ndarray) -> "EpisodeTable":
        return EpisodeTable(self.store[rows], self.start[rows], self.length[rows])

    @staticmethod
    def concat(tables: Sequence["EpisodeTable"], store_offsets: Sequence[int]) -> "EpisodeTable":
        if not tables:
            return EpisodeTable(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64))
        return EpisodeTable(
            np.concatenate([t.store + off for t, off in zip(tables, store_offsets)]).astype(np.int32),
            np.concatenate([t.start for t in tables]).astype(np.int64),
            np.concatenate([t.length for t in tables]).astype(np.int64),
        )


@dataclass(eq=False)
class Dataset:
    """Stores plus the episodes of them that are used (all committed ones, unless a Replay trims them)."""

    stores: list[ExperienceStore]
    episodes: EpisodeTable
    name: str = "dataset"
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_consistent(self.stores)

    @classmethod
    def from_stores(cls, stores: Sequence[ExperienceStore], name: str = "dataset", sources=()) -> "Dataset":
        tables = []
        for index, store in enumerate(stores):
            index_ = store.episodes()
            tables.append(EpisodeTable(np.full(len(index_), index, np.int32), index_.starts, index_.lengths))
        return cls(list(stores), EpisodeTable.concat(tables, [0] * len(tables)), name, list(sources))

    # Pickling (DataLoader workers under spawn): send paths and the episode table, reopen the stores.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["stores"] = [str(store.path) for store in self.stores]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["stores"] = [_open_store(Path(path)) for path in state["stores"]]
        self.__dict__.update(state)

    # -- summary -----------------------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        return self.episodes.total_steps

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def has_reward(self) -> bool:
        return all(store.has_reward for store in self.stores)

    @property
    def action_set(self) -> dict[str, Any] | None:
        return self.stores[0].attrs.get("action_set") if self.stores else None

    @property
    def action_space(self) -> ActionSpace | None:
        """The stores' action space (`.to_dict()` is the contract's dict); None without stores."""
        return self.stores[0].action_space if self.stores else None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.stores[0].image_shape if self.stores else IMAGE_SHAPE

    @property
    def num_actions(self) -> int | None:
        """n of a discrete dataset; None for continuous actions (see `action_space`)."""
        space = self.action_space
        return space.n if space is not None and space.is_discrete else None

    @property
    def games(self) -> list[str]:
        return sorted({str(store.attrs.get("game")) for store in self.stores})

    def steps_per_store(self) -> dict[str, int]:
        counts = np.bincount(self.episodes.store, weights=self.episodes.length, minlength=len(self.stores))
        return {str(store.path): int(count) for store, count in zip(self.stores, counts)}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, stores={len(self.stores)}, episodes={self.num_episodes}, "
            f"steps={self.num_steps}, has_reward={self.has_reward})"
        )


class Replay(Dataset):
    """The most recent `capacity_steps` steps of `recent`, plus all of `shared`.

    Recency is the order of `recent` (oldest first; a directory lists its stores in sorted path
    order), then episode order inside each store. With `order="created"` the stores of `recent`
    are sorted by their `created` attribute instead. Whole episodes only: like the published
    replay, which drops the oldest episode while the total exceeds the capacity, the kept episodes
    sum to at most `capacity_steps`. Shared datasets do not count against the capacity.
    """

    def __init__(
        self,
        recent: Sequence[Source] | Source,
        capacity_steps: int,
        shared: Sequence[Source] | Source = (),
        *,
        order: str = "given",
        name: str = "replay",
    ):
        if capacity_steps < 0:
            raise DatasetError(f"replay capacity must be >= 0 steps, got {capacity_steps}")
        if order not in ("given", "created"):
            raise DatasetError(f"replay order must be 'given' or 'created', got {order!r}")
        recent_set = open_dataset(*_as_list(recent), name="recent") if _as_list(recent) else None
        shared_set = open_dataset(*_as_list(shared), name="shared") if _as_list(shared) else None
        parts: list[Dataset] = []
        self.recent_steps = 0
        if recent_set is not None:
            kept = _most_recent(recent_set, capacity_steps, order)
            self.recent_steps = kept.total_steps
            parts.append(Dataset(recent_set.stores, kept, "recent", recent_set.sources))
        if shared_set is not None:
            parts.append(shared_set)
        if not parts:
            raise DatasetError("a replay needs at least one recent or shared source")
        combined = _combine(parts, name, drop_unused=True)
        self.capacity_steps = int(capacity_steps)
        self.shared_steps = shared_set.num_steps if shared_set is not None else 0
        super().__init__(combined.stores, combined.episodes, name, combined.sources)


Source = Union[str, os.PathLike, Dataset]


def open_dataset(*sources: Source, name: str | None = None) -> Dataset:
    """Resolve and combine sources (store paths, directories of stores, manifests, Datasets)."""
    if not sources:
        raise DatasetError("no dataset source given")
    parts: list[Dataset] = []
    names: list[str] = []
    for source in sources:
        if isinstance(source, Dataset):
            parts.append(source)
            names.append(source.name)
            continue
        stores, manifest_name = resolve_stores(source)
        parts.append(Dataset.from_stores([_open_store(p) for p in stores], manifest_name or "", [str(source)]))
        names.append(manifest_name or Path(source).name)
    return _combine(parts, name or "+".join(names))


def resolve_stores(source: str | os.PathLike) -> tuple[list[Path], str | None]:
    """The store paths a source names (each once, in order), and the manifest's name if it is one.

    Each manifest and directory is resolved once per call, however often it is listed: seven
    manifests under 1 KB, each listing the next ten times, took 252 s at depth 5 when every
    listing was followed again (10**depth resolutions). A manifest that lists itself, directly or
    through others, is one error naming the cycle; a directory reached again through a symbolic
    link is searched once.
    """
    return _Resolution().resolve(Path(source), ())


class _Resolution:
    """The state of one `resolve_stores` call: what was resolved already."""

    def __init__(self) -> None:
        self.resolved: dict[Path, tuple[list[Path], str | None]] = {}

    def resolve(self, path: Path, chain: tuple[Path, ...]) -> tuple[list[Path], str | None]:
        if len(chain) > _MAX_MANIFEST_DEPTH:
            raise DatasetError(f"{path}: manifests nest more than {_MAX_MANIFEST_DEPTH} deep")
        if not path.exists():
            raise DatasetError(f"{path}: no such file or directory (expected a store, a directory of stores or a "
                               "manifest)")
        key = path.resolve()
        if key in chain:
            cycle = " -> ".join(str(p) for p in (*chain[chain.index(key):], key))
            raise DatasetError(f"{path}: manifests list each other in a cycle ({cycle})")
        if key not in self.resolved:
            self.resolved[key] = self._resolve_new(path, (*chain, key))
        return self.resolved[key]

    def _resolve_new(self, path: Path, chain: tuple[Path, ...]) -> tuple[list[Path], str | None]:
        if path.is_dir():
            if (path / "zarr.json").is_file():
                return [path], None
            found = sorted(_find_stores(path, set()))
            if not found:
                raise DatasetError(f"{path}: directory holds no experience store (no subdirectory with a zarr.json)")
            return found, None
        if path.suffix.lower() in MANIFEST_SUFFIXES:
            stores, name = _read_manifest(path, lambda target: self.resolve(target, chain)[0])
            unique: dict[Path, Path] = {}  # each store once, in the order first listed
            for store in stores:
                unique.setdefault(store.resolve(), store)
            return list(unique.values()), name
        raise DatasetError(f"{path}: not an experience store, a directory of stores, or a dataset manifest "
                           f"({', '.join(MANIFEST_SUFFIXES)})")


def write_manifest(path: str | os.PathLike, stores: Iterable[str | os.PathLike], name: str | None = None) -> Path:
    """Write a manifest listing `stores` relative to the manifest's directory (YAML or JSON by suffix)."""
    path = Path(path)
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise DatasetError(f"{path}: a manifest must end in one of {MANIFEST_SUFFIXES}")
    entries = [os.path.relpath(Path(s).resolve(), path.parent.resolve()) for s in stores]
    content: dict[str, Any] = ({"name": name} if name else {}) | {"stores": entries}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        text = json.dumps(content, indent=2) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(content, sort_keys=False)
    replace_files([], (path, text.encode()))  # whole or not at all, never written through a link at `path`
    return path


# -- internals ---------------------------------------------------------------------------------------


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike, Dataset)):
        return [value]
    return list(value)


def _open_store(path: Path) -> ExperienceStore:
    try:
        return ExperienceStore(path)
    except StoreError as error:
        raise DatasetError(str(error)) from None


def _find_stores(directory: Path, visited: set[tuple[int, int]]) -> Iterable[Path]:
    """Stores below `directory`; a folder reached again (a symbolic link to a parent) is skipped."""
    identity = os.stat(directory)
    if (identity.st_dev, identity.st_ino) in visited:
        return
    visited.add((identity.st_dev, identity.st_ino))
    for child in sorted(directory.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            if (child / "zarr.json").is_file():
                yield child
            else:
                yield from _find_stores(child, visited)


def _read_manifest(path: Path, resolve: Callable[[Path], list[Path]]) -> tuple[list[Path], str | None]:
    if not path.is_file():  # a FIFO or a device (a link to /dev/zero) would block or never end
        raise DatasetError(f"manifest {path}: is not a regular file")
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise DatasetError(f"manifest {path}: is over {MAX_MANIFEST_BYTES // 2**20} MiB; a manifest lists paths")
        text = data.decode()
        if path.suffix.lower() == ".json":
            content = json.loads(text)
        else:
            import yaml

            content = yaml.safe_load(text)
    except DatasetError:
        raise
    except Exception as error:  # a parse error deep inside yaml/json: report it in one line
        raise DatasetError(f"manifest {path}: cannot be parsed ({type(error).__name__}: {error})") from None
    if not isinstance(content, dict) or "stores" not in content:
        raise DatasetError(f"manifest {path}: expected a mapping with a 'stores' list (and an optional 'name')")
    unknown = sorted(set(content) - MANIFEST_KEYS)
    if unknown:
        raise DatasetError(f"manifest {path}: unknown keys {unknown}; allowed: {sorted(MANIFEST_KEYS)}")
    entries = content["stores"]
    if not isinstance(entries, list) or not entries or not all(isinstance(e, str) for e in entries):
        raise DatasetError(f"manifest {path}: 'stores' must be a non-empty list of paths")
    name = content.get("name")
    if name is not None and not isinstance(name, str):
        raise DatasetError(f"manifest {path}: 'name' must be a string")
    stores: list[Path] = []
    for entry in entries:
        target = Path(entry) if Path(entry).is_absolute() else path.parent / entry
        try:
            stores.extend(resolve(target))
        except DatasetError as error:
            raise DatasetError(f"manifest {path}: entry {entry!r}: {error}") from None
    return stores, name


def _combine(parts: Sequence[Dataset], name: str, drop_unused: bool = False) -> Dataset:
    """Concatenate datasets; a store that appears in several parts keeps the union of its episodes.

    `drop_unused` leaves out stores none of whose episodes are used (a replay's old stores).
    """
    stores: list[ExperienceStore] = []
    position: dict[Path, int] = {}
    rows: dict[int, dict[int, int]] = {}  # store index -> {start: length}
    sources: list[str] = []
    for part in parts:
        sources.extend(part.sources)
        local_to_global = []
        for store in part.stores:
            key = store.path.resolve()
            if key not in position:
                position[key] = len(stores)
                stores.append(store)
                rows[position[key]] = {}
            local_to_global.append(position[key])
        table = part.episodes
        for store_index, start, length in zip(table.store, table.start, table.length):
            rows[local_to_global[store_index]][int(start)] = int(length)
    if drop_unused:
        used = [index for index in range(len(stores)) if rows[index]]
        stores = [stores[index] for index in used]
        rows = {new: rows[old] for new, old in enumerate(used)}
    store_col, start_col, length_col = [], [], []
    for index in range(len(stores)):
        for start in sorted(rows[index]):
            store_col.append(index)
            start_col.append(start)
            length_col.append(rows[index][start])
    table = EpisodeTable(np.asarray(store_col, np.int32), np.asarray(start_col, np.int64), np.asarray(length_col, np.int64))
    return Dataset(stores, table, name, sources)


def _most_recent(dataset: Dataset, capacity_steps: int, order: str) -> EpisodeTable:
    table = dataset.episodes
    store_rank = np.arange(len(dataset.stores))
    if order == "created":
        created = [str(store.attrs.get("created", "")) for store in dataset.stores]
        store_rank = np.argsort(np.argsort(created, kind="stable"), kind="stable")
    chronological = np.lexsort((table.start, store_rank[table.store]))  # oldest first
    lengths = table.length[chronological][::-1]  # newest first
    keep = int(np.searchsorted(np.cumsum(lengths), capacity_steps, side="right"))
    kept = np.sort(chronological[::-1][:keep])
    return table.take(kept)


def _check_consistent(stores: Sequence[ExperienceStore]) -> None:
    if not stores:
        return
    first = stores[0]
    reference = first.attrs.get("action_set") or {}
    for store in stores[1:]:
        action_set = store.attrs.get("action_set") or {}
        if first.action_space.is_discrete and store.action_space.is_discrete \
                and action_set.get("ids") != reference.get("ids"):
            raise DatasetError(
                f"stores {first.path} and {store.path} use different action sets "
                f"({reference.get('ids')} vs {action_set.get('ids')}); their action indices cannot be mixed"
            )
        if store.action_space != first.action_space or store.image_shape != first.image_shape:
            raise DatasetError(
                f"stores {first.path} and {store.path} hold different kinds of data (action space "
                f"{first.action_space} vs {store.action_space}, image shape {list(first.image_shape)} vs "
                f"{list(store.image_shape)}); they cannot be sampled together"
            )
