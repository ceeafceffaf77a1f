"""The policy step as one CUDA graph per (batch size, mode): static buffers, capture, replay.

Acting runs one step of N environments at a time: an encoder, one RSSM step and the actor, a few
hundred small kernels for a handful of rows. Launched one by one from Python at batch 1 a GPU
made 275 steps/s (100 beside a training process); captured, the step is one launch.

`CapturedPolicyStep(agent, batch_size, mode)` owns static buffers for the observation, the
is_first flags and the carried state (posterior and last action). A call copies its inputs into
them and then, as `CapturedStep` for training steps:

- with `capture=False` (the CPU, and tests) runs the agent's policy body on the buffers eagerly;
- with `capture=True` (CUDA) runs it eagerly for `WARMUP_STEPS` calls on a side stream, captures
  it on the next call and replays the graph from then on.

The body is the code eager acting runs (`Agent._policy_body`), with no host synchronisation:
categorical actions are drawn by the exponential race that `torch.multinomial` itself uses for one
sample (the same numbers from the same generator state, without its host-side check), and the
agent's generator is registered with the graph so each replay advances it as an eager step would.
Outputs are cloned before they are returned (the next replay overwrites them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .captured_step import WARMUP_STEPS
from .rssm import RSSMState

if TYPE_CHECKING:
    from .agent import Agent, PolicyState


class CapturedPolicyStep:
    """`agent`'s policy step for `batch_size` environments in `mode` ("sample" or "greedy")."""

    def __init__(self, agent: "Agent", batch_size: int, mode: str, capture: bool = True):
        if capture and agent.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, the agent is on {agent.device}")
        self.agent, self.mode, self.capture = agent, mode, capture
        latent, last_action = agent.initial_policy_state(batch_size)
        self.image = torch.zeros((batch_size, *agent.image_shape), dtype=torch.uint8, device=agent.device)
        self.is_first = torch.zeros(batch_size, dtype=torch.bool, device=agent.device)
        self.latent = latent.map(torch.clone)
        self.last_action = last_action.clone()
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: tuple[torch.Tensor, ...] = ()

    def _body(self) -> tuple[torch.Tensor, ...]:
        action, post, next_action = self.agent._policy_body(self.image, self.is_first, self.latent,
                                                            self.last_action, self.mode)
        return (action, *post, next_action)

    def __call__(self, image: torch.Tensor, is_first: torch.Tensor,
                 state: "PolicyState") -> tuple[torch.Tensor, "PolicyState"]:
        latent, last_action = state
        for buffer, value in ((self.image, image), (self.is_first, is_first), (self.last_action, last_action),
                              *zip(self.latent, latent)):
            buffer.copy_(value, non_blocking=True)
        self.calls += 1
        if not self.capture:
            outputs = self._body()
        elif self.graph is None and self.calls <= WARMUP_STEPS:
            outputs = self._warmup()
        else:
            if self.graph is None:
                self._capture()
            self.graph.replay()
            outputs = tuple(output.clone() for output in self.outputs)
        action, deter, stoch, stats, next_action = outputs
        return action, (RSSMState(deter, stoch, stats), next_action)

    def _warmup(self) -> tuple[torch.Tensor, ...]:
        device = self.agent.device
        current = torch.cuda.current_stream(device)
        side = torch.cuda.Stream(device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            outputs = self._body()
        current.wait_stream(side)
        for output in outputs:
            output.record_stream(current)
        return outputs

    def _capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        if not hasattr(graph, "register_generator_state"):
            raise RuntimeError(f"torch {torch.__version__} cannot register a generator with a CUDA graph (torch 2.5 "
                               "or newer can); set runtime.mode: eager")
        graph.register_generator_state(self.agent.generator)  # each replay draws new numbers, as eager
        # A private memory pool: policy and training graphs replay in any order, so they share none.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.outputs = self._body()
        self.graph = graph


def sample_categorical(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row drawn from `probs` (..., K): argmax(probs / E) with E ~ Exp(1), the draw
    `torch.multinomial(probs, 1)` makes (same numbers, same generator advance) without the host
    synchronisation of its input check, so a CUDA graph can capture it."""
    race = torch.empty_like(probs).exponential_(1.0, generator=generator)
    return (probs / race).argmax(-1)
