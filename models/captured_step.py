"""A whole training step as one CUDA graph: static input buffers, capture, replay.

An Atari update issues thousands of small kernels (50 observe steps of about 90 kernels, 15
imagination steps, three backward passes and optimiser steps); launched one by one from Python,
a GPU waits on the host. Captured once as a CUDA graph, the update is one launch.

`CapturedStep(agent, kind, example)` owns static buffers shaped like `example`'s batch. A call
copies the batch into them and then:

- with `capture=False` (the CPU, and tests) runs the agent's step body on the buffers eagerly;
- with `capture=True` (CUDA) runs the body eagerly for `WARMUP_STEPS` calls on a side stream (real
  updates that also create the optimisers' state, pick cuDNN algorithms and compile whatever
  torch.compile compiles), captures it on the next call and replays the graph from then on.

What a graph needs and the agent provides: no host synchronisation inside the body (metrics stay
tensors; clipping and weight decay are tensor ops), capturable fused Adam, random numbers from the
agent's generator registered with the graph (each replay advances it exactly as the eager step
does), and Python-side state kept out of the body (counters and the target critic's copy run after
each call, `Agent._after_step`). The body is the same code eager mode runs, so a graphed step
gives the eager step's losses up to rounding; tests check the static-buffer path on the CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import torch

from .update_metrics import UpdateMetrics

if TYPE_CHECKING:
    from .agent import Agent

STEP_KINDS = ("update", "world_model", "behaviour")
WARMUP_STEPS = 3  # eager calls before the capture (PyTorch's recipe warms up on a side stream)


def configure_cuda_backends() -> None:
    """Process-wide CUDA settings for training: cuDNN picks the fastest convolution algorithm
    for the fixed shapes, and convolutions may use TF32. Matmuls stay in full float32: the output
    layers (`linear_fp32`: latent logits, reward, value, policy) are read as numbers and must not
    round (everything else runs in bf16 under autocast anyway)."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = True


class CapturedStep:
    """One kind of training step ("update", "world_model", "behaviour") of `agent` on static buffers."""

    def __init__(self, agent: "Agent", kind: str, example: Mapping[str, torch.Tensor], capture: bool = True):
        if kind not in STEP_KINDS:
            raise ValueError(f"kind must be one of {STEP_KINDS}, got {kind!r}")
        if capture and agent.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, the agent is on {agent.device}")
        self.agent, self.kind, self.capture = agent, kind, capture
        self.inputs = {key: torch.empty(value.shape, dtype=_buffer_dtype(key, value), device=agent.device)
                       for key, value in example.items()}
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.output: torch.Tensor | None = None
        self.names: tuple[str, ...] = ()

    def matches(self, tensors: Mapping[str, torch.Tensor]) -> bool:
        return set(tensors) == set(self.inputs) and all(
            tuple(tensors[key].shape) == tuple(buffer.shape) for key, buffer in self.inputs.items())

    def _body(self) -> torch.Tensor:
        metrics = self.agent._step_body(self.kind, self.agent.device_batch(self.inputs))
        self.names = tuple(metrics)
        return UpdateMetrics.stack(metrics).values

    def __call__(self, tensors: Mapping[str, torch.Tensor]) -> UpdateMetrics:
        if not self.matches(tensors):
            raise ValueError(f"batch of shapes {_shapes(tensors)} does not fit the static buffers {_shapes(self.inputs)}")
        for key, buffer in self.inputs.items():
            buffer.copy_(tensors[key], non_blocking=True)
        self.calls += 1
        if not self.capture:
            values = self._body()
        elif self.graph is None and self.calls <= WARMUP_STEPS:
            values = self._warmup()
        else:
            if self.graph is None:
                self._capture()
            self.graph.replay()
            values = self.output.clone()  # the next replay overwrites the output
        return UpdateMetrics(self.names, values)

    def _warmup(self) -> torch.Tensor:
        current = torch.cuda.current_stream(self.agent.device)
        side = torch.cuda.Stream(self.agent.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            values = self._body()
        current.wait_stream(side)
        values.record_stream(current)
        return values

    def _capture(self) -> None:
        agent = self.agent
        if agent._graph_pool is None:
            agent._graph_pool = torch.cuda.graph_pool_handle()  # the agent's graphs share memory
        graph = torch.cuda.CUDAGraph()
        if not hasattr(graph, "register_generator_state"):
            raise RuntimeError(f"torch {torch.__version__} cannot register a generator with a CUDA graph (torch 2.5 "
                               "or newer can); set runtime.mode: eager or compile")
        # The agent samples from its own generator: registered, each replay reads and advances its
        # Philox offset like the eager step (without it the capture would fail or repeat numbers).
        graph.register_generator_state(agent.generator)
        # thread_local: a DataLoader's pin-memory thread may allocate host memory meanwhile.
        with torch.cuda.graph(graph, pool=agent._graph_pool, capture_error_mode="thread_local"):
            self.output = self._body()
        self.graph = graph


def _buffer_dtype(key: str, value: torch.Tensor) -> torch.dtype:
    """The Batches contract's dtype per key (a batch of another integer or float type is converted):
    int64 discrete or float32 continuous actions."""
    action = torch.float32 if value.dtype.is_floating_point else torch.int64
    return {"image": torch.uint8, "action": action, "reward": torch.float32}.get(key, torch.bool)


def _shapes(tensors: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in sorted(tensors.items())}
