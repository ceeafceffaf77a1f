"""Continuous actions: the action space, the truncated-normal and tanh-normal actors, dynamics
backpropagation, the discount-free world model, checkpoints and the continuous presets, each
against a plain reference written here (numeric integration, torch.distributions, closed forms,
finite differences, the published configs.yaml values)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import distributions as D

from dreamer_pipeline.models.action_dists import TanhNormal, TruncatedNormal, continuous_distribution
from dreamer_pipeline.datasets.action_space import ActionSpace, ActionSpaceError
from dreamer_pipeline.models.agent import Agent, BatchError
from dreamer_pipeline.models.checkpoint import CheckpointError, load_checkpoint, restore_checkpoint, save_checkpoint
from dreamer_pipeline.models.config import preset
from dreamer_pipeline.models.config_schema import ConfigError
from dreamer_pipeline.models.rssm import RSSMState

torch.set_num_threads(1)

GRID = torch.linspace(-1.0, 1.0, 200_001, dtype=torch.float64)


def integrate(values: torch.Tensor, grid: torch.Tensor = GRID) -> float:
    return float(torch.trapezoid(values, grid))


def reference_truncated_density(loc: float, scale: float, x: torch.Tensor) -> torch.Tensor:
    """The truncated normal's density on [-1, 1] from torch.distributions.Normal."""
    normal = D.Normal(torch.tensor(loc, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64))
    mass = normal.cdf(torch.tensor(1.0, dtype=torch.float64)) - normal.cdf(torch.tensor(-1.0, dtype=torch.float64))
    return normal.log_prob(x).exp() / mass


def continuous_batch(rng: np.random.Generator, batch: int, length: int, dims: int) -> dict[str, np.ndarray]:
    action = rng.uniform(-1, 1, (batch, length, dims)).astype(np.float32)
    is_first = np.zeros((batch, length), bool)
    is_first[:, 0] = True
    return {"image": rng.integers(0, 255, (batch, length, 64, 64, 3), dtype=np.uint8), "action": action,
            "reward": rng.normal(size=(batch, length)).astype(np.float32), "is_first": is_first,
            "is_last": np.zeros((batch, length), bool), "is_terminal": np.zeros((batch, length), bool)}


def continuous_config(overrides: dict | None = None):
    base = {"world_model": {"image_channels": 3, "predict_discount": False, "reward_transform": "identity"},
            "behaviour": {"actor_dist": "trunc_normal", "reinforce_fraction": 0.0}}
    config = preset("debug", base)
    return preset("debug", {**base, **(overrides or {})}) if overrides else config


# ------------------------------------------------------------------------------ action space
def test_action_space_dicts_round_trip_and_bad_ones_are_one_clear_error():
    space = ActionSpace.from_dict({"kind": "continuous", "shape": [6]})
    assert space.to_dict() == {"kind": "continuous", "shape": [6], "low": [-1.0] * 6, "high": [1.0] * 6}
    assert ActionSpace.from_dict(space.to_dict()) == space == ActionSpace.continuous(6)
    assert ActionSpace.from_dict({"kind": "discrete", "n": 18}).to_dict() == {"kind": "discrete", "n": 18}
    assert ActionSpace.discrete(4).size == 4 and space.size == 6
    for bad in ({"kind": "box"}, {"kind": "discrete"}, {"kind": "discrete", "n": 0}, {"kind": "discrete", "n": 2.5},
                {"kind": "continuous", "shape": [2, 3]}, {"kind": "continuous", "shape": [2], "low": [0, 0], "high": [0, 1]},
                {"kind": "continuous", "shape": [2], "low": [-1]}, {"kind": "continuous", "shape": [1], "high": [math.inf]},
                {"kind": "discrete", "n": 3, "shape": [3]}, [1, 2]):
        with pytest.raises(ActionSpaceError):
            ActionSpace.from_dict(bad)
    other_bounds = ActionSpace.continuous(2, low=[-2, -2], high=[2, 2])
    with pytest.raises(ActionSpaceError, match=r"\[-1, 1\]"):
        Agent(continuous_config(), action_space=other_bounds)
    with pytest.raises(ValueError, match="contradicts"):
        Agent(preset("debug"), num_actions=3, action_space=ActionSpace.discrete(4))
    with pytest.raises(ConfigError, match="actor_dist"):
        Agent(preset("debug", {"behaviour": {"actor_dist": "trunc_normal"}}), num_actions=3)
    with pytest.raises(ConfigError, match="actor_dist"):
        Agent(preset("debug", {"behaviour": {"actor_dist": "onehot"}}), action_space=ActionSpace.continuous(2))
    agent = Agent(continuous_config(), action_space=ActionSpace.continuous(2))
    with pytest.raises(AttributeError, match="action_space"):
        agent.num_actions  # noqa: B018 - a continuous agent has no action count


# ------------------------------------------------------------------------- truncated normal
@pytest.mark.parametrize("loc, scale", [(0.0, 1.0), (0.7, 0.1), (-0.95, 0.3), (1.0, 2.1), (0.3, 0.1)])
def test_truncated_normal_against_numeric_integrals(loc, scale):
    dist = TruncatedNormal(torch.tensor([loc]), torch.tensor([scale]))
    density = reference_truncated_density(loc, scale, GRID)
    log_prob = torch.stack([dist.log_prob(x.reshape(1, 1).float()) for x in GRID[::2000]]).squeeze(-1)
    torch.testing.assert_close(log_prob.double(), density[::2000].log(), rtol=1e-4, atol=1e-4)
    # normalised: exp(log_prob) integrates to one over [-1, 1]
    grid = GRID[::20]
    ours = dist.log_prob(grid.float().reshape(-1, 1)).double().exp()
    assert integrate(ours, grid) == pytest.approx(1.0, abs=1e-4)
    entropy = -integrate(density * density.log())
    assert float(dist.entropy()) == pytest.approx(entropy, abs=1e-4)
    assert float(dist.mode()) == pytest.approx(loc)
    # samples: inside the bounds, and distributed as the density (largest CDF gap, 20k samples)
    samples = dist.sample(torch.rand(20_000, 1, generator=torch.Generator().manual_seed(0))).double().squeeze(-1)
    assert samples.min() >= -1 + 1e-6 - 1e-7 and samples.max() <= 1 - 1e-6 + 1e-7
    cdf = torch.cumulative_trapezoid(density, GRID)
    points = torch.linspace(-0.99, 0.99, 34, dtype=torch.float64)
    reference = cdf[((points + 1) / 2 * (len(GRID) - 1)).long() - 1]
    empirical = (samples[None, :] <= points[:, None]).double().mean(1)
    assert (empirical - reference).abs().max() < 0.015
    assert float(dist.log_prob(torch.tensor([[1.5]]))) == -math.inf


def test_truncated_normal_samples_are_reparameterised():
    """The mean of the samples' pathwise gradients equals d E[a] / d loc and d E[a] / d scale,
    computed by finite differences of the numerically integrated mean."""
    loc, scale = torch.tensor([0.4], requires_grad=True), torch.tensor([0.5], requires_grad=True)
    noise = torch.rand(200_000, 1, generator=torch.Generator().manual_seed(1))
    TruncatedNormal(loc, scale).sample(noise).mean().backward()

    def mean(l, s):
        return integrate(GRID * reference_truncated_density(l, s, GRID))

    h = 1e-4
    assert float(loc.grad) == pytest.approx((mean(0.4 + h, 0.5) - mean(0.4 - h, 0.5)) / (2 * h), abs=5e-3)
    assert float(scale.grad) == pytest.approx((mean(0.4, 0.5 + h) - mean(0.4, 0.5 - h)) / (2 * h), abs=5e-3)


def test_actor_head_honours_min_std_and_the_published_transforms():
    raw = torch.tensor([[3.0, -0.5, -1e4, 0.0]])  # means (3, -0.5), raw stds (-1e4, 0)
    dist = continuous_distribution("trunc_normal", raw, min_std=0.1)
    torch.testing.assert_close(dist.loc.float(), torch.tanh(torch.tensor([[3.0, -0.5]])))
    torch.testing.assert_close(dist.scale.float(), torch.tensor([[0.1, 2 * 0.5 + 0.1]]))  # 2 sigmoid(s/2) + 0.1
    v1 = continuous_distribution("tanh_normal", raw, min_std=1e-4)
    torch.testing.assert_close(v1.mean.float(), 5 * torch.tanh(torch.tensor([[3.0, -0.5]]) / 5))
    torch.testing.assert_close(v1.std.float(), torch.tensor([[1e-4, 5.0 + 1e-4]]))  # softplus(s + log(e^5 - 1)) + min


@pytest.mark.parametrize("mean, std", [(0.0, 1.0), (0.8, 0.4), (-1.0, 0.6)])
def test_tanh_normal_against_numeric_integrals(mean, std):
    dist = TanhNormal(torch.tensor([mean]), torch.tensor([std]))
    inner = GRID[1:-1]  # the density is not defined at +-1
    ours = dist.log_prob(inner.float().reshape(-1, 1)).double()
    normal = D.Normal(torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64))
    reference = normal.log_prob(torch.atanh(inner)) - torch.log1p(-inner.square())  # change of variables
    close = inner.abs() < 0.999  # float32 actions lose atanh's precision near the ends
    torch.testing.assert_close(ours[close], reference[close], rtol=1e-3, atol=1e-3)
    assert integrate(ours.exp(), inner) == pytest.approx(1.0, abs=1e-3)  # normalised
    # entropy: the differential entropy of tanh(x), integrated in x-space (no endpoint trouble)
    x = torch.linspace(mean - 12 * std, mean + 12 * std, 200_001, dtype=torch.float64)
    log_px = normal.log_prob(x)
    log_py = log_px - torch.log1p(-torch.tanh(x).square())
    assert float(dist.entropy()) == pytest.approx(-integrate(log_px.exp() * log_py, x), abs=2e-3)
    samples = dist.sample(torch.randn(10_000, 1, generator=torch.Generator().manual_seed(0)))
    assert samples.abs().max() <= 1.0 and float(dist.mode()) == pytest.approx(math.tanh(mean))


# ---------------------------------------------------------------------- world model and agent
def test_continuous_agent_shapes_acting_and_bad_batches():
    rng = np.random.default_rng(0)
    agent = Agent(continuous_config(), action_space=ActionSpace.continuous(2), seed=0)
    assert agent.action_space == ActionSpace.continuous(2)
    assert agent.world_model.discount_head is None
    metrics = agent.update(continuous_batch(rng, 3, 6, 2))
    assert all(math.isfinite(v) for v in dict(metrics).values())
    assert "wm/discount_nll" not in metrics
    assert metrics["actor/imagined_discount"] == pytest.approx(0.999)  # the constant gamma of the debug preset
    # imagination: states z_0..z_H, actions a_0 = 0 then samples in [-1, 1]
    start = agent.world_model.rssm.initial(4)
    features, actions, raw = agent.actor_critic.imagine(agent.world_model, start, agent.generator)
    horizon = agent.config.behaviour.horizon
    assert features.shape[:2] == (horizon + 1, 4) and actions.shape == (horizon + 1, 4, 2) and raw.shape == (horizon, 4, 4)
    assert torch.all(actions[0] == 0) and actions.abs().max() < 1
    # acting: float32 (N, A) in [-1, 1]; greedy is the mode, the same twice
    image, first = rng.integers(0, 255, (5, 64, 64, 3), dtype=np.uint8), np.ones(5, bool)
    sampled, state = agent.policy_step(image, first, mode="sample")
    assert sampled.dtype == torch.float32 and sampled.shape == (5, 2) and sampled.abs().max() <= 1
    assert torch.equal(state[1], sampled)
    agent.generator.manual_seed(7)
    greedy, _ = agent.policy_step(image, first, mode="greedy")
    agent.generator.manual_seed(7)
    again, _ = agent.policy_step(image, first, mode="greedy")
    assert torch.equal(greedy, again)
    # bad batches: one clear error each
    batch = continuous_batch(rng, 2, 4, 2)
    for key, value, match in [("action", batch["action"].astype(np.int64), "float"),
                              ("action", batch["action"][..., :1], r"\(B, T, A\)"),
                              ("action", batch["action"] * 3, "outside"),
                              ("action", np.full_like(batch["action"], np.nan), "non-finite")]:
        with pytest.raises(BatchError, match=match):
            agent.update({**batch, key: value})


def test_the_first_steps_action_is_zeroed_for_continuous_actions():
    agent = Agent(continuous_config(), action_space=ActionSpace.continuous(2), seed=0)
    batch = continuous_batch(np.random.default_rng(1), 2, 5, 2)
    outputs = []
    for first_action in (-1.0, 1.0):
        changed = {**batch, "action": batch["action"].copy()}
        changed["action"][:, 0] = first_action
        data = agent.prepare(changed)
        _, embed = agent.world_model.embed(data.image)
        post, _ = agent.world_model.rssm.observe(embed, data.action, data.is_first,
                                                 generator=torch.Generator().manual_seed(0))
        outputs.append(post.deter)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_no_discount_head_and_identity_rewards():
    config = continuous_config()
    assert "discount_head" not in agent_parameter_names(Agent(config, action_space=ActionSpace.continuous(1)))
    # Reward NLL under `identity` and `tanh` from three agents with the same weights and samples
    # (rewards are not inputs): 0.5 mean (p - r)^2 is quadratic in r, so nll(0) and nll(c) under
    # identity give mean(p), and predict nll(c) under tanh.
    batch = continuous_batch(np.random.default_rng(2), 2, 4, 1)

    def reward_nll(transform: str, reward: float) -> float:
        agent = Agent(preset("debug", {"world_model": {"image_channels": 3, "reward_transform": transform}}),
                      action_space=ActionSpace.continuous(1), seed=3)
        return agent.train_world_model({**batch, "reward": np.full((2, 4), reward, np.float32)})["wm/reward_nll"]

    c = 3.0
    zero, identity = reward_nll("identity", 0.0), reward_nll("identity", c)
    mean_prediction = (zero + 0.5 * c * c - identity) / c
    expected = zero - math.tanh(c) * mean_prediction + 0.5 * math.tanh(c) ** 2
    assert reward_nll("tanh", c) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert identity > reward_nll("tanh", c) + 1.0  # raw rewards of 3 are far from tanh(3) ~ 1


def agent_parameter_names(agent: Agent) -> set[str]:
    return {name.split(".")[0] for name, _ in agent.world_model.named_parameters()}


def test_free_nats_on_the_batch_mean_or_per_element():
    """DreamerV1's max(mean KL, free) against the per-element clamp, for plain Gaussian KL."""
    def loss(over: str) -> float:
        agent = Agent(preset("debug", {"ablation": {"latent": "gaussian", "kl_balancing": False},
                                       "world_model": {"free_nats": 1.0, "free_nats_over": over}}), num_actions=2)
        post = RSSMState(torch.zeros(2, 32), torch.zeros(2, 4), torch.tensor([[0.0] * 4 + [1.0] * 4, [2.0] * 4 + [1.0] * 4]))
        prior = RSSMState(torch.zeros(2, 32), torch.zeros(2, 4), torch.tensor([[0.0] * 4 + [1.0] * 4] * 2))
        return float(agent.world_model.kl_loss(post, prior)[0])

    per_row = [0.0, 4 * 0.5 * 2.0 ** 2]  # KL of N(m, 1) from N(0, 1) is m^2 / 2 per dimension
    assert loss("batch_mean") == pytest.approx(max(np.mean(per_row), 1.0))
    assert loss("element") == pytest.approx(np.mean([max(v, 1.0) for v in per_row]))
    assert loss("auto") == loss("element")  # the published rule without KL balancing


# ---------------------------------------------------------------------- dynamics backpropagation
def plain_lambda_return(reward, value, discount, lam):
    """R_t = r_t + d_t ((1 - lam) v_{t+1} + lam R_{t+1}), R_H = v_H, as a Python loop."""
    horizon = reward.shape[0]
    returns = [None] * horizon
    following = value[horizon]
    for t in reversed(range(horizon)):
        following = reward[t] + discount[t] * ((1 - lam) * value[t + 1] + lam * following)
        returns[t] = following
    return torch.stack(returns)


def test_dynamics_backpropagation_is_the_gradient_of_the_lambda_return():
    """rho = 0, no entropy, Gaussian latents (so every sample is reparameterised and the loss is a
    smooth function of the actor): the actor loss is -mean(w_t R_{t+1}) of a plain lambda-return
    of the imagined rollout, and its autograd gradient matches central finite differences."""
    config = continuous_config({"ablation": {"latent": "gaussian"}, "behaviour": {
        "actor_dist": "trunc_normal", "reinforce_fraction": 0.0, "entropy_scale": 0.0, "discount": 0.9}})
    agent = Agent(config, action_space=ActionSpace.continuous(2), seed=0)
    agent.update(continuous_batch(np.random.default_rng(0), 2, 4, 2))  # non-trivial heads
    wm, ac = agent.world_model, agent.actor_critic
    start = wm.rssm.initial(6)
    start = RSSMState(torch.randn(6, start.deter.shape[1], generator=torch.Generator().manual_seed(1)),
                      torch.randn(6, start.stoch.shape[1], generator=torch.Generator().manual_seed(2)), start.stats)
    terminal = torch.zeros(6, dtype=torch.bool)

    def actor_loss() -> torch.Tensor:
        return ac.losses(wm, start, terminal, torch.Generator().manual_seed(5))[0]

    # the loss is the negative weighted mean of a plain lambda-return of the same rollout
    features, _, _ = ac.imagine(wm, start, torch.Generator().manual_seed(5))
    reward = wm.reward_head(features[:-1])
    value = ac.target_critic(features)
    discount = torch.full_like(reward, 0.9)
    target = plain_lambda_return(reward, value, discount, config.behaviour.return_lambda)
    weight = 0.9 ** torch.arange(config.behaviour.horizon - 1, dtype=torch.float32)[:, None]
    expected = -(weight * target[1:]).mean()
    loss = actor_loss()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)

    params = list(ac.actor.parameters())
    grads = torch.autograd.grad(loss, params)
    norm = torch.sqrt(sum(g.square().sum() for g in grads))
    assert norm > 1e-4  # the return's gradient reaches the actor through the imagined actions
    h = 1e-2
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.add_(h * g / norm)
        plus = float(actor_loss())
        for p, g in zip(params, grads):
            p.sub_(2 * h * g / norm)
        minus = float(actor_loss())
        for p, g in zip(params, grads):
            p.add_(h * g / norm)
    assert (plus - minus) / (2 * h) == pytest.approx(float(norm), rel=0.05)


def test_reinforce_on_continuous_actions_stops_the_dynamics_gradient():
    config = continuous_config({"behaviour": {"actor_dist": "trunc_normal", "reinforce_fraction": 1.0}})
    agent = Agent(config, action_space=ActionSpace.continuous(2), seed=0)
    start = agent.world_model.rssm.initial(4)
    _, actions, raw = agent.actor_critic.imagine(agent.world_model, start, torch.Generator().manual_seed(0))
    assert not actions.requires_grad and raw.requires_grad
    metrics = agent.update(continuous_batch(np.random.default_rng(3), 2, 4, 2))
    assert metrics["actor/grad_norm"] > 0 and math.isfinite(metrics["actor/loss"])


# ------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_with_a_continuous_action_space(tmp_path):
    agent = Agent(continuous_config(), action_space=ActionSpace.continuous(3), seed=0)
    agent.update(continuous_batch(np.random.default_rng(0), 2, 4, 3))
    path = save_checkpoint(agent, tmp_path / "agent.pt")
    loaded, _ = load_checkpoint(path)
    assert loaded.action_space == ActionSpace.continuous(3)
    image, first = np.zeros((2, 64, 64, 3), np.uint8), np.ones(2, bool)
    for a in (agent, loaded):
        a.generator.manual_seed(0)
    torch.testing.assert_close(agent.policy_step(image, first, mode="greedy")[0],
                               loaded.policy_step(image, first, mode="greedy")[0], rtol=0, atol=0)
    with pytest.raises(CheckpointError, match=r"action_space: checkpoint continuous\(3, \[-1, 1\]\), agent continuous\(2, \[-1, 1\]\)"):
        restore_checkpoint(Agent(continuous_config(), action_space=ActionSpace.continuous(2)), path)
    discrete = Agent(preset("debug", {"world_model": {"image_channels": 3, "predict_discount": False}}), num_actions=3)
    with pytest.raises(CheckpointError, match="action_space"):
        restore_checkpoint(discrete, path)


def test_checkpoint_from_before_action_spaces_loads_as_discrete(tmp_path):
    agent = Agent(preset("debug"), num_actions=3, seed=0)
    path = save_checkpoint(agent, tmp_path / "new.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["action_space"] == {"kind": "discrete", "n": 3} and payload["num_actions"] == 3
    # as written before: no action space, no new configuration fields
    del payload["action_space"]
    for key in ("predict_discount", "reward_transform", "free_nats_over"):
        del payload["config"]["world_model"][key]
    for key in ("actor_dist", "actor_min_std", "action_noise"):
        del payload["config"]["behaviour"][key]
    payload["config"]["behaviour"]["reinforce_fraction"] = 1.0
    torch.save(payload, tmp_path / "old.pt")
    loaded, _ = load_checkpoint(tmp_path / "old.pt")
    assert loaded.action_space == ActionSpace.discrete(3) and loaded.num_actions == 3
    restore_checkpoint(Agent(preset("debug"), num_actions=3), tmp_path / "old.pt")  # "auto" == onehot


# ----------------------------------------------------------------------------------- presets
def test_presets_match_the_published_configurations():
    # danijar/dreamerv2 configs.yaml: `defaults` + `dmc_vision`
    dmc = preset("dmc_vision")
    wm, b = dmc.world_model, dmc.behaviour
    assert (wm.image_channels, wm.rssm.deter, wm.rssm.hidden, wm.rssm.stoch, wm.rssm.classes) == (3, 200, 200, 32, 32)
    assert (wm.encoder.depth, wm.encoder.kernels, wm.decoder.depth, wm.decoder.kernels) == (48, (4, 4, 4, 4), 48, (5, 5, 6, 6))
    assert (wm.reward_head.layers, wm.reward_head.units, b.actor.layers, b.actor.units, b.critic.layers) == (4, 400, 4, 400, 4)
    assert (wm.opt.lr, b.actor_opt.lr, b.critic_opt.lr) == (3e-4, 8e-5, 8e-5)
    assert (wm.opt.eps, wm.opt.clip, wm.opt.weight_decay) == (1e-5, 100.0, 1e-6)
    assert (wm.kl_scale, wm.kl_balance, wm.free_nats, wm.free_nats_over) == (1.0, 0.8, 1.0, "auto")
    assert (wm.predict_discount, wm.reward_transform, dmc.ablation.image_grad, dmc.ablation.reward_grad) == (
        False, "identity", True, True)
    assert (b.discount, b.return_lambda, b.horizon, b.entropy_scale) == (0.99, 0.95, 15, 1e-4)
    assert (b.actor_dist, b.actor_min_std, b.reinforce_fraction, b.action_noise, b.target_update_every) == (
        "trunc_normal", 0.1, 0.0, 0.0, 100)
    assert dmc.ablation.latent == "categorical" and dmc.ablation.kl_balancing
    # danijar/dreamer dreamer.py define_config and _build_model
    v1 = preset("dreamerv1")
    wm, b = v1.world_model, v1.behaviour
    assert v1.ablation.latent == "gaussian" and not v1.ablation.kl_balancing
    assert (wm.rssm.stoch, wm.rssm.deter, wm.rssm.hidden, wm.rssm.min_std) == (30, 200, 200, 0.1)
    assert (wm.encoder.depth, wm.decoder.depth, wm.reward_head.layers, wm.reward_head.units) == (32, 32, 2, 400)
    assert (b.actor.layers, b.actor.units, b.critic.layers, b.critic.units) == (4, 400, 3, 400)
    assert (wm.free_nats, wm.free_nats_over, wm.kl_scale, wm.predict_discount, wm.reward_transform) == (
        3.0, "batch_mean", 1.0, False, "identity")
    assert (wm.opt.lr, b.actor_opt.lr, b.critic_opt.lr) == (6e-4, 8e-5, 8e-5)
    assert all((o.clip, o.eps, o.weight_decay) == (100.0, 1e-7, 0.0) for o in (wm.opt, b.actor_opt, b.critic_opt))
    assert (b.discount, b.return_lambda, b.horizon, b.entropy_scale, b.reinforce_fraction) == (0.99, 0.95, 15, 0.0, 0.0)
    assert (b.actor_dist, b.actor_min_std, b.action_noise, b.target_update_every) == ("tanh_normal", 1e-4, 0.3, 1)
    # the Atari preset is unchanged by all of this, and "auto" resolves to the published choices
    atari = preset("atari")
    assert (atari.world_model.predict_discount, atari.world_model.reward_transform) == (True, "tanh")
    assert Agent(preset("debug"), num_actions=3).actor_critic.reinforce_fraction == 1.0
    continuous = Agent(preset("debug"), action_space=ActionSpace.continuous(2)).actor_critic
    assert (continuous.reinforce_fraction, continuous.dist_kind) == (0.0, "trunc_normal")


def test_dreamerv1_agent_updates_and_explores_with_clipped_noise():
    config = preset("dreamerv1", {"world_model": {"encoder": {"depth": 4}, "decoder": {"depth": 4},
                                                  "rssm": {"deter": 16, "hidden": 16, "stoch": 4}},
                                  "behaviour": {"horizon": 4, "actor": {"units": 16, "layers": 1},
                                                "critic": {"units": 16, "layers": 1}}})
    agent = Agent(config, action_space=ActionSpace.continuous(2), seed=0)
    metrics = agent.update(continuous_batch(np.random.default_rng(0), 2, 4, 2))
    assert all(math.isfinite(v) for v in dict(metrics).values()) and metrics["actor/grad_norm"] > 0
    image, first = np.zeros((64, 64, 64, 3), np.uint8), np.ones(64, bool)
    agent.generator.manual_seed(0)
    noisy, _ = agent.policy_step(image, first, mode="sample")
    assert noisy.abs().max() <= 1.0
    with pytest.raises(ConfigError, match="action_noise"):
        Agent(preset("debug", {"behaviour": {"action_noise": 0.3}}), num_actions=3)

