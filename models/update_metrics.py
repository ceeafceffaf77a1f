"""The metrics of one update, kept on the device until someone reads them.

Reading a GPU tensor on the host waits for every queued kernel. The agent therefore returns its
metrics as one float32 vector on the device, wrapped in `UpdateMetrics`: a read-only mapping of
metric name to float that copies the vector to the host on the first read only. A training loop
that logs every `log_every` updates stacks the vectors of its window and copies them once
(`mean_metrics`), so the GPU never waits for the host between updates.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import torch


class UpdateMetrics(Mapping[str, float]):
    """Metric name -> float, backed by one device vector (`values`, float32, one entry per name)."""

    __slots__ = ("names", "values", "_floats")

    def __init__(self, names: Sequence[str], values: torch.Tensor):
        if values.shape != (len(names),):
            raise ValueError(f"{len(names)} metric names for a vector of shape {tuple(values.shape)}")
        self.names = tuple(names)
        self.values = values
        self._floats: dict[str, float] | None = None

    @classmethod
    def stack(cls, metrics: Mapping[str, torch.Tensor]) -> "UpdateMetrics":
        """From scalar tensors (any float dtype): one stack, no host synchronisation."""
        if not metrics:
            return cls((), torch.zeros(0))
        values = torch.stack([v.detach().float().reshape(()) for v in metrics.values()])
        return cls(list(metrics), values)

    def floats(self) -> dict[str, float]:
        """All values as floats: one device-to-host copy, made once."""
        if self._floats is None:
            self._floats = dict(zip(self.names, self.values.cpu().tolist()))
        return self._floats

    def __getitem__(self, key: str) -> float:
        return self.floats()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, key: object) -> bool:
        return key in self.names

    def __repr__(self) -> str:
        shown = self.floats() if self._floats is not None or self.values.device.type == "cpu" else "on " + str(self.values.device)
        return f"UpdateMetrics({shown})"


def mean_metrics(records: Sequence[Mapping[str, object]]) -> dict[str, float]:
    """The mean of every numeric metric over `records`, with one host copy per device and key set.

    Records may be `UpdateMetrics` (their vectors are stacked on the device first) or plain
    mappings of numbers or scalar tensors; booleans and non-numbers are skipped.
    """
    totals: dict[str, list[float]] = {}  # key -> [sum, count]

    def add(key: str, total: float, count: int) -> None:
        entry = totals.setdefault(key, [0.0, 0])
        entry[0] += total
        entry[1] += count

    groups: dict[tuple, list[torch.Tensor]] = {}
    for record in records:
        if isinstance(record, UpdateMetrics) and record._floats is None:
            groups.setdefault((record.names, record.values.device), []).append(record.values)
            continue
        for key, value in record.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
                value = value.item()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                add(key, float(value), 1)
    for (names, _), vectors in groups.items():
        for name, total in zip(names, torch.stack(vectors).double().sum(0).cpu().tolist()):
            add(name, total, len(vectors))
    return {key: total / count for key, (total, count) in totals.items()}
