"""The policy step as one CUDA graph per (batch size, mode): static buffers, capture, replay.

Acting runs one step of N environments at a time: an encoder, one RSSM step and the actor, a few
hundred small kernels for a handful of rows. Launched one by one from Python at batch 1 a GPU
made 275 steps/s (100 beside a training process); captured, the step is one launch.

`CapturedPolicyStep(policy_body, initial_state, image_shape, device, generator)` owns static
buffers for the observation, the is_first flags and the carried state (posterior and last action).
A call copies its inputs into them and runs the body through a `CapturedGraph`
(models/captured_graph.py), as `CapturedStep` does for training steps.

The body is the code eager acting runs (`Agent._policy_body`), with no host synchronisation:
categorical actions are drawn by the exponential race that `torch.multinomial` itself uses for one
sample (the same numbers from the same generator state, without its host-side check), and the
agent's generator is registered with the graph so each replay advances it as an eager step would.
"""

from __future__ import annotations

from typing import Callable

import torch

from .captured_graph import CapturedGraph
from .rssm import RSSMState

PolicyState = tuple[RSSMState, torch.Tensor]  # (posterior, last action as the model's input)
PolicyBody = Callable[[torch.Tensor, torch.Tensor, RSSMState, torch.Tensor],
                      tuple[torch.Tensor, RSSMState, torch.Tensor]]


class CapturedPolicyStep:
    """A policy step (`policy_body(image, is_first, latent, last_action)` -> (action, posterior,
    next action input)) for as many environments as `initial_state` has rows."""

    def __init__(self, policy_body: PolicyBody, initial_state: PolicyState, image_shape: tuple[int, ...],
                 device: torch.device, generator: torch.Generator, *, capture: bool = True):
        latent, last_action = initial_state
        batch_size = last_action.shape[0]
        self.policy_body = policy_body
        self.image = torch.zeros((batch_size, *image_shape), dtype=torch.uint8, device=device)
        self.is_first = torch.zeros(batch_size, dtype=torch.bool, device=device)
        self.latent = latent.map(torch.clone)
        self.last_action = last_action.clone()
        # A private memory pool: policy and training graphs replay in any order, so they share none.
        self.graph = CapturedGraph(self._body, device, generator, capture=capture)

    def _body(self) -> tuple[torch.Tensor, ...]:
        action, post, next_action = self.policy_body(self.image, self.is_first, self.latent, self.last_action)
        return (action, *post, next_action)

    def __call__(self, image: torch.Tensor, is_first: torch.Tensor,
                 state: PolicyState) -> tuple[torch.Tensor, PolicyState]:
        latent, last_action = state
        for buffer, value in ((self.image, image), (self.is_first, is_first), (self.last_action, last_action),
                              *zip(self.latent, latent)):
            buffer.copy_(value, non_blocking=True)
        action, deter, stoch, stats, next_action = self.graph()
        return action, (RSSMState(deter, stoch, stats), next_action)


def sample_categorical(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row drawn from `probs` (..., K): argmax(probs / E) with E ~ Exp(1), the draw
    `torch.multinomial(probs, 1)` makes (same numbers, same generator advance) without the host
    synchronisation of its input check, so a CUDA graph can capture it."""
    race = torch.empty_like(probs).exponential_(1.0, generator=generator)
    return (probs / race).argmax(-1)
