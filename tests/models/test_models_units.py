"""Unit tests of the agent's parts against plain references (debug preset unless stated)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from dreamer_pipeline.models.agent import Agent, BatchError
from dreamer_pipeline.models.config import AgentConfig, ConvConfig, MLPConfig, RSSMConfig, preset
from dreamer_pipeline.models.networks import Decoder, Encoder
from dreamer_pipeline.models.optim import Optimizer
from dreamer_pipeline.models.config import OptimConfig
from dreamer_pipeline.models.rssm import RSSM, LayerNormGRUCell, RSSMState

torch.set_num_threads(1)


def make_batch(batch: int, length: int, num_actions: int, seed: int = 0, reward: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {
        "image": rng.integers(0, 256, (batch, length, 64, 64, 1), dtype=np.uint8),
        "action": rng.integers(0, num_actions, (batch, length)).astype(np.int64),
        "is_first": np.zeros((batch, length), bool),
        "is_last": np.zeros((batch, length), bool),
        "is_terminal": np.zeros((batch, length), bool),
    }
    out["is_first"][:, 0] = True
    if reward:
        out["reward"] = rng.normal(size=(batch, length)).astype(np.float32)
    return out


# ----------------------------------------------------------------------------- sizes and shapes
def test_atari_parameter_counts():
    """The paper's ~20M-parameter world model; every module's count pinned."""
    counts = Agent(preset("atari"), num_actions=18).parameter_counts()
    assert counts == {
        "encoder": 1_549_776,  # 4 convs 48-96-192-384
        "rssm": 5_664_848,  # img_in, layer-norm GRU (600), prior and posterior 600-unit layers, 32x32 logits
        "decoder": 10_497_553,  # dense 1624->1536, transposed convs 192-96-48-1
        "reward_head": 1_131_601,  # 4 x 400 ELU
        "discount_head": 1_131_601,
        "world_model": 19_975_379,
        "actor": 1_138_418,  # 4 x 400 ELU -> 18 logits
        "critic": 1_131_601,
    }


def test_encoder_and_decoder_sizes():
    encoder = Encoder(ConvConfig(depth=48))
    assert encoder.output_size == 1536
    sizes, x = [], torch.zeros(2, 1, 64, 64)
    for layer in encoder.layers:
        x = layer(x)
        sizes.append(x.shape[-1])
    assert sizes[::2] == [31, 14, 6, 2]
    decoder = Decoder(ConvConfig(depth=4, kernels=(5, 5, 6, 6)), feature_size=10)
    assert decoder(torch.zeros(3, 10)).shape == (3, 1, 64, 64)
    with pytest.raises(ValueError, match="do not fit|not 64x64"):
        Decoder(ConvConfig(depth=4, kernels=(4, 4, 4, 4)), feature_size=10)


def test_decoder_matmul_equals_transposed_convolution_stack():
    torch.manual_seed(0)
    decoder = Decoder(ConvConfig(depth=4, kernels=(5, 5, 6, 6)), feature_size=12)
    features = torch.randn(5, 12)
    reference = decoder.layers(decoder.dense(features).reshape(5, 128, 1, 1))
    torch.testing.assert_close(decoder(features), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch,length", [(1, 2), (3, 5), (2, 9)])
def test_update_shapes_and_metrics(batch, length):
    agent = Agent(preset("debug"), num_actions=3)
    metrics = agent.update(make_batch(batch, length, 3))
    for key in ("wm/loss", "wm/image_nll", "wm/reward_nll", "wm/discount_nll", "wm/kl", "wm/prior_entropy",
                "wm/post_entropy", "wm/grad_norm", "actor/loss", "actor/entropy", "critic/loss", "critic/value"):
        assert isinstance(metrics[key], float) and np.isfinite(metrics[key]), key
    post, prior = observe(agent, make_batch(batch, length, 3))
    rssm = agent.world_model.rssm
    assert post.deter.shape == (batch, length, 32)
    assert post.stoch.shape == prior.stats.shape == (batch, length, 16)
    assert rssm.features(post).shape == (batch, length, 48)
    video = agent.open_loop(make_batch(batch, max(length, 3), 3), context=2)
    assert video.shape == (max(length, 3), 3 * 64, min(batch, 6) * 64, 1) and video.dtype == np.uint8


def observe(agent: Agent, batch) -> tuple[RSSMState, RSSMState]:
    data = agent.prepare(batch)
    with torch.no_grad():
        _, embed = agent.world_model.embed(data.image)
        return agent.world_model.rssm.observe(embed, data.action, data.is_first, generator=agent.generator)


def test_bad_batches_are_one_clear_error():
    agent = Agent(preset("debug"), num_actions=3)
    batch = make_batch(2, 4, 3)
    with pytest.raises(BatchError, match="missing \\['reward'\\]"):
        agent.update({k: v for k, v in batch.items() if k != "reward"})
    with pytest.raises(BatchError, match="outside \\[0, 3\\)"):
        agent.update({**batch, "action": batch["action"] + 3})
    with pytest.raises(BatchError, match="uint8"):
        agent.update({**batch, "image": batch["image"].astype(np.float32)})
    with pytest.raises(BatchError, match="shape"):
        agent.update({**batch, "is_first": batch["is_first"][:, :2]})


# ----------------------------------------------------------------------------------------- RSSM
def test_gru_cell_matches_reference_formula():
    torch.manual_seed(0)
    cell = LayerNormGRUCell(3, 4)
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    parts = F.layer_norm(torch.cat([x, h], -1) @ cell.linear.weight.T + cell.linear.bias, (12,),
                         cell.norm.weight, cell.norm.bias, eps=1e-3)
    reset, cand, update = parts[:, :4], parts[:, 4:8], parts[:, 8:]
    reset = torch.sigmoid(reset)
    cand = torch.tanh(reset * cand)
    update = torch.sigmoid(update - 1)
    torch.testing.assert_close(cell(x, h), update * cand + (1 - update) * h)


def test_straight_through_sample_has_gradient_of_probs():
    rssm = RSSM(RSSMConfig(deter=4, hidden=4, stoch=3, classes=5), embed_size=2, action_size=2)
    logits = torch.randn(7, 15, requires_grad=True)
    weights = torch.randn(7, 15)
    sample = rssm.sample(logits, torch.Generator().manual_seed(0))
    assert torch.all(sample.detach().reshape(7, 3, 5).sum(-1).sub(1).abs() < 1e-6)  # one-hot values
    assert set(sample.detach().round().unique().tolist()) <= {0.0, 1.0}
    (grad_sample,) = torch.autograd.grad((sample * weights).sum(), logits)
    probs = torch.softmax(logits.reshape(7, 3, 5), -1).reshape(7, 15)
    (grad_probs,) = torch.autograd.grad((probs * weights).sum(), logits)
    torch.testing.assert_close(grad_sample, grad_probs)


def test_categorical_sampling_frequencies():
    rssm = RSSM(RSSMConfig(deter=4, hidden=4, stoch=1, classes=3), embed_size=2, action_size=2)
    logits = torch.log(torch.tensor([[0.2, 0.3, 0.5]])).expand(20000, 3)
    sample = rssm.sample(logits, torch.Generator().manual_seed(0))
    torch.testing.assert_close(sample.mean(0), torch.tensor([0.2, 0.3, 0.5]), atol=0.015, rtol=0)
    # 32 classes with uneven probabilities, including near-zero ones, as the RSSM has them
    rssm = RSSM(RSSMConfig(deter=4, hidden=4, stoch=2, classes=32), embed_size=2, action_size=2)
    logits = 3 * torch.randn(2, 32, generator=torch.Generator().manual_seed(1))
    probs = torch.softmax(logits, -1)
    sample = rssm.sample(logits.reshape(1, 64).expand(50000, 64), torch.Generator().manual_seed(2))
    frequencies = sample.reshape(50000, 2, 32).mean(0)
    assert torch.all(sample.reshape(50000, 2, 32).sum(-1) == 1)
    torch.testing.assert_close(frequencies, probs, atol=0.01, rtol=0)


def test_kl_balancing_splits_gradients_080_020():
    agent = Agent(preset("debug"), num_actions=2)
    wm = agent.world_model
    post_logits = torch.randn(3, 4, 16, requires_grad=True)
    prior_logits = torch.randn(3, 4, 16, requires_grad=True)
    zeros = torch.zeros(3, 4, 32)
    post, prior = RSSMState(zeros, zeros[..., :16], post_logits), RSSMState(zeros, zeros[..., :16], prior_logits)
    balanced, value = wm.kl_loss(post, prior)
    g_post, g_prior = torch.autograd.grad(balanced, [post_logits, prior_logits])
    plain = wm.rssm.kl(post_logits, prior_logits).mean()
    p_post, p_prior = torch.autograd.grad(plain, [post_logits, prior_logits])
    torch.testing.assert_close(g_prior, 0.8 * p_prior)
    torch.testing.assert_close(g_post, 0.2 * p_post)
    torch.testing.assert_close(balanced, plain)  # same value, only the gradients are split
    # The KL itself against a direct formula, summed over the 4 variables.
    p = torch.softmax(post_logits.reshape(3, 4, 4, 4), -1)
    q = torch.softmax(prior_logits.reshape(3, 4, 4, 4), -1)
    torch.testing.assert_close(value, (p * (p.log() - q.log())).sum((-2, -1)))
    # Ablation: no balancing -> plain KL with full gradients both ways.
    unbalanced = Agent(preset("debug", {"ablation": {"kl_balancing": False}}), num_actions=2).world_model
    loss, _ = unbalanced.kl_loss(post, prior)
    u_post, u_prior = torch.autograd.grad(loss, [post_logits, prior_logits])
    torch.testing.assert_close(u_post, p_post)
    torch.testing.assert_close(u_prior, p_prior)


def test_gaussian_kl_matches_torch_distributions():
    rssm = RSSM(RSSMConfig(deter=4, hidden=4, stoch=3), embed_size=2, action_size=2, latent="gaussian")
    a = torch.cat([torch.randn(5, 3), torch.rand(5, 3) + 0.1], -1)
    b = torch.cat([torch.randn(5, 3), torch.rand(5, 3) + 0.1], -1)
    normal = lambda s: torch.distributions.Normal(s[:, :3], s[:, 3:])  # noqa: E731
    expected = torch.distributions.kl_divergence(normal(a), normal(b)).sum(-1)
    torch.testing.assert_close(rssm.kl(a, b), expected)
    torch.testing.assert_close(rssm.entropy(a), normal(a).entropy().sum(-1))


def test_observe_resets_state_at_is_first():
    """A sequence restarted by is_first gives the same posterior as the same steps on their own."""
    agent = Agent(preset("debug"), num_actions=3)
    first = make_batch(1, 6, 3, seed=1)
    second = make_batch(1, 4, 3, seed=2)
    joined = {k: np.concatenate([first[k], second[k]], 1) for k in first}  # is_first at step 6
    agent.generator.manual_seed(5)
    with torch.no_grad():
        data = agent.prepare(joined)
        _, embed = agent.world_model.embed(data.image)
        rssm = agent.world_model.rssm
        post, _ = rssm.observe(embed, data.action, data.is_first, generator=agent.generator)
        data2 = agent.prepare(second)
        _, embed2 = agent.world_model.embed(data2.image)
        alone, _ = rssm.observe(embed2, data2.action, data2.is_first, generator=agent.generator)
        # deter does not depend on the samples of the new episode's steps before the reset
        torch.testing.assert_close(post.deter[:, 6], alone.deter[:, 0])
        torch.testing.assert_close(post.stats[:, 6], alone.stats[:, 0])
        # and the same state carried in without the reset flag differs
        no_reset = {**joined, "is_first": np.zeros_like(joined["is_first"])}
        data3 = agent.prepare(no_reset)
        post3, _ = rssm.observe(embed, data3.action, data3.is_first, generator=agent.generator)
        assert not torch.allclose(post3.deter[:, 6], alone.deter[:, 0])


def test_policy_step_resets_rows_where_is_first():
    agent = Agent(preset("debug"), num_actions=3)
    image = make_batch(2, 1, 3)["image"][:, 0]
    _, state = agent.policy_step(image, np.array([True, True]), None)
    _, state = agent.policy_step(image, np.array([False, False]), state)
    latent, last = state
    _, reset_state = agent.policy_step(image, np.array([True, False]), state)
    fresh = agent.initial_policy_state(2)
    # the reset row's new deter equals stepping from the zero state with a zero action
    with torch.no_grad():
        _, embed = agent.world_model.embed(torch.from_numpy(image))
        post, _ = agent.world_model.rssm.obs_step(fresh[0], fresh[1], embed, torch.tensor([True, True]))
    torch.testing.assert_close(reset_state[0].deter[0], post.deter[0])
    assert not torch.allclose(reset_state[0].deter[1], post.deter[1])


# ---------------------------------------------------------------------------- optimiser, target
def test_weight_decay_multiplies_by_one_minus_wd_each_step():
    layer = nn.Linear(3, 2)
    before = [p.detach().clone() for p in layer.parameters()]
    optimizer = Optimizer(layer.parameters(), OptimConfig(lr=1e-2, weight_decay=1e-6))
    loss = (layer.weight * 0).sum() + (layer.bias * 0).sum()  # zero gradients: Adam moves nothing
    optimizer.step(loss)
    for old, new in zip(before, layer.parameters()):
        torch.testing.assert_close(new.detach(), old * (1 - 1e-6), rtol=0, atol=1e-12)


def test_gradient_clipping_to_global_norm():
    layer = nn.Linear(2, 1, bias=False)
    optimizer = Optimizer(layer.parameters(), OptimConfig(lr=1.0, clip=1.0, weight_decay=0.0))
    norm = optimizer.step((layer.weight * torch.tensor([[300.0, 400.0]])).sum())
    assert norm.item() == pytest.approx(500.0)


def test_target_critic_copied_exactly_every_100_updates():
    agent = Agent(preset("debug"), num_actions=2)
    ac = agent.actor_critic
    agent.train_behaviour(make_batch(1, 2, 2))  # a real update: copies after update 0 (published)
    assert agent.behaviour_updates == 1
    assert all(torch.equal(t, c) for t, c in zip(ac.target_critic.parameters(), ac.critic.parameters()))
    changed_at = []
    for update in range(2, 303):
        with torch.no_grad():  # stand-in for a critic step: the critic changes every update
            for p in ac.critic.parameters():
                p.add_(0.01)
        previous = [p.clone() for p in ac.target_critic.parameters()]
        ac.update_target()
        current = list(ac.target_critic.parameters())
        if any(not torch.equal(a, b) for a, b in zip(previous, current)):
            changed_at.append(update)
            assert all(torch.equal(t, c) for t, c in zip(current, ac.critic.parameters()))
    assert changed_at == [101, 201, 301]


# ----------------------------------------------------------------------------- ablation switches
def wm_gradients(config: AgentConfig, loss_key: str) -> dict[str, float]:
    """Gradient norm of one world-model loss term w.r.t. each module."""
    agent = Agent(config, num_actions=3)
    data = agent.prepare(make_batch(2, 4, 3))
    wm = agent.world_model
    output = wm.loss(data, generator=agent.generator)
    term = output.metrics[loss_key]
    modules = {"encoder": wm.encoder, "rssm": wm.rssm, "decoder": wm.decoder, "discount_head": wm.discount_head}
    if wm.reward_head is not None:
        modules["reward_head"] = wm.reward_head
    norms = {}
    for name, module in modules.items():
        grads = torch.autograd.grad(term, list(module.parameters()), retain_graph=True, allow_unused=True)
        norms[name] = sum(float(g.norm()) for g in grads if g is not None)
    return norms


def test_image_gradient_switch():
    full = wm_gradients(preset("debug"), "wm/image_nll")
    assert full["encoder"] > 0 and full["rssm"] > 0 and full["decoder"] > 0
    ablated = wm_gradients(preset("debug", {"ablation": {"image_grad": False}}), "wm/image_nll")
    assert ablated["encoder"] == 0 and ablated["rssm"] == 0 and ablated["decoder"] > 0


def test_reward_gradient_switch_and_reward_free_agent():
    full = wm_gradients(preset("debug"), "wm/reward_nll")
    assert full["encoder"] > 0 and full["rssm"] > 0 and full["reward_head"] > 0
    ablated = wm_gradients(preset("debug", {"ablation": {"reward_grad": False}}), "wm/reward_nll")
    assert ablated["encoder"] == 0 and ablated["rssm"] == 0 and ablated["reward_head"] > 0
    # no reward head at all: reward-free batches train the world model; behaviour is refused
    agent = Agent(preset("debug", {"ablation": {"reward": "absent"}}), num_actions=3)
    assert agent.world_model.reward_head is None
    metrics = agent.train_world_model(make_batch(2, 4, 3, reward=False))
    assert "wm/reward_nll" not in metrics and np.isfinite(metrics["wm/loss"])
    with pytest.raises(ValueError, match="no reward head"):
        agent.train_behaviour(make_batch(2, 4, 3, reward=False))


def test_gaussian_latent_switch():
    agent = Agent(preset("debug", {"ablation": {"latent": "gaussian"}}), num_actions=3)
    rssm = agent.world_model.rssm
    assert rssm.stoch_size == 4 and rssm.stats_size == 8 and rssm.feature_size == 36
    metrics = agent.update(make_batch(2, 5, 3))
    assert np.isfinite(metrics["wm/loss"]) and np.isfinite(metrics["actor/loss"])
    post, _ = observe(agent, make_batch(2, 5, 3))
    assert torch.all(post.stats[..., 4:] >= 0.1)  # std = softplus + 0.1


def test_dynamics_backpropagation_mix_reaches_the_actor_through_the_model():
    """rho < 1: the lambda-return's gradient flows through straight-through actions into the actor."""
    config = preset("debug", {"behaviour": {"reinforce_fraction": 0.0, "entropy_scale": 0.0}})
    agent = Agent(config, num_actions=3)
    data = agent.prepare(make_batch(2, 3, 3))
    post, _ = observe(agent, make_batch(2, 3, 3))
    start = post.map(lambda x: x.reshape(-1, x.shape[-1]))
    actor_loss, _, _ = agent.actor_critic.losses(agent.world_model, start, data.is_terminal.reshape(-1), agent.generator)
    grads = torch.autograd.grad(actor_loss, list(agent.actor_critic.actor.parameters()))
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # and the world model gets no optimiser step from it
    before = [p.clone() for p in agent.world_model.parameters()]
    agent.train_behaviour(make_batch(2, 3, 3))
    assert all(torch.equal(a, b) for a, b in zip(before, agent.world_model.parameters()))


def test_config_validation_and_presets():
    from dreamer_pipeline.models.config_schema import ConfigError

    assert preset("atari") == AgentConfig()
    small = preset("small")
    assert small.world_model.rssm.deter == 128 and small.world_model.encoder.depth == 8
    with pytest.raises(ConfigError, match="kl_balance"):
        preset("atari", {"world_model": {"kl_balance": 1.5}})
    with pytest.raises(ConfigError, match="unknown configuration key"):
        preset("atari", {"world_model": {"deter": 3}})
    with pytest.raises(ConfigError, match="latent"):
        preset("atari", {"ablation": {"latent": "beta"}})
    with pytest.raises(ConfigError, match="unknown agent preset"):
        preset("huge")
    assert MLPConfig().layers == 4


@pytest.mark.parametrize("kernel,size", [(5, 5), (6, 13), (6, 30), (4, 7)])
def test_transposed_convolution_by_phases_matches_torch(kernel, size):
    from dreamer_pipeline.models.networks import conv_transpose_by_phases

    torch.manual_seed(0)
    x, weight, bias = torch.randn(2, 3, size, size), torch.randn(3, 2, kernel, kernel), torch.randn(2)
    expected = F.conv_transpose2d(x, weight, bias, stride=2)
    torch.testing.assert_close(conv_transpose_by_phases(x, weight, bias), expected, rtol=1e-4, atol=1e-4)


def test_observe_equals_a_loop_of_obs_steps():
    """The batched `observe` (hoisted matmuls, prior head after the loop) is the published
    step-by-step filter. Samples are drawn in another order, so the reference loop is fed
    observe's own posterior samples and the states and distributions are compared exactly."""
    agent = Agent(preset("debug"), num_actions=3)
    batch = make_batch(2, 5, 3)
    batch["is_first"][1, 3] = True
    data = agent.prepare(batch)
    rssm = agent.world_model.rssm
    with torch.no_grad():
        _, embed = agent.world_model.embed(data.image)
        post, prior = rssm.observe(embed, data.action, data.is_first, generator=torch.Generator().manual_seed(0))
        generator, state = torch.Generator().manual_seed(0), rssm.initial(2)
        for t in range(5):
            state, step_prior = rssm.obs_step(state, data.action[:, t], embed[:, t], data.is_first[:, t], generator)
            for ours, reference in ((post, state), (prior, step_prior)):
                torch.testing.assert_close(ours.deter[:, t], reference.deter, rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(ours.stats[:, t], reference.stats, rtol=1e-5, atol=1e-5)
            state = RSSMState(state.deter, post.stoch[:, t], state.stats)
    for states in (post, prior):  # one-hot samples
        assert torch.all(states.stoch.reshape(2, 5, -1, rssm.config.classes).sum(-1) == 1)


def test_onehot_linear_equals_the_dense_layer_with_gradients():
    from dreamer_pipeline.models.networks import MLP

    torch.manual_seed(0)
    mlp = MLP(5 + 3 * 4, 2, MLPConfig(layers=2, units=6))
    dense = torch.randn(7, 5)
    one_hot = F.one_hot(torch.randint(0, 4, (7, 3)), 4).float().reshape(7, 12)
    one_hot[2] = 0.0  # an all-zero (reset) latent stays exact
    features = torch.cat([dense, one_hot], -1)
    expected = mlp(features)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), [mlp.layers[0].weight])
    ours = mlp.forward_onehot(dense, one_hot, classes=4)
    (ours_grad,) = torch.autograd.grad(ours.square().sum(), [mlp.layers[0].weight])
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(ours_grad, expected_grad)


# ------------------------------------------------------------------------ initialisation, precision
def test_layers_start_with_keras_defaults():
    """Glorot-uniform kernels and zero biases everywhere (the published code's Keras defaults)."""
    agent = Agent(preset("debug"), num_actions=5)
    layers = [m for module in (agent.world_model, agent.actor_critic) for m in module.modules()
              if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    assert len(layers) > 20
    for layer in layers:
        weight = layer.weight.detach()
        if isinstance(layer, nn.Linear):
            fan_in, fan_out = weight.shape[1], weight.shape[0]
        else:  # Conv2d (out, in, k, k); ConvTranspose2d (in, out, k, k): the sum of the fans is the same
            receptive = weight.shape[2] * weight.shape[3]
            fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        assert weight.abs().max() <= bound + 1e-7, layer
        if weight.numel() >= 500:  # uniform over the whole interval, not a narrower one
            assert weight.abs().max() > 0.95 * bound and abs(weight.std().item() - bound / 3**0.5) < 0.1 * bound
        assert layer.bias is None or torch.count_nonzero(layer.bias) == 0, layer


def test_output_layers_compute_in_fp32_under_bf16_autocast():
    """Latent logits and every head's output stay float32 under bf16 autocast: a value near 300 is
    exact to float32 rounding, where bf16 would round it to a multiple of 2."""
    from dreamer_pipeline.models.networks import MLP

    torch.manual_seed(0)
    critic = MLP(24, 1, MLPConfig(layers=2, units=16))
    with torch.no_grad():
        critic.layers[-1].bias.fill_(300.0)
    x = torch.randn(64, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = critic.layers[:-1](x)
        value = critic(x)
        assert hidden.dtype == torch.bfloat16  # autocast is really on for the hidden layers
    last = critic.layers[-1]
    reference = (hidden.double() @ last.weight.double().T + last.bias.double()).squeeze(-1)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value.double(), reference, rtol=0, atol=1e-4)

    rssm = RSSM(RSSMConfig(deter=8, hidden=8, stoch=2, classes=3), embed_size=6, action_size=2)
    state = rssm.initial(4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        post, prior = rssm.obs_step(state, torch.zeros(4, 2), torch.randn(4, 6), torch.ones(4, dtype=torch.bool))
        seq_post, seq_prior = rssm.observe(torch.randn(4, 3, 6), torch.zeros(4, 3, 2), torch.zeros(4, 3, dtype=torch.bool))
    for states in (post, prior, seq_post, seq_prior):
        assert states.stats.dtype == torch.float32
