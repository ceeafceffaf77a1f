"""Device work as one CUDA graph: warm up, capture, replay (what the training and policy steps share).

`CapturedGraph(body, device, generator, capture=...)` runs `body()`, a function of static buffers
its owner fills before each call that returns a tuple of tensors:

- with `capture=False` (the CPU, and tests) eagerly, on every call;
- with `capture=True` (CUDA) eagerly for `WARMUP_STEPS` calls on a side stream (real steps that
  also create the optimisers' state, pick cuDNN algorithms and compile whatever torch.compile
  compiles), captured on the next call and replayed from then on. The outputs are cloned before
  they are returned (the next replay overwrites them).

The body must not synchronise with the host, and must draw its random numbers from `generator`,
which is registered with the graph so that each replay advances it as an eager call would.
Graphs that replay in a fixed order may share one memory pool (`GraphPool`); others get their own.
"""

from __future__ import annotations

from typing import Callable

import torch

WARMUP_STEPS = 3  # eager calls before the capture (PyTorch's recipe warms up on a side stream)


def configure_cuda_backends() -> None:
    """Process-wide CUDA settings for training: cuDNN picks the fastest convolution algorithm
    for the fixed shapes, and convolutions may use TF32. Matmuls stay in full float32: the output
    layers (`linear_fp32`: latent logits, reward, value, policy) are read as numbers and must not
    round (everything else runs in bf16 under autocast anyway)."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = True


class GraphPool:
    """A CUDA graph memory pool shared by several graphs, made at the first capture."""

    def __init__(self):
        self._handle = None

    def handle(self):
        if self._handle is None:
            self._handle = torch.cuda.graph_pool_handle()
        return self._handle


class CapturedGraph:
    def __init__(self, body: Callable[[], tuple[torch.Tensor, ...]], device: torch.device,
                 generator: torch.Generator, *, capture: bool, pool: GraphPool | None = None,
                 other_modes: str = "eager"):
        if capture and device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, the agent is on {device}")
        self.body, self.device, self.generator, self.capture, self.pool = body, device, generator, capture, pool
        self.other_modes = other_modes  # named in the error when this torch cannot capture
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: tuple[torch.Tensor, ...] = ()

    def __call__(self) -> tuple[torch.Tensor, ...]:
        self.calls += 1
        if not self.capture:
            return self.body()
        if self.graph is None and self.calls <= WARMUP_STEPS:
            return self._warmup()
        if self.graph is None:
            self._capture()
        self.graph.replay()
        return tuple(output.clone() for output in self.outputs)

    def _warmup(self) -> tuple[torch.Tensor, ...]:
        current = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            outputs = self.body()
        current.wait_stream(side)
        for output in outputs:
            output.record_stream(current)
        return outputs

    def _capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        if not hasattr(graph, "register_generator_state"):
            raise RuntimeError(f"torch {torch.__version__} cannot register a generator with a CUDA graph (torch 2.5 "
                               f"or newer can); set runtime.mode: {self.other_modes}")
        # The body samples from this generator: registered, each replay reads and advances its
        # Philox offset like an eager call (without it the capture would fail or repeat numbers).
        graph.register_generator_state(self.generator)
        pool = self.pool.handle() if self.pool is not None else None
        # thread_local: a DataLoader's pin-memory thread may allocate host memory meanwhile.
        with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
            self.outputs = self.body()
        self.graph = graph
