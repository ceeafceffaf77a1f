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


def actor_loss(
    logits: torch.Tensor, taken: torch.Tensor, target: torch.Tensor, baseline: torch.Tensor, weight: torch.Tensor,
    entropy_scale: float, reinforce_fraction: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The actor loss of paper Eq. 6 for a categorical actor, for the H - 1 actions that have a target.

    logits (K, N, A): pi(. | z_t); taken (K, N, A) one-hot a_{t+1}; the rest as `policy_loss`.
    Returns (loss, entropy, advantage).
    """
    log_policy = torch.log_softmax(logits, -1)
    log_prob = (log_policy * taken.detach()).sum(-1)
    entropy = -(log_policy.exp() * log_policy).sum(-1)
    return policy_loss(log_prob, entropy, target, baseline, weight, entropy_scale, reinforce_fraction)


def policy_loss(
    log_prob: torch.Tensor | None, entropy: torch.Tensor, target: torch.Tensor, baseline: torch.Tensor,
    weight: torch.Tensor, entropy_scale: float, reinforce_fraction: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The actor loss of paper Eq. 6 for any actor distribution.

    log_prob (K, N): log pi(a_{t+1} | z_t) of the (stopped) action taken; entropy (K, N) H(pi(. | z_t));
    target (K, N) R_{t+1}; baseline (K, N) v_target(z_t); weight (K, N) w_t. Loss
    -mean(w_t [rho log pi(a_{t+1}) sg(R_{t+1} - v(z_t)) + (1 - rho) R_{t+1} + eta H(pi)]);
    the (1 - rho) term carries gradients only if `target` was computed with them (dynamics
    backpropagation through straight-through or reparameterised actions). With rho = 0 the
    REINFORCE term is left out (published `actor_grad: dynamics`) and `log_prob` may be None.
    Returns (loss, entropy, advantage).
    """
    advantage = (target - baseline).detach()
    if reinforce_fraction > 0.0:
        objective = log_prob * advantage
        if reinforce_fraction < 1.0:
            objective = reinforce_fraction * objective + (1 - reinforce_fraction) * target
    else:
        objective = target
    objective = objective + entropy_scale * entropy
    return -(weight.detach() * objective).mean(), entropy, advantage


def critic_loss(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """mean(w_t * 0.5 (v(z_t) - sg(R_t))^2): the published unit-variance Gaussian NLL of the
    lambda-return without its constant (same gradients)."""
    return (weight.detach() * 0.5 * (prediction - target.detach()).square()).mean()
