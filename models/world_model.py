"""The world model and its loss (paper Section 2.1, Eq. 2):

    loss = image_scale * image_nll + reward_scale * reward_nll + discount_scale * discount_nll
           + kl_scale * kl_balanced                                   (1, 1, 5, 0.1 at Atari)

    image_nll     unit-variance Gaussian on pixels in x / 255 - 0.5, summed over pixels
                  (the constant 0.5 * log(2 pi) per pixel is dropped)
    reward_nll    unit-variance Gaussian on tanh(reward): 0.5 * (r_hat - tanh(r))^2 (constant dropped);
                  on the reward itself with `reward_transform: identity` (the Control Suite);
                  with `reward_head_dist: symlog_twohot` (DreamerV3) the two-hot cross-entropy of
                  symlog of the same target, r_hat the head's symexp'd bin mean (`scalar_dists.py`)
    discount_nll  Bernoulli with logits, soft label discount * (1 - is_terminal); absent with
                  `predict_discount: false` (no discount head; imagination uses the constant gamma)
    kl_balanced   alpha * KL(sg(post) || prior) + (1 - alpha) * KL(post || sg(prior)), alpha = 0.8,
                  each KL summed over the latent variables

Every term is averaged over batch and time. The ablation switches (`AblationConfig`) change the
latent type, turn KL balancing off (plain KL(post || prior)), stop image or reward gradients from
reaching the representation, or remove the reward head for reward-free data. Actions enter the
RSSM as float vectors: one-hot for discrete actions, the action itself for continuous ones.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .config import AblationConfig, WorldModelConfig
from .networks import MLP, Decoder, Encoder, image_nll, preprocess_image
from .rssm import RSSM, RSSMState
from .scalar_dists import ScalarDist


class WorldModelBatch(NamedTuple):
    """A batch on the agent's device, batch-major (B, T, ...)."""

    image: torch.Tensor  # uint8 (B, T, 64, 64, C)
    action: torch.Tensor  # float (B, T, A): one-hot (discrete) or the action in [-1, 1] (continuous)
    reward: torch.Tensor | None  # float (B, T) raw, or None for reward-free data
    is_first: torch.Tensor  # bool (B, T)
    is_terminal: torch.Tensor  # bool (B, T)


class WorldModelOutput(NamedTuple):
    loss: torch.Tensor
    post: RSSMState  # (B, T, ...), with gradients
    metrics: dict[str, torch.Tensor]


class WorldModel(nn.Module):
    def __init__(self, config: WorldModelConfig, ablation: AblationConfig, action_size: int, discount: float,
                 channels_last: bool = True):
        super().__init__()
        self.config = config
        self.ablation = ablation
        self.discount = discount
        self.channels_last = channels_last
        self.encoder = Encoder(config.encoder, config.image_channels)
        self.rssm = RSSM(config.rssm, self.encoder.output_size, action_size, ablation.latent)
        feature_size = self.rssm.feature_size
        self.decoder = Decoder(config.decoder, feature_size, config.image_channels)
        self.decoder.channels_last = channels_last
        self.reward_dist = ScalarDist(config.reward_head_dist)
        self.reward_head = (self.reward_dist.head(feature_size, config.reward_head)
                            if ablation.reward == "present" else None)
        self.discount_head = MLP(feature_size, 1, config.discount_head) if config.predict_discount else None
        if channels_last:
            self.encoder.to(memory_format=torch.channels_last)
            self.decoder.to(memory_format=torch.channels_last)

    @property
    def has_reward(self) -> bool:
        return self.reward_head is not None

    def predict_reward(self, features: torch.Tensor) -> torch.Tensor:
        """features (..., F) -> the reward head's prediction (...) in the learned target's units
        (tanh(reward) under `reward_transform: tanh`), for either head distribution."""
        if self.reward_head is None:
            raise ValueError("the world model has no reward head (ablation.reward='absent')")
        return self.reward_dist.mean(self.reward_head(features).float())

    def embed(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (..., 64, 64, C) -> (preprocessed image (N, C, 64, 64), embedding (..., E))."""
        lead = image.shape[:-3]
        x = preprocess_image(image.reshape(-1, *image.shape[-3:]), self.channels_last)
        return x, self.encoder(x).reshape(*lead, -1)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """features (..., F) -> image mean (N, C, 64, 64) in the x / 255 - 0.5 scale."""
        return self.decoder(features.reshape(-1, features.shape[-1]))

    def kl_loss(self, post: RSSMState, prior: RSSMState) -> tuple[torch.Tensor, torch.Tensor]:
        """(balanced KL loss, KL(post || prior) values (B, T)) as the published `kl_loss`."""
        free, alpha = self.config.free_nats, self.config.kl_balance
        over = self.config.free_nats_over
        if over == "auto":  # the published DreamerV2 rule
            over = "batch_mean" if self.ablation.kl_balancing else "element"
        clamp_mean = ((lambda v: v.mean().clamp(min=free)) if over == "batch_mean"
                      else (lambda v: v.clamp(min=free).mean()))
        if not self.ablation.kl_balancing:
            value = self.rssm.kl(post.stats, prior.stats)
            return clamp_mean(value), value
        # alpha of the gradient trains the prior towards the posterior, (1 - alpha) regularises
        # the posterior towards the prior (paper Algorithm 2).
        value_prior = self.rssm.kl(post.stats.detach(), prior.stats)
        value_post = self.rssm.kl(post.stats, prior.stats.detach())
        loss = alpha * clamp_mean(value_prior) + (1 - alpha) * clamp_mean(value_post)
        return loss, value_prior

    def loss(self, data: WorldModelBatch, state: RSSMState | None = None,
             generator: torch.Generator | None = None) -> WorldModelOutput:
        """Filter the batch with the RSSM and compute the world-model loss and its metrics."""
        batch, length = data.action.shape[:2]
        target, embed = self.embed(data.image)
        post, prior = self.rssm.observe(embed, data.action, data.is_first, state, generator)
        kl_loss, kl_value = self.kl_loss(post, prior)
        features = self.rssm.features(post)
        stopped = features.detach()

        mean = self.decode(features if self.ablation.image_grad else stopped)
        image_loss = image_nll(mean, target).mean()

        metrics: dict[str, torch.Tensor] = {}
        loss = self.config.image_scale * image_loss + self.config.kl_scale * kl_loss
        if self.reward_head is not None:
            if data.reward is None:
                raise ValueError("the batch has no 'reward' but the world model has a reward head; "
                                 "use ablation.reward='absent' for reward-free data")
            output = self.reward_head(features if self.ablation.reward_grad else stopped).float()
            target_reward = torch.tanh(data.reward) if self.config.reward_transform == "tanh" else data.reward
            reward_loss = self.reward_dist.nll(output, target_reward).mean()
            loss = loss + self.config.reward_scale * reward_loss
            metrics["wm/reward_nll"] = reward_loss
            if self.reward_dist.twohot:  # in the target's units, comparable with 2 * the Gaussian's nll
                error = self.reward_dist.mean(output.detach()) - target_reward
                metrics["wm/reward_mse"] = error.square().mean()
        discount_metric = {}
        if self.discount_head is not None:
            logits = self.discount_head(features).float()
            label = self.discount * (~data.is_terminal).float()
            discount_loss = F.binary_cross_entropy_with_logits(logits, label)
            loss = loss + self.config.discount_scale * discount_loss
            discount_metric["wm/discount_nll"] = discount_loss

        metrics.update({
            "wm/loss": loss,
            "wm/image_nll": image_loss,
            **discount_metric,
            "wm/kl": kl_value.detach().mean(),
            "wm/kl_loss": kl_loss,
            "wm/prior_entropy": self.rssm.entropy(prior.stats.detach()).mean(),
            "wm/post_entropy": self.rssm.entropy(post.stats.detach()).mean(),
        })
        return WorldModelOutput(loss, post, metrics)
