"""Behaviour learning: lambda-returns, step weights, actor and critic losses, and the published
alignment of the imagined sequence (danijar/dreamerv2 ActorCritic), against plain references."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from dreamer_pipeline.models import returns
from dreamer_pipeline.models.agent import Agent
from dreamer_pipeline.models.config import preset

from test_models_units import make_batch, observe

torch.set_num_threads(1)


def test_lambda_return_matches_python_loop():
    torch.manual_seed(0)
    horizon, n, lam = 6, 4, 0.95
    reward, value, discount = torch.randn(horizon, n), torch.randn(horizon, n), torch.rand(horizon, n)
    bootstrap = torch.randn(n)
    expected = torch.zeros(horizon, n)
    for i in range(n):
        next_return = bootstrap[i].item()
        for t in reversed(range(horizon)):
            next_value = value[t + 1, i].item() if t + 1 < horizon else bootstrap[i].item()
            next_return = reward[t, i].item() + discount[t, i].item() * (
                (1 - lam) * next_value + lam * next_return)
            expected[t, i] = next_return
    torch.testing.assert_close(returns.lambda_return(reward, value, discount, bootstrap, lam), expected)
    # lambda = 0: one-step TD targets; lambda = 1: discounted Monte-Carlo return
    td = returns.lambda_return(reward, value, discount, bootstrap, 0.0)
    torch.testing.assert_close(td, reward + discount * torch.cat([value[1:], bootstrap[None]]))


def test_step_weights_are_shifted_cumulative_discounts():
    discount = torch.tensor([[0.5], [0.9], [0.0], [0.7]])
    expected = torch.tensor([[1.0], [0.5], [0.45], [0.0]])
    torch.testing.assert_close(returns.step_weights(discount), expected)


@pytest.mark.parametrize("advantage_sign", [1.0, -1.0])
def test_reinforce_moves_log_probability_with_the_advantage(advantage_sign):
    logits = torch.zeros(1, 1, 3, requires_grad=True)
    taken = F.one_hot(torch.tensor([[1]]), 3).float()
    baseline = torch.tensor([[0.5]])
    target = baseline + advantage_sign
    loss, _, advantage = returns.actor_loss(logits, taken, target, baseline, torch.ones(1, 1), entropy_scale=0.0)
    assert advantage.item() == advantage_sign
    (grad,) = torch.autograd.grad(loss, logits)
    after = torch.log_softmax(logits.detach() - 0.1 * grad, -1)[0, 0, 1]
    before = torch.log_softmax(logits.detach(), -1)[0, 0, 1]
    assert (after - before).item() * advantage_sign > 0
    # baseline == target: no policy gradient at all; entropy bonus pushes towards uniform only
    loss, _, _ = returns.actor_loss(logits, taken, baseline, baseline, torch.ones(1, 1), entropy_scale=0.0)
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad.abs().max().item() == 0.0
    # the REINFORCE gradient equals -w * adv * d log pi(a) / d logits
    loss, _, _ = returns.actor_loss(logits, taken, target, baseline, torch.full((1, 1), 0.3), entropy_scale=0.0)
    (grad,) = torch.autograd.grad(loss, logits)
    expected = -0.3 * advantage_sign * (taken - torch.softmax(logits.detach(), -1))
    torch.testing.assert_close(grad, expected)


def test_critic_loss_is_weighted_half_squared_error():
    prediction = torch.tensor([[1.0, 2.0]], requires_grad=True)
    loss = returns.critic_loss(prediction, torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.5]]))
    assert loss.item() == pytest.approx((0.5 * 1 + 0.5 * 0.5 * 4) / 2)



def test_behaviour_losses_follow_the_published_alignment():
    """losses() against a plain re-implementation of danijar/dreamerv2's ActorCritic (seq of H+1
    states, targets from reward[:-1], actor on feat[:-2] with action[1:-1] and target[1:], critic
    on feat[:-1], weights cumprod([1, d[:-1]]))."""
    agent = Agent(preset("debug"), num_actions=3)
    ac, wm = agent.actor_critic, agent.world_model
    with torch.no_grad():  # make the target critic differ from the critic
        for p in ac.target_critic.parameters():
            p.add_(0.05)
    batch = make_batch(2, 3, 3)
    batch["is_terminal"][0, 1] = True
    data = agent.prepare(batch)
    post, _ = observe(agent, batch)
    start = post.map(lambda x: x.reshape(-1, x.shape[-1]))
    terminal = data.is_terminal.reshape(-1)
    actor_loss, critic_loss, _ = ac.losses(wm, start, terminal, torch.Generator().manual_seed(4))

    feat, action, logits = ac.imagine(wm, start, torch.Generator().manual_seed(4))
    with torch.no_grad():
        horizon, lam, eta = ac.config.horizon, ac.config.return_lambda, ac.config.entropy_scale
        reward = wm.reward_head(feat)
        disc = torch.sigmoid(wm.discount_head(feat))
        disc[0] = 0.999 * (1 - terminal.float())
        weight = torch.cumprod(torch.cat([torch.ones_like(disc[:1]), disc[:-1]]), 0)
        value = ac.target_critic(feat)
        target = [None] * horizon
        last = value[-1]
        for t in reversed(range(horizon)):
            following = value[t + 1] if t + 1 < horizon else value[-1]
            last = reward[t] + disc[t] * ((1 - lam) * following + lam * last)
            target[t] = last
        target = torch.stack(target)
        policy = torch.log_softmax(ac.actor(feat[:-2]), -1)
        logp = (policy * action[1:-1]).sum(-1)
        objective = logp * (target[1:] - value[:-2]) + eta * -(policy.exp() * policy).sum(-1)
        expected_actor = -(weight[:-2] * objective).mean()
        expected_critic = -(weight[:-1] * -0.5 * (ac.critic(feat[:-1]) - target) ** 2).mean()
    torch.testing.assert_close(actor_loss.detach(), expected_actor)
    torch.testing.assert_close(critic_loss.detach(), expected_critic)
