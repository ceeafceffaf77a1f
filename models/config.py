"""Typed configuration of the DreamerV2 agent: the dataclasses are the schema and the defaults.

The defaults are the paper's Atari configuration ("Mastering Atari with Discrete World Models",
Hafner et al. 2021, Appendix / the published `configs.yaml`, section `atari`). `preset(name)`
returns `atari` (the paper), `small` (a CPU-sized agent with the same structure) or `debug` (tiny,
for tests). YAML files override fields through `models.config_schema.override`, which rejects
unknown or ill-typed keys; every dataclass here also has a `validate()` that raises `ValueError`
for values that are well typed but meaningless (negative sizes, a KL balance outside [0, 1], ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from .config_schema import ConfigError, override, to_dict

__all__ = [
    "AblationConfig",
    "AgentConfig",
    "BehaviourConfig",
    "ConvConfig",
    "MLPConfig",
    "OptimConfig",
    "RSSMConfig",
    "RuntimeConfig",
    "WorldModelConfig",
    "PRESETS",
    "preset",
    "ARCHITECTURE_FIELDS",
]


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


@dataclass(frozen=True)
class ConvConfig:
    """A convolutional stack (the image encoder or decoder)."""

    depth: int = 48
    """Channel multiplier. Encoder channels are depth * (1, 2, 4, 8); the decoder starts from a
    dense layer of 32 * depth units and uses depth * (4, 2, 1) channels before the image."""
    kernels: tuple[int, ...] = (4, 4, 4, 4)
    """Kernel size of each layer; all layers have stride 2 and no padding. The encoder uses
    (4, 4, 4, 4) (64 -> 31 -> 14 -> 6 -> 2) and the decoder (5, 5, 6, 6) (1 -> 5 -> 13 -> 30 -> 64)."""

    def validate(self) -> None:
        _positive("depth", self.depth)
        if len(self.kernels) != 4 or any(k <= 0 for k in self.kernels):
            raise ValueError(f"kernels must be four positive sizes, got {list(self.kernels)}")


@dataclass(frozen=True)
class MLPConfig:
    """A multi-layer perceptron head: `layers` dense layers of `units` ELU units, then the output."""

    layers: int = 4
    units: int = 400

    def validate(self) -> None:
        _positive("layers", self.layers)
        _positive("units", self.units)


@dataclass(frozen=True)
class RSSMConfig:
    """The recurrent state-space model (paper Section 2.1)."""

    deter: int = 600
    """Size h of the deterministic GRU state."""
    hidden: int = 600
    """Width of the hidden layers around the GRU (img_in, prior and posterior MLPs)."""
    stoch: int = 32
    """Number of stochastic latent variables (32 categoricals; for Gaussian latents, 32 dimensions)."""
    classes: int = 32
    """Classes per categorical variable (ignored for Gaussian latents)."""
    min_std: float = 0.1
    """Gaussian latents only: std = softplus(raw) + min_std."""

    def validate(self) -> None:
        for name in ("deter", "hidden", "stoch", "classes"):
            _positive(name, getattr(self, name))
        _positive("min_std", self.min_std)


@dataclass(frozen=True)
class OptimConfig:
    """Adam with gradient clipping and decoupled weight decay (published `common.Optimizer`)."""

    lr: float = 2e-4
    eps: float = 1e-5
    clip: float = 100.0
    """Global gradient-norm clip (0 disables clipping)."""
    weight_decay: float = 1e-6
    """Decoupled decay: every step multiplies every parameter by (1 - weight_decay), before the Adam
    update, independent of the learning rate (published code; not AdamW's lr * wd)."""

    def validate(self) -> None:
        _positive("lr", self.lr)
        _positive("eps", self.eps)
        _non_negative("clip", self.clip)
        if not 0.0 <= self.weight_decay < 1.0:
            raise ValueError(f"weight_decay must lie in [0, 1), got {self.weight_decay!r}")


@dataclass(frozen=True)
class WorldModelConfig:
    """Encoder, RSSM, decoder, reward and discount heads, and their loss (paper Eq. 2)."""

    image_channels: int = 1
    """Channels of the 64x64 observations (1: grayscale Atari, as in the paper)."""
    encoder: ConvConfig = field(default_factory=ConvConfig)
    decoder: ConvConfig = field(default_factory=lambda: ConvConfig(kernels=(5, 5, 6, 6)))
    rssm: RSSMConfig = field(default_factory=RSSMConfig)
    reward_head: MLPConfig = field(default_factory=MLPConfig)
    discount_head: MLPConfig = field(default_factory=MLPConfig)
    image_scale: float = 1.0
    reward_scale: float = 1.0
    discount_scale: float = 5.0
    kl_scale: float = 0.1
    kl_balance: float = 0.8
    """alpha in KL balancing: alpha * KL(sg(post) || prior) + (1 - alpha) * KL(post || sg(prior))."""
    free_nats: float = 0.0
    """Lower bound on each balanced KL term's batch mean (the paper uses none at Atari)."""
    opt: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4))

    def validate(self) -> None:
        _positive("image_channels", self.image_channels)
        for name in ("image_scale", "reward_scale", "discount_scale", "kl_scale", "free_nats"):
            _non_negative(name, getattr(self, name))
        _fraction("kl_balance", self.kl_balance)


@dataclass(frozen=True)
class BehaviourConfig:
    """Actor-critic learned in imagination (paper Section 2.2)."""

    horizon: int = 15
    """Imagination horizon H."""
    return_lambda: float = 0.95
    """lambda of the lambda-return."""
    discount: float = 0.999
    """gamma: the soft label of the discount head is discount * (1 - is_terminal), and the first
    imagined step uses this true discount."""
    entropy_scale: float = 1e-3
    """eta, the actor's entropy bonus."""
    reinforce_fraction: float = 1.0
    """rho in the actor loss: 1 is pure REINFORCE (the paper at Atari); below 1 mixes in
    (1 - rho) of straight-through dynamics backpropagation of the lambda-return."""
    target_update_every: int = 100
    """Hard copy of the critic into the target critic every this many behaviour updates."""
    actor: MLPConfig = field(default_factory=MLPConfig)
    critic: MLPConfig = field(default_factory=MLPConfig)
    actor_opt: OptimConfig = field(default_factory=lambda: OptimConfig(lr=4e-5))
    critic_opt: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4))

    def validate(self) -> None:
        if self.horizon < 2:
            raise ValueError(f"horizon must be at least 2, got {self.horizon}")
        _fraction("return_lambda", self.return_lambda)
        _fraction("discount", self.discount)
        _non_negative("entropy_scale", self.entropy_scale)
        _fraction("reinforce_fraction", self.reinforce_fraction)
        _positive("target_update_every", self.target_update_every)


@dataclass(frozen=True)
class AblationConfig:
    """The paper's ablations (Figure 5), each a switch; the defaults are the full agent."""

    latent: Literal["categorical", "gaussian"] = "categorical"
    """Discrete latents with straight-through gradients, or diagonal Gaussian latents."""
    kl_balancing: bool = True
    """False: the plain KL(post || prior), with gradients into both distributions."""
    image_grad: bool = True
    """False: the decoder trains on stopped features; no image gradients reach the representation."""
    reward_grad: bool = True
    """False: the reward head trains on stopped features (reward-free representation learning)."""
    reward: Literal["present", "absent"] = "present"
    """"absent": no reward head at all, for reward-free data; the actor-critic cannot be trained."""

    def validate(self) -> None:
        pass


@dataclass(frozen=True)
class RuntimeConfig:
    """How to run, not what to compute (never part of the checkpoint compatibility check)."""

    bf16: bool = True
    """bfloat16 autocast for the networks on CUDA (losses stay float32); ignored on CPU."""
    compile: bool = False
    """torch.compile(fullgraph=True) the observe and imagine step bodies, and compile the conv
    stacks and heads (slow first updates; meant for GPUs, no gain measured on the CPU)."""
    cuda_graph: bool = False
    """Capture each training step whole as one CUDA graph after a few eager warm-up steps (CUDA
    only; ignored on the CPU, where eager is the path). Same losses as eager up to rounding."""
    channels_last: bool = True
    """channels-last memory format for the convolutions (much faster with oneDNN on CPU)."""
    num_threads: int = 0
    """torch intra-op threads to set when the agent is built; 0 leaves torch's setting alone."""

    def validate(self) -> None:
        _non_negative("num_threads", self.num_threads)


@dataclass(frozen=True)
class AgentConfig:
    """The whole agent: world model, behaviour, ablations and runtime."""

    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    behaviour: BehaviourConfig = field(default_factory=BehaviourConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def validate(self) -> None:
        for part in (self.world_model, self.behaviour, self.ablation, self.runtime):
            part.validate()

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


# Fields whose change alters the parameters' shapes or meaning: a checkpoint must agree on them.
ARCHITECTURE_FIELDS: tuple[str, ...] = (
    "world_model.image_channels",
    "world_model.encoder",
    "world_model.decoder",
    "world_model.rssm",
    "world_model.reward_head",
    "world_model.discount_head",
    "behaviour.actor",
    "behaviour.critic",
    "ablation.latent",
    "ablation.reward",
)

_SMALL = {
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

_DEBUG = {
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

PRESETS: dict[str, Mapping[str, Any]] = {"atari": {}, "small": _SMALL, "debug": _DEBUG}


def preset(name: str, overrides: Mapping[str, Any] | None = None) -> AgentConfig:
    """The named preset (`atari`, `small`, `debug`), optionally with overrides applied on top."""
    if name not in PRESETS:
        raise ConfigError(f"unknown agent preset {name!r}; choose one of {sorted(PRESETS)}")
    config = override(AgentConfig(), PRESETS[name])
    if overrides:
        config = override(config, overrides)
    return config
