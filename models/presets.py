"""The agent presets: plain overrides of `models.config.AgentConfig`'s defaults (the paper's Atari
setting), each value with its source. Pure data; `models.config.preset(name)` applies them.

Sources:
- DreamerV2: `danijar/dreamerv2`, `dreamerv2/configs.yaml` (sections `defaults`, `atari`,
  `dmc_vision`), `agent.py`, `common/nets.py`; "Mastering Atari with Discrete World Models"
  (Hafner et al., ICLR 2021).
- DreamerV1: `danijar/dreamer`, `dreamer.py` (`define_config`, `Dreamer._train`,
  `_build_model`), `models.py`, `tools.py`; "Dream to Control: Learning Behaviors by Latent
  Imagination" (Hafner et al., ICLR 2020). docs/agent.md tabulates what differs between presets.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["PRESETS", "PIPELINE_KEYS"]

SMALL = {
    # The same structure as `atari` (4 convs, GRU + layer norm, categorical latents) at widths a
    # 2-core CPU trains: a full update at B=16, T=50 took 0.88 s with 2 threads (1.25 s with one)
    # against 1.43 s for depth 16 / 200 units, measured side by side (docs/agent.md, Speed).
    "world_model": {
        "encoder": {"depth": 8},
        "decoder": {"depth": 8},
        "rssm": {"deter": 128, "hidden": 128, "stoch": 16, "classes": 16},
        "reward_head": {"layers": 2, "units": 128},
        "discount_head": {"layers": 2, "units": 128},
    },
    "behaviour": {"actor": {"layers": 2, "units": 128}, "critic": {"layers": 2, "units": 128}},
}

DEBUG = {
    # Tiny, for tests: every code path, a few thousand parameters per module.
    "world_model": {
        "encoder": {"depth": 4},
        "decoder": {"depth": 4},
        "rssm": {"deter": 32, "hidden": 32, "stoch": 4, "classes": 4},
        "reward_head": {"layers": 2, "units": 32},
        "discount_head": {"layers": 2, "units": 32},
        "opt": {"lr": 1e-3},
    },
    "behaviour": {
        "horizon": 5,
        "actor": {"layers": 2, "units": 32},
        "critic": {"layers": 2, "units": 32},
        "actor_opt": {"lr": 1e-3},
        "critic_opt": {"lr": 1e-3},
    },
}

# DreamerV2 on the Control Suite from pixels: configs.yaml `defaults` overridden by `dmc_vision`.
# Everything not set here is already the `defaults` value in AgentConfig (encoder depth 48 with
# kernels 4-4-4-4, decoder 48 with 5-5-6-6, 32 x 32 categorical latents, MLPs 4 x 400 ELU, KL
# balance 0.8, Adam eps 1e-5, clip 100, wd 1e-6, lambda 0.95, horizon 15, slow target every 100).
# Pipeline-level keys of the same section (the pipeline's config file, not the agent's):
# action_repeat 2, prefill 1000, pretrain 100, train_every 5 (defaults), dataset batch 16 x
# length 50 (defaults), replay.prioritize_ends False, eval_every 1e4, the 64x64 RGB images
# (render_size, dmc_camera -1), expl_noise / eval_noise 0 and eval_state_mean False (defaults).
DMC_VISION = {
    "world_model": {
        "image_channels": 3,  # RGB (render_size [64, 64], atari_grayscale applies to Atari only)
        "rssm": {"deter": 200, "hidden": 200, "stoch": 32, "classes": 32},  # rssm: {hidden: 200, deter: 200}
        "kl_scale": 1.0,  # loss_scales.kl 1.0 (defaults; only `atari` sets 0.1)
        "kl_balance": 0.8,  # kl.balance 0.8 (defaults)
        "free_nats": 1.0,  # kl.free 1.0 (dmc_vision), with kl.free_avg True (defaults)
        "predict_discount": False,  # pred_discount: False
        "reward_transform": "identity",  # clip_rewards: identity
        "image_scale": 1.0, "reward_scale": 1.0,  # loss_scales defaults; grad_heads [decoder, reward]
        "opt": {"lr": 3e-4},  # model_opt.lr 3e-4
    },
    "behaviour": {
        "discount": 0.99,  # discount 0.99 (defaults; `atari` sets 0.999)
        "return_lambda": 0.95,  # discount_lambda
        "horizon": 15,  # imag_horizon
        "entropy_scale": 1e-4,  # actor_ent 1e-4
        "actor_dist": "trunc_normal",  # actor.dist auto -> trunc_normal for continuous actions
        "actor_min_std": 0.1,  # actor.min_std 0.1
        "reinforce_fraction": 0.0,  # actor_grad auto -> dynamics for continuous actions
        "target_update_every": 100,  # slow_target_update 100, slow_target_fraction 1
        "actor_opt": {"lr": 8e-5},  # actor_opt.lr 8e-5
        "critic_opt": {"lr": 8e-5},  # critic_opt.lr 8e-5
    },
    "ablation": {"latent": "categorical", "kl_balancing": True, "image_grad": True, "reward_grad": True},
}

# DreamerV1 (danijar/dreamer, dreamer.py `define_config`). What our agent cannot express is listed
# in docs/agent.md (plain GRU instead of the layer-normed one, ReLU instead of ELU in the conv
# stacks, the critic's regression also on the start state).
# Pipeline-level keys: action_repeat 2, batch 50 x length 50, train_every 1000 with train_steps
# 100, pretrain 100, prefill 5000, time_limit 1000.
DREAMERV1 = {
    "world_model": {
        "image_channels": 3,
        "encoder": {"depth": 32},  # cnn_depth 32 (kernels 4 stride 2: ConvEncoder)
        "decoder": {"depth": 32},  # cnn_depth 32 (dense 32 * depth, kernels 5, 5, 6, 6: ConvDecoder)
        "rssm": {"deter": 200, "hidden": 200, "stoch": 30, "min_std": 0.1},  # deter_size 200, stoch_size 30, RSSM(hidden=deter); std softplus + 0.1
        "reward_head": {"layers": 2, "units": 400},  # DenseDecoder((), 2, num_units 400)
        "kl_scale": 1.0,  # kl_scale 1.0
        "free_nats": 3.0,  # free_nats 3.0
        "free_nats_over": "batch_mean",  # max(reduce_mean(KL), free_nats)
        "predict_discount": False,  # pcont False
        "reward_transform": "identity",  # clip_rewards 'none'
        "image_scale": 1.0, "reward_scale": 1.0,  # model_loss = kl_scale * div - sum(likes)
        "opt": {"lr": 6e-4, "eps": 1e-7, "clip": 100.0, "weight_decay": 0.0},  # model_lr; tf Adam eps 1e-7; weight_decay 0
    },
    "behaviour": {
        "discount": 0.99,  # discount
        "return_lambda": 0.95,  # disclam
        "horizon": 15,  # horizon
        "entropy_scale": 0.0,  # no entropy term: actor_loss = -mean(discount * returns)
        "reinforce_fraction": 0.0,  # dynamics backpropagation only
        "actor_dist": "tanh_normal",  # action_dist tanh_normal (init_std 5, mean_scale 5)
        "actor_min_std": 1e-4,  # ActionDecoder(min_std=1e-4)
        "action_noise": 0.3,  # expl 'additive_gaussian', expl_amount 0.3
        "target_update_every": 1,  # no target network: the lambda-returns use the current value net
        "actor": {"layers": 4, "units": 400},  # ActionDecoder(actdim, 4, 400)
        "critic": {"layers": 3, "units": 400},  # DenseDecoder((), 3, 400)
        "actor_opt": {"lr": 8e-5, "eps": 1e-7, "clip": 100.0, "weight_decay": 0.0},  # actor_lr
        "critic_opt": {"lr": 8e-5, "eps": 1e-7, "clip": 100.0, "weight_decay": 0.0},  # value_lr
    },
    "ablation": {"latent": "gaussian", "kl_balancing": False},  # Gaussian latents; plain KL(post || prior)
}

PRESETS: dict[str, Mapping[str, Any]] = {
    "atari": {}, "small": SMALL, "debug": DEBUG, "dmc_vision": DMC_VISION, "dreamerv1": DREAMERV1,
}

# The published keys of each continuous preset that are the pipeline's, not the agent's (the
# lead's pipeline configuration files carry them).
PIPELINE_KEYS: dict[str, Mapping[str, Any]] = {
    "dmc_vision": {"action_repeat": 2, "prefill": 1000, "pretrain": 100, "train_every": 5,
                   "batch": 16, "length": 50, "prioritize_ends": False},
    "dreamerv1": {"action_repeat": 2, "prefill": 5000, "pretrain": 100, "train_every": 1000,
                  "train_steps": 100, "batch": 50, "length": 50, "time_limit": 1000},
}
