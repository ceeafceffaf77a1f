"""Typed configuration of the DreamerV2 agent: the dataclasses are the schema and the defaults.

The defaults are the paper's Atari configuration ("Mastering Atari with Discrete World Models",
Hafner et al. 2021, Appendix / the published `configs.yaml`, section `atari`). `preset(name)`
returns `atari` (the paper), `small` (a CPU-sized agent with the same structure), `debug` (tiny,
for tests), `dmc_vision` (the published Control Suite from pixels) or `dreamerv1` (DreamerV1,
"Dream to Control", Hafner et al. 2020; `models/presets.py` holds the sources of every value).
Two fields may say "auto" and are resolved per action space (`actor_distribution`,
`actor_reinforce_fraction`), as the published `actor.dist: auto` and `actor_grad: auto`.
YAML files override fields through `models.config_schema.override`, which rejects
unknown or ill-typed keys; every dataclass here also has a `validate()` that raises `ValueError`
for values that are well typed but meaningless (negative sizes, a KL balance outside [0, 1], ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from .config_schema import ConfigError, override, to_dict
from .presets import PRESETS

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
    free_nats_over: Literal["auto", "batch_mean", "element"] = "auto"
    """Where free nats clamp the KL: "batch_mean" (published `kl.free_avg: True`; DreamerV1's
    max(mean KL, free)), "element" (each (b, t)'s KL first), or "auto": as the published DreamerV2
    code, the batch mean with KL balancing and per element without it (its balance == 0.5 path)."""
    predict_discount: bool = True
    """True: a discount head learns episode ends, and imagination discounts by its prediction
    (Atari). False: no discount head; imagination discounts every step by the constant gamma
    (published `pred_discount: False`, the Control Suite, whose episodes never terminate)."""
    reward_transform: Literal["tanh", "identity"] = "tanh"
    """What the reward head learns: tanh(reward) (published `clip_rewards: tanh`, Atari) or the
    reward itself (`clip_rewards: identity`, the Control Suite)."""
    reward_head_dist: Literal["gaussian", "symlog_twohot"] = "gaussian"
    """How the reward head predicts the (transformed) reward: the mean of a unit-variance Gaussian
    (DreamerV2), or DreamerV3's symlog two-hot categorical over 255 bins, whose output layer
    starts at zero (`models/scalar_dists.py`). DreamerV3 pairs it with `reward_transform: identity`."""
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
    reinforce_fraction: float | Literal["auto"] = "auto"
    """rho in the actor loss: 1 is pure REINFORCE (the paper at Atari); below 1 mixes in
    (1 - rho) of dynamics backpropagation of the lambda-return (straight-through samples for
    discrete actions, reparameterised ones for continuous). "auto" (published `actor_grad: auto`):
    1 for discrete actions, 0 (pure dynamics backpropagation) for continuous ones."""
    actor_dist: Literal["auto", "onehot", "trunc_normal", "tanh_normal"] = "auto"
    """The actor's distribution: "onehot" (categorical, discrete actions), "trunc_normal"
    (DreamerV2's continuous actor), "tanh_normal" (DreamerV1's); "auto" (published
    `actor.dist: auto`) is onehot for discrete and trunc_normal for continuous actions."""
    actor_min_std: float = 0.1
    """Continuous actors: the smallest std (published `actor.min_std` 0.1; DreamerV1 1e-4)."""
    action_noise: float = 0.0
    """Continuous actors: std of Gaussian noise added to sampled actions when acting, then clipped
    to [-1, 1] (published `expl_noise` 0; DreamerV1's `expl_amount` 0.3). Not used in imagination."""
    target_update_every: int = 100
    """Hard copy of the critic into the target critic every this many behaviour updates."""
    critic_dist: Literal["gaussian", "symlog_twohot"] = "gaussian"
    """How the critic (and its target copy) predicts the lambda-return: the mean of a unit-variance
    Gaussian (DreamerV2) or DreamerV3's symlog two-hot categorical (`models/scalar_dists.py`)."""
    return_norm: Literal["none", "percentile"] = "none"
    """"percentile" (DreamerV3): the actor's advantages and its dynamics-backpropagated returns are
    divided by max(1, P95 - P5), the 5th-95th percentile range of the lambda-returns tracked by an
    EMA of decay 0.99 (`returns.ReturnScale`). DreamerV3 uses it with entropy_scale 3e-4."""
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
        if self.reinforce_fraction != "auto":
            _fraction("reinforce_fraction", self.reinforce_fraction)
        _positive("actor_min_std", self.actor_min_std)
        _non_negative("action_noise", self.action_noise)
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
    mode: Literal["auto", "eager", "cuda_graph", "compile", "compile_cuda_graph"] = "auto"
    """How training and policy steps run. "auto": on CUDA "compile_cuda_graph" (the fastest
    measured: 63 updates/s at the `atari` preset on an H200, against 6.8 eager), on the CPU "eager".
    "cuda_graph": each training step, and each policy step of a batch size, captured whole as one
    CUDA graph after a few eager warm-up calls (same losses as eager up to rounding). "compile":
    torch.compile(fullgraph=True) the observe and imagine step bodies and compile the conv stacks
    and heads, at the first training step (about 40 s on an H200; the training stages keep the
    compiled code in the run's folder for the next stages). "compile_cuda_graph": both. The graph
    parts need CUDA and run eager on the CPU; compile also runs on the CPU (no gain measured).
    Replaces the keys `compile` and `cuda_graph`, which older files and checkpoints still carry
    (`upgrade_keys`)."""
    channels_last: bool = True
    """channels-last memory format for the convolutions (much faster with oneDNN on CPU)."""
    num_threads: int = 0
    """torch intra-op threads to set when the agent is built; 0 leaves torch's setting alone."""

    def validate(self) -> None:
        _non_negative("num_threads", self.num_threads)

    def resolved_mode(self, device_type: str) -> str:
        """`mode` on a device of this type ("cuda", "cpu", ...): "auto" resolved, and the CUDA-graph
        part dropped off CUDA."""
        mode = self.mode
        if mode == "auto":
            mode = "compile_cuda_graph" if device_type == "cuda" else "eager"
        if device_type != "cuda" and mode.endswith("cuda_graph"):
            mode = "compile" if mode.startswith("compile") else "eager"
        return mode

    def uses_compile(self, device_type: str) -> bool:
        return self.resolved_mode(device_type).startswith("compile")

    def uses_cuda_graph(self, device_type: str) -> bool:
        return self.resolved_mode(device_type).endswith("cuda_graph")

    @staticmethod
    def upgrade_keys(data: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The runtime keys of older configuration files and checkpoints, `compile` and
        `cuda_graph` (booleans), as the one `mode` they meant: both false "eager", one of them
        that one, both "compile_cuda_graph". Mixed with `mode` they are an error."""
        data = dict(data)
        legacy = {key: data.pop(key) for key in ("compile", "cuda_graph") if key in data}
        if not legacy:
            return data
        prefix = f"{where}." if where else ""
        if "mode" in data:
            raise ConfigError(f"{prefix}mode and the older {', '.join(prefix + k for k in legacy)} both say how to "
                              "run; keep mode only (auto, eager, cuda_graph, compile, compile_cuda_graph)")
        for key, value in legacy.items():
            if not isinstance(value, bool):
                raise ConfigError(f"{prefix}{key}: expected true or false, got {value!r} ({type(value).__name__})")
        compile_, graph = legacy.get("compile", False), legacy.get("cuda_graph", False)
        data["mode"] = {(False, False): "eager", (True, False): "compile", (False, True): "cuda_graph",
                        (True, True): "compile_cuda_graph"}[(compile_, graph)]
        return data


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
    "world_model.predict_discount",
    "world_model.reward_head_dist",
    "behaviour.actor",
    "behaviour.actor_dist",
    "behaviour.critic",
    "behaviour.critic_dist",
    "ablation.latent",
    "ablation.reward",
)


def preset(name: str, overrides: Mapping[str, Any] | None = None, where: str = "") -> AgentConfig:
    """The named preset (`atari`, `small`, `debug`, `dmc_vision`, `dreamerv1`), optionally with
    overrides applied on top; `where` ("agent" in a pipeline configuration) prefixes the keys an
    error names (`agent.preset`, `agent.overrides.world_model.kl_scale`)."""
    prefix = f"{where}." if where else ""
    if name not in PRESETS:
        raise ConfigError(f"{prefix + 'preset: ' if where else ''}unknown agent preset {name!r}; choose one of {sorted(PRESETS)}")
    config = override(AgentConfig(), PRESETS[name])
    if overrides:
        config = override(config, overrides, f"{prefix}overrides" if where else "")
    return config


def actor_distribution(behaviour: BehaviourConfig, discrete: bool) -> str:
    """`behaviour.actor_dist` resolved for an action space; a distribution that cannot act in it
    is a ConfigError naming both."""
    kind = behaviour.actor_dist
    if kind == "auto":
        return "onehot" if discrete else "trunc_normal"
    if (kind == "onehot") != discrete:
        space = "discrete" if discrete else "continuous"
        raise ConfigError(f"behaviour.actor_dist: {kind!r} cannot act in a {space} action space; "
                          f"use {'onehot' if discrete else 'trunc_normal or tanh_normal'} (or auto)")
    return kind


def actor_reinforce_fraction(behaviour: BehaviourConfig, discrete: bool) -> float:
    """`behaviour.reinforce_fraction` resolved for an action space (published `actor_grad: auto`:
    REINFORCE for discrete actions, dynamics backpropagation for continuous ones)."""
    value = behaviour.reinforce_fraction
    if value == "auto":
        return 1.0 if discrete else 0.0
    return float(value)
