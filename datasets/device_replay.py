"""The replay held whole on a torch device (a GPU), sampled there (`train.replay_device`).

    sampler = DeviceSequenceSampler(dataset, "cuda", batch_size=16, seq_len=50, seed=0)
    batch = sampler.sample()      # dict of tensors on the device, the Batches contract

The uint8 images of a 2M-step replay take about 8 GB, which fits beside the agent on a large GPU.
Loading decodes every image once (`SequenceSampler(cache="ram")`) and copies all arrays to the
device; after that a batch is B * T indices sent to the device and one gather per array, with no
decoding, no worker processes and no host-to-device image copies.

Selection is exactly `SequenceSampler`'s: windows are drawn by its `sample_windows` from the same
seeded generator, so a device sampler yields the same batches as a CPU sampler with the same seed
(tested). For a replay that grows during the stage (the online stage) the CPU samplers stay.
"""

from __future__ import annotations

import numpy as np
import torch

from .dataset import Dataset
from .sampler import SequenceSampler


class DeviceSequenceSampler:
    """`SequenceSampler`'s batches, gathered on `device` from arrays resident there."""

    def __init__(self, data: Dataset, device: str | torch.device, *, batch_size: int = 16, seq_len: int = 50,
                 mode: str = "episode", prioritize_ends: bool = True, seed: int = 0, progress: bool = False):
        self.device = torch.device(device)
        self.selection = SequenceSampler(data, batch_size, seq_len, mode, prioritize_ends, seed, cache="ram",
                                         threads=1, progress=progress)
        self.arrays = {key: torch.from_numpy(value).to(self.device) for key, value in self.selection.ram_arrays().items()}
        self.selection.release_images()  # the device holds them now
        self.has_reward = self.selection.has_reward

    @property
    def resident_bytes(self) -> int:
        return sum(value.numel() * value.element_size() for value in self.arrays.values())

    def sample(self) -> dict[str, torch.Tensor]:
        episode, offset = self.selection.sample_windows()
        flat = torch.from_numpy(self.selection.flat_indices(episode, offset)).to(self.device, non_blocking=True)
        batch = {key: value[flat] for key, value in self.arrays.items()}  # indexing copies
        if self.selection.action_dtype == np.int64:  # discrete: int32 indices in memory, int64 in batches
            batch["action"] = batch["action"].long()
        batch["is_first"][:, 0] = True  # every window starts from the zero state (as SequenceSampler)
        return batch

    def __iter__(self):
        while True:
            yield self.sample()

    def close(self) -> None:
        self.selection.close()
