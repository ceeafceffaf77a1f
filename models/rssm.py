"""The recurrent state-space model with discrete (or Gaussian) latents (paper Section 2.1).

    recurrent     h_t = GRU(h_{t-1}, ELU(Dense([z_{t-1}, a_t])))       (layer-normed GRU, update bias -1)
    prior         p(z_t | h_t)       = Cat(logits(ELU(Dense(h_t))))
    posterior     q(z_t | h_t, e_t)  = Cat(logits(ELU(Dense([h_t, e_t]))))
    features      concat(h_t, flat(z_t))                                (1624 units at Atari)

z is 32 categorical variables of 32 classes, sampled as one-hot vectors with straight-through
gradients `sample + probs - sg(probs)`. Alignment follows the published code: the action at t
led to the observation at t, and where is_first[t] is set, the previous state and the action are
zeroed before the step, so sequences can cross episode boundaries.

A state is an `RSSMState` of three tensors: `deter` (..., deter), `stoch` (..., stoch * classes)
(flattened one-hots, or Gaussian samples), and `stats` (..., stoch * classes) logits, or
(..., 2 * stoch) mean and std for Gaussian latents.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .config import RSSMConfig
from .networks import autocast_weight, embedding_bags_win, keras_init_, linear_fp32, onehot_linear


class RSSMState(NamedTuple):
    deter: torch.Tensor
    stoch: torch.Tensor
    stats: torch.Tensor

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "RSSMState":
        return RSSMState(fn(self.deter), fn(self.stoch), fn(self.stats))

    def detach(self) -> "RSSMState":
        return self.map(torch.Tensor.detach)


def stack_states(states: list[RSSMState], dim: int) -> RSSMState:
    return RSSMState(*(torch.stack(parts, dim) for parts in zip(*states)))


class ObserveWeights(NamedTuple):
    """The weights `observe_step` uses, sliced (and cast under autocast) once per sequence."""

    stoch: torch.Tensor  # img_in's latent columns (hidden, stoch_size)
    obs: torch.Tensor  # obs_out's deterministic-state columns (hidden, deter)
    cell: torch.Tensor  # the GRU's dense weight


class LayerNormGRUCell(nn.Module):
    """GRU cell whose three gates come from one dense layer followed by layer norm.

    As danijar's `GRUCell(norm=True)`: parts = LayerNorm(Dense([x, h])); reset, cand, update = split;
    reset = sigmoid(reset); cand = tanh(reset * cand); update = sigmoid(update - 1);
    h' = update * cand + (1 - update) * h.
    """

    def __init__(self, input_size: int, size: int, update_bias: float = -1.0):
        super().__init__()
        self.size = size
        self.update_bias = update_bias
        self.linear = nn.Linear(input_size + size, 3 * size)
        self.norm = nn.LayerNorm(3 * size, eps=1e-3)  # Keras LayerNormalization's default epsilon
        keras_init_(self)

    def forward(self, x: torch.Tensor, h: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """`weight` may hold `linear.weight` already cast for a loop (`autocast_weight`)."""
        inputs = torch.cat([x, h], -1)
        dense = self.linear(inputs) if weight is None else F.linear(inputs, weight, self.linear.bias)
        parts = self.norm(dense)
        reset, cand, update = parts.split(self.size, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update + self.update_bias)
        return update * cand + (1 - update) * h


class RSSM(nn.Module):
    """Recurrent state-space model. `observe` filters recorded sequences, `imagine` rolls the prior."""

    def __init__(self, config: RSSMConfig, embed_size: int, action_size: int, latent: str = "categorical"):
        super().__init__()
        if latent not in ("categorical", "gaussian"):
            raise ValueError(f"latent must be 'categorical' or 'gaussian', got {latent!r}")
        self.config = config
        self.latent = latent
        self.discrete = latent == "categorical"
        self.action_size = action_size  # width of the action vector: one-hot n, or A
        self.stoch_size = config.stoch * config.classes if self.discrete else config.stoch
        self.stats_size = config.stoch * config.classes if self.discrete else 2 * config.stoch
        self.feature_size = config.deter + self.stoch_size
        self.img_in = nn.Linear(self.stoch_size + action_size, config.hidden)
        self.cell = LayerNormGRUCell(config.hidden, config.deter)
        self.img_out = nn.Linear(config.deter, config.hidden)
        self.img_stats = nn.Linear(config.hidden, self.stats_size)
        self.obs_out = nn.Linear(config.deter + embed_size, config.hidden)
        self.obs_stats = nn.Linear(config.hidden, self.stats_size)
        keras_init_(self)
        # torch.compile(self.observe_step, fullgraph=True) when runtime.mode compiles (set by the Agent).
        self.compiled_observe_step: Callable | None = None

    # ----------------------------------------------------------------------------------- states
    def initial(self, batch_size: int, device: torch.device | str | None = None) -> RSSMState:
        """The all-zero state of the published code."""
        device = device if device is not None else self.img_in.weight.device
        zeros = lambda n: torch.zeros(batch_size, n, device=device)  # noqa: E731
        return RSSMState(zeros(self.config.deter), zeros(self.stoch_size), zeros(self.stats_size))

    @staticmethod
    def features(state: RSSMState) -> torch.Tensor:
        """concat(h, flat(z)): the model state the heads see."""
        return torch.cat([state.deter, state.stoch], -1)


    # ----------------------------------------------------------------------------- distributions
    def noise(self, lead: tuple[int, ...], device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        """The random numbers one `sample` of stats (*lead, stats_size) consumes: one uniform per
        categorical variable (*lead, stoch, 1), or one standard normal per Gaussian dimension.

        Drawn apart from the sampling arithmetic so that step bodies take them as inputs: an
        explicit generator inside a step would break torch.compile's graph, and drawing them
        just before the step keeps the generator's stream exactly what sampling inside it drew.
        """
        if self.discrete:
            return torch.rand((*lead, self.config.stoch, 1), device=device, generator=generator)
        return torch.randn((*lead, self.config.stoch), device=device, generator=generator)

    def sample(self, stats: torch.Tensor, generator: torch.Generator | None = None, mode: bool = False,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """A latent sample with straight-through (categorical) or reparameterised (Gaussian) gradients.

        `noise` (from `self.noise`) replaces the draw from `generator`."""
        if noise is None and not mode:
            noise = self.noise(stats.shape[:-1], stats.device, generator)
        if self.discrete:
            shape = stats.shape
            logits = stats.float().reshape(*shape[:-1], self.config.stoch, self.config.classes)
            probs = torch.softmax(logits, -1)
            if mode:
                index = logits.argmax(-1)
            else:
                # Inverse CDF: one uniform per variable against the cumulative probabilities,
                # which the straight-through estimator needs anyway. Exact like Gumbel-max, but
                # 1/classes of the random numbers and no logarithms (Gumbel was ~3% of an update).
                below = (probs.cumsum(-1) < noise).sum(-1)
                index = below.clamp_(max=self.config.classes - 1)  # u above a rounded-down total
            one_hot = F.one_hot(index, self.config.classes).to(probs.dtype)
            if not (torch.is_grad_enabled() and logits.requires_grad):
                return one_hot.reshape(shape)  # exactly one-hot where no gradient can flow
            return (one_hot + probs - probs.detach()).reshape(shape)
        mean, std = stats.float().chunk(2, -1)
        if mode:
            return mean
        return mean + std * noise

    def _stats(self, raw: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return raw
        mean, std = raw.chunk(2, -1)
        return torch.cat([mean, F.softplus(std) + self.config.min_std], -1)

    def kl(self, lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        """KL(lhs || rhs) from two `stats` tensors, summed over the latent variables: (...,)."""
        lhs, rhs = lhs.float(), rhs.float()
        if self.discrete:
            shape = (*lhs.shape[:-1], self.config.stoch, self.config.classes)
            log_p = torch.log_softmax(lhs.reshape(shape), -1)
            log_q = torch.log_softmax(rhs.reshape(shape), -1)
            return (log_p.exp() * (log_p - log_q)).sum((-2, -1))
        mean_p, std_p = lhs.chunk(2, -1)
        mean_q, std_q = rhs.chunk(2, -1)
        var_ratio = (std_p / std_q).square()
        kl = 0.5 * (var_ratio + ((mean_p - mean_q) / std_q).square() - 1 - var_ratio.log())
        return kl.sum(-1)

    def entropy(self, stats: torch.Tensor) -> torch.Tensor:
        """Entropy of the latent distribution, summed over variables: (...,)."""
        stats = stats.float()
        if self.discrete:
            log_p = torch.log_softmax(stats.reshape(*stats.shape[:-1], self.config.stoch, self.config.classes), -1)
            return -(log_p.exp() * log_p).sum((-2, -1))
        _, std = stats.chunk(2, -1)
        return (0.5 * torch.log(2 * torch.pi * torch.e * std.square())).sum(-1)

    # ------------------------------------------------------------------------------------- steps
    def action_first_weight(self) -> torch.Tensor:
        """img_in's weight with the action columns first: `onehot_linear`'s layout (dense inputs first).
        A loop computes it once and passes it to every `img_step`."""
        return torch.cat([self.img_in.weight[:, self.stoch_size:], self.img_in.weight[:, : self.stoch_size]], 1)

    def img_step(
        self, state: RSSMState, action: torch.Tensor, generator: torch.Generator | None = None, mode: bool = False,
        noise: torch.Tensor | None = None, action_first: torch.Tensor | None = None,
    ) -> RSSMState:
        """One prior step: (z_{t-1}, h_{t-1}), a_t -> h_t, z_t ~ p(z_t | h_t).

        `noise` replaces the sample's draw from `generator`; `action_first` may hold
        `action_first_weight()` computed once for a loop of steps.
        """
        if (self.discrete and embedding_bags_win(state.stoch.device)
                and not (torch.is_grad_enabled() and state.stoch.requires_grad)):
            # No gradient to the latent: its one-hot share of img_in is a sum of weight columns.
            weight = self.action_first_weight() if action_first is None else action_first
            x = onehot_linear(action, state.stoch, self.config.classes, weight, self.img_in.bias)
        else:
            x = self.img_in(torch.cat([state.stoch, action], -1))
        deter = self.cell(F.elu(x), state.deter)
        stats = self._stats(linear_fp32(self.img_stats, F.elu(self.img_out(deter))))
        return RSSMState(deter, self.sample(stats, generator, mode, noise), stats)

    def obs_step(
        self, state: RSSMState, action: torch.Tensor, embed: torch.Tensor, is_first: torch.Tensor,
        generator: torch.Generator | None = None, mode: bool = False,
    ) -> tuple[RSSMState, RSSMState]:
        """One filtering step for acting: resets rows where is_first, then prior and posterior."""
        keep = (~is_first).to(state.deter.dtype).unsqueeze(-1)
        state = state.map(lambda x: x * keep)
        prior = self.img_step(state, action * keep, generator, mode=mode)
        hidden = F.elu(self.obs_out(torch.cat([prior.deter, embed], -1)))
        stats = self._stats(linear_fp32(self.obs_stats, hidden))
        return RSSMState(prior.deter, self.sample(stats, generator, mode), stats), prior

    def observe(
        self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor,
        state: RSSMState | None = None, generator: torch.Generator | None = None,
    ) -> tuple[RSSMState, RSSMState]:
        """Filter a batch of sequences: posterior and prior states, each stacked as (B, T, ...).

        embed (B, T, E), action (B, T, A) one-hot float (the action that led to step t),
        is_first (B, T) bool. `state` is the state before step 0 (zeros if None). Where is_first[t]
        is set, the carried state and a_t are zeroed first, as the published code does.

        The parts of the dense layers that depend only on the inputs (the embedding's share of the
        posterior layer, the action's share of img_in) are computed for all T steps in one matmul;
        the loop over T runs only the GRU and the small heads.
        """
        batch, length = action.shape[:2]
        if state is None:
            state = self.initial(batch, embed.device)
        keep = (~is_first.bool()).to(embed.dtype).unsqueeze(-1)  # (B, T, 1)
        deter_size = self.config.deter
        action_in = F.linear(action * keep, self.img_in.weight[:, self.stoch_size :], self.img_in.bias)
        embed_in = F.linear(embed, self.obs_out.weight[:, deter_size:], self.obs_out.bias)
        obs_weight = self.obs_out.weight[:, :deter_size]
        # unbind, not x[:, t]: the backward of one unbind stacks T gradients once, where T
        # selects would each scatter into a zero (B, T, ...) tensor and accumulate (O(T^2)).
        keeps, action_ins, embed_ins = keep.unbind(1), action_in.unbind(1), embed_in.unbind(1)
        weights = ObserveWeights(autocast_weight(self.img_in.weight[:, : self.stoch_size]),
                                 autocast_weight(obs_weight), autocast_weight(self.cell.linear.weight))
        step = self.observe_step if self.compiled_observe_step is None else self.compiled_observe_step
        deter, stoch = state.deter, state.stoch
        deters, stochs, stats_list = [], [], []
        for t in range(length):
            noise = self.noise((batch,), embed.device, generator)
            deter, stoch, stats = step(deter, stoch, keeps[t], action_ins[t], embed_ins[t], noise, weights)
            deters.append(deter)
            stochs.append(stoch)
            stats_list.append(stats)
        deter = torch.stack(deters, 1)
        post = RSSMState(deter, torch.stack(stochs, 1), torch.stack(stats_list, 1))
        # The prior p(z_t | h_t) is not needed inside the loop (the next step uses the
        # posterior), so its head runs once on all B * T states.
        prior_stats = self._stats(linear_fp32(self.img_stats, F.elu(self.img_out(deter))))
        prior = RSSMState(deter, self.sample(prior_stats, generator), prior_stats)
        return post, prior

    def observe_step(
        self, deter: torch.Tensor, stoch: torch.Tensor, keep: torch.Tensor, action_in: torch.Tensor,
        embed_in: torch.Tensor, noise: torch.Tensor, weights: ObserveWeights,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The body of `observe`'s loop, one step for the whole batch: (deter, stoch, stats).

        keep (B, 1) zeroes the carried state where is_first; action_in and embed_in are the
        hoisted input shares of step t; `noise` comes from `self.noise`. A pure function of
        tensors with no generator, no host synchronisation and no data-dependent control flow, so
        torch.compile(fullgraph=True) traces it whole and a CUDA graph can capture it.
        """
        deter, stoch = deter * keep, stoch * keep
        x = F.linear(stoch, weights.stoch) + action_in
        deter = self.cell(F.elu(x), deter, weights.cell)
        hidden = F.elu(F.linear(deter, weights.obs) + embed_in)
        stats = self._stats(linear_fp32(self.obs_stats, hidden))
        return deter, self.sample(stats, noise=noise), stats

    def rollout(self, start: RSSMState, actions: torch.Tensor, generator: torch.Generator | None = None) -> RSSMState:
        """Open-loop prior rollout with given actions (B, K, A) from `start` (B, ...): (B, K, ...)."""
        states, state = [], start
        for t in range(actions.shape[1]):
            state = self.img_step(state, actions[:, t], generator)
            states.append(state)
        return stack_states(states, 1)
