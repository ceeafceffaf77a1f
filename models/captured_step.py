"""A whole training step as one CUDA graph: static input buffers, capture, replay.

An Atari update issues thousands of small kernels (50 observe steps of about 90 kernels, 15
imagination steps, three backward passes and optimiser steps); launched one by one from Python,
a GPU waits on the host. Captured once as a CUDA graph, the update is one launch.

`CapturedStep(step_body, example, device, generator)` owns static buffers shaped like `example`'s
batch. A call copies the batch into them and runs `step_body(buffers)` (the agent's step body)
through a `CapturedGraph` (models/captured_graph.py): eagerly with `capture=False` (the CPU, and
tests), else warmed up, captured once and replayed.

What a graph needs and the agent provides: no host synchronisation inside the body (metrics stay
tensors; clipping and weight decay are tensor ops), capturable fused Adam, random numbers from the
agent's generator registered with the graph (each replay advances it exactly as the eager step
does), and Python-side state kept out of the body (counters and the target critic's copy run after
each call, `Agent._after_step`). The body is the same code eager mode runs, so a graphed step
gives the eager step's losses up to rounding; tests check the static-buffer path on the CPU.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from .captured_graph import CapturedGraph, GraphPool
from .update_metrics import UpdateMetrics


class CapturedStep:
    """One kind of training step on static buffers; `step_body(buffers)` returns its metrics."""

    def __init__(self, step_body: Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]],
                 example: Mapping[str, torch.Tensor], device: torch.device, generator: torch.Generator, *,
                 capture: bool = True, pool: GraphPool | None = None):
        self.inputs = {key: torch.empty(value.shape, dtype=_buffer_dtype(key, value), device=device)
                       for key, value in example.items()}
        self.step_body = step_body
        self.names: tuple[str, ...] = ()
        self.graph = CapturedGraph(self._body, device, generator, capture=capture, pool=pool,
                                   other_modes="eager or compile")

    def matches(self, tensors: Mapping[str, torch.Tensor]) -> bool:
        return set(tensors) == set(self.inputs) and all(
            tuple(tensors[key].shape) == tuple(buffer.shape) for key, buffer in self.inputs.items())

    def _body(self) -> tuple[torch.Tensor]:
        metrics = self.step_body(self.inputs)
        self.names = tuple(metrics)
        return (UpdateMetrics.stack(metrics).values,)

    def __call__(self, tensors: Mapping[str, torch.Tensor]) -> UpdateMetrics:
        if not self.matches(tensors):
            raise ValueError(f"batch of shapes {_shapes(tensors)} does not fit the static buffers {_shapes(self.inputs)}")
        for key, buffer in self.inputs.items():
            buffer.copy_(tensors[key], non_blocking=True)
        (values,) = self.graph()
        return UpdateMetrics(self.names, values)


def _buffer_dtype(key: str, value: torch.Tensor) -> torch.dtype:
    """The Batches contract's dtype per key (a batch of another integer or float type is converted):
    int64 discrete or float32 continuous actions."""
    action = torch.float32 if value.dtype.is_floating_point else torch.int64
    return {"image": torch.uint8, "action": action, "reward": torch.float32}.get(key, torch.bool)


def _shapes(tensors: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in sorted(tensors.items())}
