"""How a scalar head (the reward head, the critic) is read: a unit-variance Gaussian, or DreamerV3's
symlog two-hot categorical ("Mastering Diverse Domains through World Models", Hafner et al. 2023,
Section 3 "Robust predictions"; published `danijar/dreamerv3`, `jaxutils.TwoHotDist`, heads with
`dist: symlog_disc` and `outscale: 0.0`).

    gaussian        one output unit, the mean of a unit-variance Gaussian:
                    prediction = raw,  nll = 0.5 (raw - y)^2   (the constant 0.5 log 2 pi dropped)
    symlog_twohot   255 logits over bins b_0 .. b_254 equally spaced in symlog space over [-20, 20]:
                    prediction = symexp(sum_k softmax(logits)_k b_k)
                    nll = -sum_k twohot(symlog(y))_k log_softmax(logits)_k

symlog(x) = sign(x) log(1 + |x|), symexp its inverse. twohot(s) puts weight on the two bins around s,
in proportion to its closeness to each (all of it on the end bin beyond the range). A two-hot head's
output layer starts at zero (DreamerV3's `outscale: 0.0` for the reward head and the critic), so
its first predictions are exactly 0. The classification loss has a gradient on the logits of
softmax - twohot whatever the size of the reward, where the Gaussian's is the error in reward units.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from .config import MLPConfig
from .networks import MLP

ScalarDistKind = Literal["gaussian", "symlog_twohot"]

TWOHOT_BINS = 255
TWOHOT_LIMIT = 20.0  # bins cover symlog values in [-20, 20]: rewards and returns up to ~5e8


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


def twohot_bins(device: torch.device | str | None = None) -> torch.Tensor:
    """The 255 bin centres in symlog space, float32, exactly antisymmetric (b_k = -b_{254-k}, b_127 = 0):
    linspace(-20, 20, 255) up to rounding. Made on the device from constants (no host copy)."""
    half = torch.linspace(0.0, TWOHOT_LIMIT, TWOHOT_BINS // 2 + 1, device=device)
    return torch.cat([-half[1:].flip(0), half])


def twohot(value: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """value (...) in bin space -> weights (..., K) on the two bins around each value, summing to 1.

    For b_i <= value < b_{i+1}: weight (b_{i+1} - value) / (b_{i+1} - b_i) on b_i and the rest on
    b_{i+1}; a value on a bin puts all weight there, one beyond the ends all on the end bin."""
    count = bins.shape[0]
    value = value.float()
    below = (torch.bucketize(value, bins, right=True) - 1).clamp(0, count - 1)  # last bin <= value
    above = (below + 1).clamp(max=count - 1)
    low, high = bins[below], bins[above]
    inside = (above != below) & (value > low)
    # below == above (beyond an end) divides 0 by the clamp in the branch torch.where discards
    fraction = torch.where(inside, (value - low) / (high - low).clamp(min=1e-12), torch.zeros_like(value))
    weights = torch.zeros(*value.shape, count, device=value.device)
    weights.scatter_add_(-1, below.unsqueeze(-1), (1.0 - fraction).unsqueeze(-1))
    weights.scatter_add_(-1, above.unsqueeze(-1), fraction.unsqueeze(-1))
    return weights


def twohot_mean(logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """sum_k softmax(logits)_k b_k, summed from the middle bin outwards in antisymmetric pairs so that
    uniform probabilities give exactly 0 (a left-to-right sum leaves rounding residue; DreamerV3
    `TwoHotDist.mean` does the same)."""
    probs = torch.softmax(logits.float(), -1)
    middle = bins.shape[0] // 2
    pairs = (probs[..., :middle] * bins[:middle]).flip(-1) + probs[..., middle + 1:] * bins[middle + 1:]
    return probs[..., middle] * bins[middle] + pairs.sum(-1)


class ScalarDist:
    """One of the two readings of a scalar head (`gaussian` or `symlog_twohot`, see the module doc)."""

    def __init__(self, kind: ScalarDistKind):
        if kind not in ("gaussian", "symlog_twohot"):
            raise ValueError(f"a scalar head's distribution is 'gaussian' or 'symlog_twohot', got {kind!r}")
        self.kind = kind
        self.twohot = kind == "symlog_twohot"

    @property
    def size(self) -> int:
        """Output units of the head."""
        return TWOHOT_BINS if self.twohot else 1

    def head(self, in_size: int, config: MLPConfig) -> MLP:
        """The head's MLP; a two-hot head's output layer starts at zero (predictions 0)."""
        mlp = MLP(in_size, self.size, config)
        if self.twohot:
            output: nn.Linear = mlp.layers[-1]
            nn.init.zeros_(output.weight)
            nn.init.zeros_(output.bias)
        return mlp

    def mean(self, raw: torch.Tensor) -> torch.Tensor:
        """The head's output (..., size) or (...) -> its prediction (...), in the target's units."""
        if not self.twohot:
            return raw
        return symexp(twohot_mean(raw, twohot_bins(raw.device)))

    def nll(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-element loss (...) of `target` (...) under the head's output; no gradient into `target`."""
        target = target.detach()
        if not self.twohot:
            return 0.5 * (raw - target).square()
        weights = twohot(symlog(target), twohot_bins(raw.device))
        return -(weights * F.log_softmax(raw.float(), -1)).sum(-1)
