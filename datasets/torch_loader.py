"""The sampler behind `torch.utils.data.DataLoader` worker processes. Imports torch (only this module does).

    loader = make_loader(dataset, num_workers=2, batch_size=16, seq_len=50, seed=0)
    for batch in loader:        # dict of torch tensors, image uint8 (B, T, 64, 64, C)
        ...

Each item of `SequenceIterable` is already a whole batch, so the DataLoader runs with
`batch_size=None`. Every worker builds its own `SequenceSampler` after the fork (no thread pool or
open file crosses a process boundary) with a seed derived from `(seed, worker_id)` through
`numpy.random.SeedSequence`: workers draw independent, reproducible streams, so they do not repeat
each other's batches. With `num_workers=0` the loader yields exactly what
`SequenceSampler(dataset, seed=seed)` yields.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .dataset import Dataset
from .sampler import SequenceSampler


def worker_seed(seed: int, worker_id: int) -> int:
    """A seed for one DataLoader worker, independent of the other workers' and reproducible."""
    return int(np.random.SeedSequence([int(seed), int(worker_id)]).generate_state(1, np.uint64)[0])


def to_torch(
    batch: Mapping[str, np.ndarray], device: str | torch.device | None = None, pin_memory: bool = False
) -> dict[str, torch.Tensor]:
    """Numpy batch -> tensors without copies; images stay uint8 (the model normalises them).

    `pin_memory` pins host memory (only where CUDA is available) so a later `.to("cuda",
    non_blocking=True)` overlaps with compute; `device` moves the tensors there.
    """
    tensors = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in batch.items()}
    if pin_memory and torch.cuda.is_available():
        tensors = {key: value.pin_memory() for key, value in tensors.items()}
    if device is not None:
        tensors = {key: value.to(device, non_blocking=pin_memory) for key, value in tensors.items()}
    return tensors


class SequenceIterable(IterableDataset):
    """An endless stream of batches from `SequenceSampler(data, seed=worker_seed(seed, worker), **kwargs)`."""

    def __init__(self, data: Dataset, seed: int = 0, limit: int | None = None, **sampler_kwargs: Any):
        super().__init__()
        self.data = data
        self.seed = int(seed)
        self.limit = limit  # batches per worker (None: endless); useful for tests and benchmarks
        self.sampler_kwargs = sampler_kwargs

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        kwargs = dict(self.sampler_kwargs)
        if info is None:
            seed = self.seed
        else:
            seed = worker_seed(self.seed, info.id)
            kwargs.setdefault("threads", 1)  # parallelism comes from the worker processes
        sampler = SequenceSampler(self.data, seed=seed, **kwargs)
        try:
            count = 0
            while self.limit is None or count < self.limit:
                yield to_torch(sampler.sample())
                count += 1
        finally:
            sampler.close()


def make_loader(
    data: Dataset,
    num_workers: int = 2,
    seed: int = 0,
    pin_memory: bool = False,
    prefetch_factor: int = 2,
    limit: int | None = None,
    **sampler_kwargs: Any,
) -> DataLoader:
    """A DataLoader over `SequenceIterable`; sampler arguments (batch_size, seq_len, mode, ...) pass through."""
    return DataLoader(
        SequenceIterable(data, seed=seed, limit=limit, **sampler_kwargs),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory and torch.cuda.is_available(),
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        persistent_workers=False,
    )
