"""Adam with global-norm clipping and decoupled weight decay, as the published `common.Optimizer`.

One `step(loss)`: gradients of `loss` w.r.t. this optimiser's parameters only (so an actor loss that
backpropagates through the world model never touches the world model's gradients), clip to the
global norm, multiply every parameter by (1 - weight_decay), then the Adam update. Every part is
a tensor operation without host synchronisation, so a CUDA graph can capture a step (with
`capturable=True`); on CUDA Adam is the fused kernel, on the CPU the foreach one.

Fused Adam needs every gradient in its parameter's layout (CUDA's kernel refuses other strides).
`torch.autograd.grad` returns contiguous gradients, so for fused Adam a channels_last convolution
weight gets a copy of its gradient in the weight's strides first (`_in_layout_of`); the copy is
elementwise, so the update is the same. Foreach Adam (the CPU's) takes any strides, and there the
copy would cost about 0.2 s of a CPU update at the `atari` preset (9.5M elements), so it is skipped.
"""

from __future__ import annotations

from typing import Iterable

import torch

from .config import OptimConfig


class Optimizer:
    def __init__(self, params: Iterable[torch.nn.Parameter], config: OptimConfig, capturable: bool = False,
                 fused: bool | None = None):
        """`capturable`: keep Adam's step counts on the device so a CUDA graph can capture `step`.
        `fused`: the fused Adam kernel; None chooses it on CUDA (tests set it on the CPU)."""
        self.params = [p for p in params if p.requires_grad]
        self.config = config
        if fused is None:
            fused = bool(self.params) and self.params[0].device.type == "cuda"
        if fused:
            # One fused kernel per step on CUDA (the same update as foreach up to rounding).
            self.adam = torch.optim.Adam(self.params, lr=config.lr, eps=config.eps, fused=True, capturable=capturable)
        else:
            # foreach kernels: a handful of launches per step instead of one per tensor.
            self.adam = torch.optim.Adam(self.params, lr=config.lr, eps=config.eps, foreach=True)

    def step(self, loss: torch.Tensor, retain_graph: bool = False) -> torch.Tensor:
        """Apply one update from `loss`; returns the gradient norm before clipping (a tensor)."""
        grads = torch.autograd.grad(loss, self.params, allow_unused=True, retain_graph=retain_graph)
        fused = self.adam.defaults.get("fused")
        used = []
        for param, grad in zip(self.params, grads):
            param.grad = _in_layout_of(param, grad) if fused else grad
            if grad is not None:
                used.append(param)
        if used:
            norm = torch.nn.utils.clip_grad_norm_(used, self.config.clip or float("inf"), foreach=True)
        else:
            norm = torch.zeros((), device=loss.device)
        if self.config.weight_decay:
            with torch.no_grad():
                torch._foreach_mul_(self.params, 1.0 - self.config.weight_decay)
        self.adam.step()
        for param in self.params:
            param.grad = None
        return norm

    def state_dict(self) -> dict:
        return self.adam.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.adam.load_state_dict(state)
        for group in self.adam.param_groups:  # hyperparameters come from the current config
            group["lr"] = self.config.lr
            group["eps"] = self.config.eps


def _in_layout_of(param: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor | None:
    """`grad` with `param`'s strides: itself when they agree, else a copy in the parameter's layout."""
    if grad is None or grad.stride() == param.stride():
        return grad
    return torch.empty_like(param, dtype=grad.dtype).copy_(grad)
