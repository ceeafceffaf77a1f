"""Pure functions of imagined trajectories: lambda-returns and step weights (paper Eq. 4-5).

All tensors are time-major: (H + 1, N) for the imagined states z_0 .. z_H, z_0 the start state.
"""

from __future__ import annotations

import torch


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
