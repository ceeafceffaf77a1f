"""Check whole experience stores: every chunk of the committed range, and what the data means.

`verify_store(path)` opens the store (schema, counters, every chunk file present), then reads every
chunk of every array in the committed range (crc32c checksum where the store has one, and a full
decode), and checks the meaning of the data:
- the flags delimit whole, contiguous episodes, as many as the counters say, and the committed
  range ends on an episode boundary;
- `is_terminal` only on an episode's last step; each episode's first step holds action 0 and
  reward 0 (a continuous store: the zero vector); actions lie inside the store's action space
  (indices below n; finite vectors inside [low, high]); rewards are finite.

Version-1 stores are verified as what they read as: discrete over their action set, grayscale.

It never raises for a bad store: it returns a `StoreReport` listing the problems (each naming the
array and chunk where it applies). `verify_sources(*sources)` does this for every store of any
dataset sources (stores, directories of stores, manifests). It checks stores, not how they are
combined: a folder may hold several games' stores, and `open_dataset` refuses to mix action sets
(or action spaces) when they are used together. `dreamer-pipeline verify` and `dreamer-pipeline inspect` use them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .store import ExperienceStore, StoreError

MAX_LISTED = 10  # problems listed per store; the count says how many more


class VerificationError(ValueError):
    """Some stores failed verification (the command's summary; each problem was reported)."""


@dataclass
class StoreReport:
    path: str
    steps: int = 0
    episodes: int = 0
    chunks: int = 0  # chunk files read and checked
    checksummed: bool = False
    problems: list[str] = field(default_factory=list)
    more_problems: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str) -> None:
        if len(self.problems) < MAX_LISTED:
            self.problems.append(problem)
        else:
            self.more_problems += 1

    def to_dict(self) -> dict:
        return {"path": self.path, "ok": self.ok, "steps": self.steps, "episodes": self.episodes,
                "chunks": self.chunks, "checksummed": self.checksummed, "problems": self.problems,
                "more_problems": self.more_problems}


def verify_store(path: str | os.PathLike, *, on_chunk: Callable[[int], None] | None = None) -> StoreReport:
    """Verify one store (see the module docstring); `on_chunk(n)` reports progress in chunks."""
    report = StoreReport(str(path))
    try:
        store = ExperienceStore(path)
    except StoreError as error:
        report.add(error.problem)
        return report
    report.steps, report.episodes, report.checksummed = store.num_steps, store.num_episodes, store.checksummed
    readable = {}
    for key, reader in store.readers.items():
        chunks = -(-store.num_steps // reader.chunk_steps)
        buffer = np.empty((reader.chunk_steps, *reader.step_shape), reader.dtype)
        good = True
        for index in range(chunks):
            try:
                reader.read_into(index, buffer)
            except StoreError as error:
                report.add(error.problem)
                good = False
            report.chunks += 1
            if on_chunk is not None:
                on_chunk(1)
        readable[key] = good
    if all(readable[key] for key in readable if key != "image"):
        _check_meaning(store, report)
    return report


def _check_meaning(store: ExperienceStore, report: StoreReport) -> None:
    try:
        index = store.episodes()  # whole, contiguous episodes; as many as the counter says
    except StoreError as error:
        report.add(error.problem)
        return
    if store.num_steps == 0:
        return
    starts, ends = index.starts, index.starts + index.lengths - 1
    if ends[-1] != store.num_steps - 1:
        report.add(f"the committed range ({store.num_steps} steps) does not end on an episode boundary")
    terminal = store.read("is_terminal")
    inside = np.ones(store.num_steps, bool)
    inside[ends] = False
    if terminal[inside].any():
        report.add(f"is_terminal is set inside an episode at step {int(np.flatnonzero(terminal & inside)[0])}")
    action = store.read("action")
    placeholder = action[starts].reshape(len(starts), -1).any(axis=1)  # indices (E,) or vectors (E, A)
    if placeholder.any():
        report.add(f"episode starting at step {int(starts[np.flatnonzero(placeholder)[0]])} holds an action "
                   "other than 0 on its first step")
    first = np.zeros(store.num_steps, bool)
    first[starts] = True
    problem = store.action_space.action_problem(action, first)
    if problem:
        report.add(f"action {problem} (action space {store.action_space})")
    if store.has_reward:
        reward = store.read("reward")
        bad = np.flatnonzero(~np.isfinite(reward))
        if len(bad):
            report.add(f"reward holds {len(bad)} non-finite values (NaN or inf), first at step {int(bad[0])}")
        elif reward[starts].any():
            report.add("an episode's first step holds a reward other than 0")


def verify_sources(*sources: str | os.PathLike, on_chunk: Callable[[int], None] | None = None
                   ) -> list[StoreReport]:
    """Verify every store of the given dataset sources (each store once)."""
    from .dataset import DatasetError, resolve_stores

    reports: list[StoreReport] = []
    seen: set[Path] = set()
    for source in sources:
        try:
            stores, _ = resolve_stores(source)
        except DatasetError as error:
            reports.append(StoreReport(str(source), problems=[str(error)]))
            continue
        for path in stores:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            reports.append(verify_store(path, on_chunk=on_chunk))
    return reports


def count_chunks(*sources: str | os.PathLike) -> int:
    """How many chunk files `verify_sources` will read (for a progress bar); 0 if unknown."""
    from .dataset import DatasetError, resolve_stores

    total = 0
    for source in sources:
        try:
            stores, _ = resolve_stores(source)
        except DatasetError:
            continue
        for path in stores:
            try:
                store = ExperienceStore(path)
            except StoreError:
                continue
            total += sum(-(-store.num_steps // reader.chunk_steps) for reader in store.readers.values())
    return total
