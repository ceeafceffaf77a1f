"""Actor-critic learned purely in imagination (paper Section 2.2, Eq. 4-6).

From every posterior state of the training batch (B * T starts) the prior is rolled forward for
H = 15 steps with actions sampled from the actor. With the published code's alignment
(`danijar/dreamerv2`, `ActorCritic.actor_loss`, `critic_loss`, `target`), states z_0 .. z_H:

    actions    a_0 = 0, a_{t+1} ~ pi(. | z_t)            for t = 0 .. H-1
    reward     r_t = reward head mean at z_t              (the reward for arriving at z_t)
    discount   d_0 = gamma * (1 - is_terminal) of the start, d_t = sigmoid(discount logits at z_t);
               without a discount head (`predict_discount: false`) d_t = gamma for every t,
               d_0 included (published `imagine` without a discount head)
    weights    w_t = prod_{i<t} d_i                       (w_0 = 1)
    values     v_t = target critic at z_t
    targets    R_t = r_t + d_t ((1 - lambda) v_{t+1} + lambda R_{t+1}),  R_H = v_H,  t = 0 .. H-1
    actor      t = 0 .. H-2, the action a_{t+1} taken in z_t:
               -w_t [rho log pi(a_{t+1} | z_t) sg(R_{t+1} - v_t) + (1 - rho) R_{t+1} + eta H(pi(. | z_t))]
    critic     t = 0 .. H-1:  w_t * 0.5 (critic(z_t) - sg(R_t))^2
               (the published Gaussian NLL with unit variance, its constant dropped)

Two DreamerV3 switches, off by default: `critic_dist: symlog_twohot` makes the critic and its target
copy symlog two-hot heads (v_t their prediction, the critic loss w_t times the two-hot cross-entropy
of sg(R_t); `models/scalar_dists.py`), and `return_norm: percentile` divides the actor's advantage
sg(R_{t+1} - v_t) and its backpropagated R_{t+1} by the return scale S (`returns.ReturnScale`).

Two states are lost at the end: z_H only bootstraps, and the action chosen in z_{H-1} has no
target. The actor is categorical over discrete actions or, for continuous ones, a truncated normal
(DreamerV2) or tanh-normal (DreamerV1) (`models/action_dists.py`). With rho < 1 the actions are
straight-through one-hots or reparameterised continuous samples, so the lambda-return's gradient
reaches the actor through the imagined actions and the frozen world model (dynamics backpropagation;
rho = 0 is the published `actor_grad: dynamics`, which the continuous presets use). The target critic is a hard copy of the critic, made after the first update and then every
`target_update_every` updates (published `update_slow_target`).
"""

from __future__ import annotations

import copy
import torch
from torch import nn
from torch.nn import functional as F

from dreamer_pipeline.datasets.action_space import ActionSpace

from .action_dists import action_noise as continuous_noise, continuous_distribution
from .config import BehaviourConfig, actor_distribution, actor_reinforce_fraction
from .networks import MLP, embedding_bags_win
from .optim import Optimizer
from . import returns
from .returns import ReturnScale, lambda_return, step_weights
from .rssm import RSSMState, stack_states
from .scalar_dists import ScalarDist
from .world_model import WorldModel


def sample_action(logits: torch.Tensor, generator: torch.Generator | None = None,
                  straight_through: bool = False, noise: torch.Tensor | None = None) -> torch.Tensor:
    """A one-hot sample from categorical logits (N, A); straight-through gradients if asked.

    Gumbel-max with one uniform per logit; `noise` (uniforms shaped like `logits`) replaces the
    draw from `generator`."""
    if noise is None:
        noise = torch.rand(logits.shape, device=logits.device, generator=generator)
    noise = noise.clamp(1e-20, 1.0)
    index = (logits.detach() - torch.log(-torch.log(noise))).argmax(-1)
    one_hot = F.one_hot(index, logits.shape[-1]).to(logits.dtype)
    if straight_through:
        probs = torch.softmax(logits, -1)
        one_hot = one_hot + probs - probs.detach()
    return one_hot


class ActorCritic(nn.Module):
    def __init__(self, config: BehaviourConfig, feature_size: int, action_space: ActionSpace | int):
        super().__init__()
        if isinstance(action_space, int):
            action_space = ActionSpace.discrete(action_space)
        self.config = config
        self.action_space = action_space
        self.discrete = action_space.is_discrete
        self.action_size = action_space.size  # one-hot width, or A
        # "auto" resolved for this action space (published actor.dist and actor_grad: auto)
        self.dist_kind = actor_distribution(config, self.discrete)
        self.reinforce_fraction = actor_reinforce_fraction(config, self.discrete)
        # A categorical actor outputs logits; a continuous one a mean part and a std part per dimension.
        self.actor = MLP(feature_size, self.action_size if self.discrete else 2 * self.action_size, config.actor)
        self.critic_dist = ScalarDist(config.critic_dist)
        self.critic = self.critic_dist.head(feature_size, config.critic)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        # The EMA percentiles of the lambda-returns (buffers, in the state dict), if normalising.
        self.return_scale = ReturnScale() if config.return_norm == "percentile" else None
        if self.return_scale is None:
            self.register_load_state_dict_pre_hook(_drop_unused_return_scale)
        self.updates = 0  # behaviour updates made; drives the target copy cadence
        # torch.compile(self.imagine_step, fullgraph=True) when runtime.mode compiles (set by the Agent).
        self.compiled_imagine_step = None

    def make_optimizers(self, capturable: bool = False) -> dict[str, Optimizer]:
        return {
            "actor": Optimizer(self.actor.parameters(), self.config.actor_opt, capturable),
            "critic": Optimizer(self.critic.parameters(), self.config.critic_opt, capturable),
        }

    def update_target(self) -> None:
        """Hard copy critic -> target critic after update 0, 100, 200, ... (published cadence)."""
        if self.updates % self.config.target_update_every == 0:
            with torch.no_grad():
                for target, source in zip(self.target_critic.parameters(), self.critic.parameters()):
                    target.copy_(source)
        self.updates += 1

    def sample_noise(self, lead: tuple[int, ...], generator: torch.Generator | None = None,
                     device: torch.device | None = None) -> torch.Tensor:
        """The random numbers one continuous action sample consumes (uniforms or normals), (*lead, A)."""
        device = device if device is not None else self.critic.layers[0].weight.device
        return continuous_noise(self.dist_kind, (*lead, self.action_size), device, generator)

    def head_function(self, world_model: WorldModel):
        """`head(mlp, features)`: with pure REINFORCE and categorical latents no gradient reaches the
        features, so on the CPU heads take their one-hot share as an embedding bag
        (`MLP.forward_onehot`); elsewhere they are plain dense layers (`embedding_bags_win`)."""
        rssm = world_model.rssm
        dense = not embedding_bags_win(rssm.img_in.weight.device)
        if dense or not rssm.discrete or self.reinforce_fraction < 1.0:
            return lambda mlp, features: mlp(features)
        deter = rssm.config.deter

        def head(mlp: MLP, features: torch.Tensor) -> torch.Tensor:
            return mlp.forward_onehot(features[..., :deter], features[..., deter:], rssm.config.classes)

        return head

    def imagine_step(self, world_model: WorldModel, state: RSSMState, action_noise: torch.Tensor,
                     latent_noise: torch.Tensor, action_first: torch.Tensor | None = None,
                     ) -> tuple[RSSMState, torch.Tensor, torch.Tensor]:
        """The body of the imagination loop: the actor picks a_{t+1} in z_t, the prior steps to
        z_{t+1}. Returns (z_{t+1}, a_{t+1} (one-hot, or the continuous action), the actor's raw
        output at z_t (logits, or the continuous distribution's parameters)).

        The actor sees stopped features (published `policy(tf.stop_gradient(feat))`) and keeps its
        own graph even when the rollout has none. The random numbers come in as tensors (drawn by
        the loop), so the step is a pure function of tensors: torch.compile(fullgraph=True) traces
        it whole and a CUDA graph can capture it.
        """
        dynamics = self.reinforce_fraction < 1.0
        features = world_model.rssm.features(state).detach()
        with torch.enable_grad():
            logits = self.head_function(world_model)(self.actor, features).float()
        if self.discrete:
            action = sample_action(logits, straight_through=dynamics, noise=action_noise)
        else:
            action = continuous_distribution(self.dist_kind, logits, self.config.actor_min_std).sample(action_noise)
            if not dynamics:  # REINFORCE: the action is a stopped sample
                action = action.detach()
        state = world_model.rssm.img_step(state, action, noise=latent_noise, action_first=action_first)
        return state, action, logits

    def imagine(self, world_model: WorldModel, start: RSSMState, generator: torch.Generator | None = None):
        """Roll out H steps from `start` (N, ...). Returns (features (H+1, N, F), actions (H+1, N, A),
        actor logits (H, N, A) for z_0 .. z_{H-1}, with gradients into the actor only).

        States z_0 .. z_H with z_0 = start; actions[0] is zeros and actions[t + 1] was chosen in
        z_t and led to z_{t+1} (published alignment). Each step draws its action's uniforms, then
        its latent's, from `generator`: the order in which sampling inside the step drew them.
        """
        dynamics = self.reinforce_fraction < 1.0
        rssm = world_model.rssm
        step = self.imagine_step if self.compiled_imagine_step is None else self.compiled_imagine_step
        count, device = start.deter.shape[0], start.deter.device
        states, actions, logits_seen = [start], [], []
        # Pure REINFORCE needs no gradients through the model, so the rollout runs without a graph.
        with torch.set_grad_enabled(dynamics):
            bags = rssm.discrete and not dynamics and embedding_bags_win(device)
            action_first = rssm.action_first_weight() if bags else None  # img_in's layout for the bags
            state = start
            for _ in range(self.config.horizon):
                if self.discrete:
                    action_noise = torch.rand((count, self.action_size), device=device, generator=generator)
                else:
                    action_noise = self.sample_noise((count,), generator, device)
                latent_noise = rssm.noise((count,), device, generator)
                state, action, logits = step(world_model, state, action_noise, latent_noise, action_first)
                states.append(state)
                actions.append(action)
                logits_seen.append(logits)
            actions.insert(0, torch.zeros_like(actions[0]))
            features = rssm.features(stack_states(states, 0))
        return features, torch.stack(actions, 0), torch.stack(logits_seen, 0)

    def losses(self, world_model: WorldModel, start: RSSMState, is_terminal: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(actor loss, critic loss, metrics) from imagination starting at every state of `start`.

        start: posterior states flattened to (N, ...), detached; is_terminal: (N,) of the starts.
        """
        if world_model.reward_head is None:
            raise ValueError("the world model has no reward head (ablation.reward='absent'): "
                             "the actor-critic needs rewards to learn from")
        config = self.config
        dynamics = self.reinforce_fraction < 1.0
        features, actions, logits = self.imagine(world_model, start, generator)
        head = self.head_function(world_model)
        with torch.set_grad_enabled(dynamics):
            # r_H and d_H are never used (z_H only bootstraps), and d_0 is the true discount from
            # the replay (published `imagine`), so the heads skip those states.
            reward = world_model.reward_dist.mean(head(world_model.reward_head, features[:-1]).float())
            if world_model.discount_head is not None:
                discount = torch.sigmoid(head(world_model.discount_head, features[1:-1]).float())
                true_first = config.discount * (~is_terminal.bool()).float()
                discount = torch.cat([true_first.unsqueeze(0), discount], 0)  # d_0 .. d_{H-1}
            else:  # the constant gamma at every step (published `imagine` without a discount head)
                discount = torch.full_like(reward, config.discount)
            weight = step_weights(discount).detach()  # w_0 .. w_{H-1}
            value = self.critic_dist.mean(head(self.target_critic, features).float())  # v_0 .. v_H
            target = lambda_return(reward, value[:-1], discount, value[-1], config.return_lambda)
        scale = self.return_scale(target) if self.return_scale is not None else None

        # t = 0 .. H-2: the action a_{t+1} chosen in z_t, its target R_{t+1}, baseline v(z_t).
        if self.discrete:
            actor_loss, entropy, advantage = returns.actor_loss(
                logits[:-1], actions[1:-1], target[1:], value[:-2], weight[:-1], config.entropy_scale,
                self.reinforce_fraction, scale)
        else:
            policy = continuous_distribution(self.dist_kind, logits[:-1], config.actor_min_std)
            log_prob = policy.log_prob(actions[1:-1].detach()) if self.reinforce_fraction > 0 else None
            actor_loss, entropy, advantage = returns.policy_loss(
                log_prob, policy.entropy(), target[1:], value[:-2], weight[:-1], config.entropy_scale,
                self.reinforce_fraction, scale)
        output = head(self.critic, features[:-1].detach()).float()
        critic_loss = returns.critic_loss(output, target, weight, self.critic_dist)
        prediction = self.critic_dist.mean(output.detach())

        metrics = {
            "actor/loss": actor_loss.detach(),
            "actor/entropy": entropy.detach().mean(),
            "actor/advantage": advantage.mean(),
            "actor/imagined_reward": reward.detach().mean(),
            "actor/imagined_discount": discount.detach().mean(),
            "critic/loss": critic_loss.detach(),
            "critic/value": prediction.detach().mean(),
            "critic/target": target.detach().mean(),
            "critic/target_critic_value": value.detach().mean(),
        }
        if scale is not None:
            metrics["actor/return_scale"] = scale
        return actor_loss, critic_loss, metrics


def _drop_unused_return_scale(module, state_dict, prefix, *_) -> None:
    """A state dict written with `return_norm: percentile` loads into an actor-critic without it (the
    switch is no architecture field): its return-scale EMAs are dropped, not an error. (Their
    absence in the other direction is `ReturnScale`'s to forgive.)"""
    for key in [key for key in state_dict if key.startswith(prefix + "return_scale.")]:
        del state_dict[key]
