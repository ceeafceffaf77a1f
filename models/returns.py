"""Functions of imagined trajectories: lambda-returns, step weights, the actor and critic losses
(paper Eq. 4-6), and DreamerV3's return scale (`ReturnScale`, the one piece with state).

All tensors are time-major: (H + 1, N) for the imagined states z_0 .. z_H, z_0 the start state.
"""

from __future__ import annotations

import torch
from torch import nn

from .scalar_dists import ScalarDist


def lambda_return(
    reward: torch.Tensor, value: torch.Tensor, discount: torch.Tensor, bootstrap: torch.Tensor, lambda_: float
) -> torch.Tensor:
    """R_t = r_t + d_t * ((1 - lambda) * v_{t+1} + lambda * R_{t+1}), with R_H = bootstrap.

    reward, value, discount: (H, ...) for t = 0 .. H-1; bootstrap: (...) = v(s_H). Returns (H, ...).
    Same as the published `common.lambda_return` (lambda = 1: discounted Monte-Carlo return;
    lambda = 0: one-step TD target).
    """
    if not (reward.shape == value.shape == discount.shape):
        raise ValueError(f"reward {tuple(reward.shape)}, value {tuple(value.shape)} and discount "
                         f"{tuple(discount.shape)} must have the same shape")
    next_value = torch.cat([value[1:], bootstrap.unsqueeze(0)], 0)
    inputs = reward + discount * next_value * (1 - lambda_)
    returns = []
    last = bootstrap
    for t in reversed(range(reward.shape[0])):
        last = inputs[t] + discount[t] * lambda_ * last
        returns.append(last)
    return torch.stack(returns[::-1], 0)


def step_weights(discount: torch.Tensor) -> torch.Tensor:
    """Cumulative product of the discounts, shifted by one step: w_0 = 1, w_t = prod_{i<t} d_i.

    A discount at state t says whether the state after it is still valid, so it weights the losses
    from t + 1 on (published `seq['weight']`). discount: (H + 1, ...) -> weights (H + 1, ...).
    """
    shifted = torch.cat([torch.ones_like(discount[:1]), discount[:-1]], 0)
    return torch.cumprod(shifted, 0)


def actor_loss(
    logits: torch.Tensor, taken: torch.Tensor, target: torch.Tensor, baseline: torch.Tensor, weight: torch.Tensor,
    entropy_scale: float, reinforce_fraction: float = 1.0, scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The actor loss of paper Eq. 6 for a categorical actor, for the H - 1 actions that have a target.

    logits (K, N, A): pi(. | z_t); taken (K, N, A) one-hot a_{t+1}; the rest as `policy_loss`.
    Returns (loss, entropy, advantage).
    """
    log_policy = torch.log_softmax(logits, -1)
    log_prob = (log_policy * taken.detach()).sum(-1)
    entropy = -(log_policy.exp() * log_policy).sum(-1)
    return policy_loss(log_prob, entropy, target, baseline, weight, entropy_scale, reinforce_fraction, scale)


def policy_loss(
    log_prob: torch.Tensor | None, entropy: torch.Tensor, target: torch.Tensor, baseline: torch.Tensor,
    weight: torch.Tensor, entropy_scale: float, reinforce_fraction: float = 1.0, scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The actor loss of paper Eq. 6 for any actor distribution.

    log_prob (K, N): log pi(a_{t+1} | z_t) of the (stopped) action taken; entropy (K, N) H(pi(. | z_t));
    target (K, N) R_{t+1}; baseline (K, N) v_target(z_t); weight (K, N) w_t. Loss
    -mean(w_t [rho log pi(a_{t+1}) sg(R_{t+1} - v(z_t)) + (1 - rho) R_{t+1} + eta H(pi)]);
    the (1 - rho) term carries gradients only if `target` was computed with them (dynamics
    backpropagation through straight-through or reparameterised actions). With rho = 0 the
    REINFORCE term is left out (published `actor_grad: dynamics`) and `log_prob` may be None.
    `scale` (a tensor, DreamerV3's return normalisation) divides the advantage and the
    backpropagated return: R / S in place of R (its offset would not change the gradients).
    Returns (loss, entropy, advantage), the advantage as the actor saw it (divided by `scale`).
    """
    if scale is not None:
        scale = scale.detach()
        target, baseline = target / scale, baseline / scale
    advantage = (target - baseline).detach()
    if reinforce_fraction > 0.0:
        objective = log_prob * advantage
        if reinforce_fraction < 1.0:
            objective = reinforce_fraction * objective + (1 - reinforce_fraction) * target
    else:
        objective = target
    objective = objective + entropy_scale * entropy
    return -(weight.detach() * objective).mean(), entropy, advantage


def critic_loss(output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                dist: ScalarDist = ScalarDist("gaussian")) -> torch.Tensor:
    """mean(w_t * nll(sg(R_t))) under the critic's output at z_t (`ScalarDist.nll`). The Gaussian
    critic's nll is 0.5 (v(z_t) - sg(R_t))^2: the published unit-variance Gaussian NLL of the
    lambda-return without its constant (same gradients); a two-hot critic's, its cross-entropy."""
    return (weight.detach() * dist.nll(output, target)).mean()


def percentiles(values: torch.Tensor, fractions: tuple[float, ...]) -> torch.Tensor:
    """The percentiles of all of `values` at `fractions` (each in [0, 1]), with numpy's default
    linear interpolation between the sorted values at position q (n - 1). One sort on the device;
    the positions depend on the shape only, so no value is read on the host (graph-safe)."""
    ordered = values.detach().float().flatten().sort().values
    last = ordered.shape[0] - 1
    out = []
    for fraction in fractions:
        position = fraction * last
        index = min(int(position), last)
        upper = min(index + 1, last)
        out.append(torch.lerp(ordered[index], ordered[upper], position - index))
    return torch.stack(out)


class ReturnScale(nn.Module):
    """DreamerV3's return normalisation ("Mastering Diverse Domains through World Models", Hafner
    et al. 2023, Eq. 7; published `jaxutils.Moments(impl='perc')`, `retnorm` rate 0.01, limit 1):

        low  <- decay * low  + (1 - decay) * P5(R)        (both start at 0, no bias correction)
        high <- decay * high + (1 - decay) * P95(R)
        S     = max(1, high - low)

    `forward(returns)` updates the EMAs with this batch of lambda-returns first, then returns S (a
    0-dim tensor). `low` and `high` are buffers: the state dict and checkpoints carry them, and
    in-place updates keep their addresses for a captured CUDA graph."""

    PERCENTILES = (0.05, 0.95)

    def __init__(self, decay: float = 0.99, floor: float = 1.0):
        super().__init__()
        self.decay, self.floor = decay, floor
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))

    def forward(self, returns: torch.Tensor) -> torch.Tensor:
        low, high = percentiles(returns, self.PERCENTILES)
        with torch.no_grad():
            self.low.lerp_(low, 1.0 - self.decay)
            self.high.lerp_(high, 1.0 - self.decay)
        return (self.high - self.low).clamp(min=self.floor)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """A checkpoint from before return normalisation (or written with it off) has no EMAs:
        they restart at 0, as in a fresh agent, instead of failing the load."""
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        for name in ("low", "high"):
            if prefix + name not in state_dict:
                getattr(self, name).zero_()
                if prefix + name in missing_keys:
                    missing_keys.remove(prefix + name)
