"""The continuous actors' distributions over actions in [-1, 1], one independent factor per dimension.

`trunc_normal` (DreamerV2, published `DistLayer(dist='trunc_normal')` with `TruncNormalDist`): the
actor's output (..., 2A) splits into a mean part m and a std part s, and

    loc = tanh(m),   scale = 2 sigmoid(s / 2) + min_std   (min_std 0.1: scale in (0.1, 2.1))
    a ~ N(loc, scale) truncated to [-1, 1]

Samples are reparameterised by the inverse CDF, a = loc + scale Phi^-1(Phi(alpha) + u (Phi(beta) -
Phi(alpha))) with u ~ U(0, 1), alpha = (-1 - loc) / scale, beta = (1 - loc) / scale (the gradient of
this map is TFP's implicit reparameterisation gradient of its TruncatedNormal), then clipped to
[-1 + 1e-6, 1 - 1e-6] with a straight-through gradient, as the published `TruncNormalDist.sample`
does. The mode is loc (TFP: loc clipped to the bounds). The entropy is the closed form TFP's
`TruncatedNormal.entropy` computes, summed over the A dimensions (published `tfd.Independent`):

    H = log(sqrt(2 pi e) scale Z) + (alpha phi(alpha) - beta phi(beta)) / (2 Z),   Z = Phi(beta) - Phi(alpha)

`tanh_normal` (DreamerV1, published `ActionDecoder(dist='tanh_normal')`):

    mean = 5 tanh(m / 5),   std = softplus(s + log(e^5 - 1)) + min_std   (min_std 1e-4; std 5 at s = 0)
    a = tanh(mean + std eps),  eps ~ N(0, 1)

Its log-density carries the tanh Jacobian, log p(a) = log N(atanh a) - log(1 - a^2). DreamerV1 had no
closed form for the entropy and the mode and estimated them from 100 samples (`SampleDist`); here the
entropy H[N] + E[log(1 - tanh(x)^2)] uses 16-point Gauss-Hermite quadrature for the expectation
(deterministic and differentiable), and the mode is tanh(mean) (the image of the Gaussian's mode).
DreamerV1 never used either in its losses (no entropy bonus); see docs/agent.md.

The arithmetic runs in float64: N * A numbers per step cost nothing, and Phi^-1 near 1 and the
normaliser Z keep their precision. Results come back in float32.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

CONTINUOUS_DISTS = ("trunc_normal", "tanh_normal")
SAMPLE_CLIP = 1e-6  # published TruncNormalDist(clip=1e-6)
TANH_MEAN_SCALE = 5.0  # DreamerV1 ActionDecoder(mean_scale=5)
TANH_INIT_STD = 5.0  # DreamerV1 ActionDecoder(init_std=5): the std where the raw output is 0
_HERMITE_NODES, _HERMITE_WEIGHTS = np.polynomial.hermite.hermgauss(16)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return torch.special.ndtr(x)


def _normal_log_pdf(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * x.square() - _LOG_SQRT_2PI


class TruncatedNormal:
    """N(loc, scale) truncated to [low, high], independent per dimension (last axis = A)."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, low: float = -1.0, high: float = 1.0):
        self.loc, self.scale = loc.double(), scale.double()
        self.low, self.high = low, high
        self.alpha = (low - self.loc) / self.scale
        self.beta = (high - self.loc) / self.scale
        self.cdf_alpha = _normal_cdf(self.alpha)
        self.normaliser = (_normal_cdf(self.beta) - self.cdf_alpha).clamp(min=torch.finfo(torch.float64).tiny)

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """`noise`: uniforms in [0, 1) shaped like loc. Reparameterised (gradients reach loc and scale)."""
        eps = torch.finfo(torch.float64).eps
        p = (self.cdf_alpha + noise.double() * self.normaliser).clamp(torch.finfo(torch.float64).tiny, 1 - eps)
        event = self.loc + self.scale * torch.special.ndtri(p)
        clipped = event.detach().clamp(self.low + SAMPLE_CLIP, self.high - SAMPLE_CLIP)
        return (event - event.detach() + clipped).float()

    def mode(self) -> torch.Tensor:
        return self.loc.clamp(self.low, self.high).float()

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """Summed over the A dimensions: (...,). -inf outside [low, high]."""
        action = action.double()
        z = (action - self.loc) / self.scale
        density = _normal_log_pdf(z) - self.scale.log() - self.normaliser.log()
        outside = (action < self.low) | (action > self.high)
        return density.masked_fill(outside, -math.inf).sum(-1).float()

    def entropy(self) -> torch.Tensor:
        """Closed form (TFP TruncatedNormal.entropy), summed over the A dimensions: (...,)."""
        a, b, z = self.alpha, self.beta, self.normaliser
        phi_a, phi_b = _normal_log_pdf(a).exp(), _normal_log_pdf(b).exp()
        # alpha phi(alpha) -> 0 as alpha -> -inf; the where keeps inf * 0 out of the sum
        a_phi = torch.where(torch.isfinite(a), a * phi_a, torch.zeros_like(a))
        b_phi = torch.where(torch.isfinite(b), b * phi_b, torch.zeros_like(b))
        value = 0.5 * math.log(2 * math.pi * math.e) + self.scale.log() + z.log() + (a_phi - b_phi) / (2 * z)
        return value.sum(-1).float()


class TanhNormal:
    """tanh(N(mean, std)), independent per dimension (last axis = A)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        self.mean, self.std = mean.double(), std.double()

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """`noise`: standard normals shaped like mean. Reparameterised."""
        return torch.tanh(self.mean + self.std * noise.double()).float()

    def mode(self) -> torch.Tensor:
        return torch.tanh(self.mean).float()

    @staticmethod
    def _log_det_jacobian(x: torch.Tensor) -> torch.Tensor:
        """log(1 - tanh(x)^2), stable for large |x| (TFP's TanhBijector)."""
        return 2.0 * (math.log(2.0) - x - F.softplus(-2.0 * x))

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """Summed over the A dimensions: (...,)."""
        action = action.double().clamp(-1 + 1e-12, 1 - 1e-12)  # atanh(+-1) is infinite
        x = torch.atanh(action)
        density = _normal_log_pdf((x - self.mean) / self.std) - self.std.log() - self._log_det_jacobian(x)
        return density.sum(-1).float()

    def entropy(self) -> torch.Tensor:
        """H[N(mean, std)] + E[log(1 - tanh(x)^2)], the expectation by Gauss-Hermite quadrature: (...,)."""
        nodes = torch.as_tensor(_HERMITE_NODES, dtype=torch.float64, device=self.mean.device)
        weights = torch.as_tensor(_HERMITE_WEIGHTS, dtype=torch.float64, device=self.mean.device) / math.sqrt(math.pi)
        x = self.mean.unsqueeze(-1) + math.sqrt(2.0) * self.std.unsqueeze(-1) * nodes
        expected_log_det = (weights * self._log_det_jacobian(x)).sum(-1)
        gaussian = 0.5 * math.log(2 * math.pi * math.e) + self.std.log()
        return (gaussian + expected_log_det).sum(-1).float()


def continuous_distribution(kind: str, raw: torch.Tensor, min_std: float) -> TruncatedNormal | TanhNormal:
    """The actor's distribution from its raw output (..., 2A): the first A the mean part, the rest the std part."""
    mean, std = raw.float().chunk(2, -1)
    if kind == "trunc_normal":
        return TruncatedNormal(torch.tanh(mean), 2 * torch.sigmoid(std / 2) + min_std)
    if kind == "tanh_normal":
        raw_init_std = math.log(math.exp(TANH_INIT_STD) - 1)
        mean = TANH_MEAN_SCALE * torch.tanh(mean / TANH_MEAN_SCALE)
        return TanhNormal(mean, F.softplus(std + raw_init_std) + min_std)
    raise ValueError(f"unknown continuous action distribution {kind!r}; choose one of {CONTINUOUS_DISTS}")


def action_noise(kind: str, shape: tuple[int, ...], device: torch.device,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The random numbers one sample of `kind` consumes: uniforms (trunc_normal) or standard normals."""
    if kind == "tanh_normal":
        return torch.randn(shape, device=device, generator=generator)
    return torch.rand(shape, device=device, generator=generator)
