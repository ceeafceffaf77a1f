"""The DreamerV2 agent: world model + actor-critic, their optimisers, and acting.

    agent = Agent(preset("atari"), num_actions=6, device="cpu", seed=0)
    agent = Agent(preset("dmc_vision"), action_space=ActionSpace.continuous(6), device="cpu", seed=0)
    metrics = agent.update(batch)      # world model, then actor, then critic (paper Algorithm 1)
    actions, state = agent.policy_step(image, is_first, state, mode="sample")   # int64 (N,) or float32 (N, A)
    video = agent.open_loop(batch)     # uint8 (T, 3 * 64, n * 64, C): truth, model, error

A batch follows the Batches contract of docs/architecture.md: a dict of numpy arrays or torch
tensors, batch-major (B, T, ...): `image` uint8 (B, T, 64, 64, C), `action` int (B, T) for
discrete actions or float (B, T, A) in [-1, 1] for continuous ones, `reward`
float (B, T) (absent for reward-free data), `is_first`, `is_terminal` bool (B, T) (`is_last` is
accepted and unused). Metrics come back as an `UpdateMetrics` mapping of name to float whose
values stay on the device until they are first read (no host synchronisation per update).

Every training step is one body (`_step_body`) plus host-side bookkeeping (counters, the target
critic's copy), and every policy step one body (`_policy_body`). `runtime.mode` says how they run
(`RuntimeConfig.resolved_mode`; "auto" is compile + CUDA graphs on CUDA, eager on the CPU). Eager
runs the bodies on the prepared inputs. With CUDA graphs each body runs on static input buffers
and is captured as one CUDA graph after a few eager warm-up calls (`models/captured_graph.py`;
`models/captured_step.py`, one per training step kind and batch shape; `models/captured_policy.py`,
one per acting batch size and mode; they know only the bodies, never the agent). With compile the
observe and imagine step bodies run through torch.compile(fullgraph=True), compiled at the first
training step (an agent that only acts never compiles).
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import numpy as np
import torch
from torch.nn import functional as F

from dreamer_pipeline.datasets.action_space import ActionSpace

from .action_dists import continuous_distribution
from .behaviour import ActorCritic
from .captured_graph import GraphPool, configure_cuda_backends
from .captured_policy import CapturedPolicyStep, PolicyState, sample_categorical
from .captured_step import CapturedStep
from .config import AgentConfig, actor_distribution
from .config_schema import ConfigError
from .networks import IMAGE_SIZE
from .optim import Optimizer
from .rssm import RSSMState
from .update_metrics import UpdateMetrics
from .world_model import WorldModel, WorldModelBatch

STEP_KINDS = ("update", "world_model", "behaviour")



class BatchError(ValueError):
    """A training batch that does not follow the Batches contract."""


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise BatchError(f"batch[{name!r}] must be a numpy array or torch tensor, got {type(value).__name__}")


class Agent:
    """World model, actor, critic, target critic and their three optimisers, on one device."""

    def __init__(self, config: AgentConfig, num_actions: int | None = None, device: str | torch.device = "cpu",
                 seed: int = 0, action_space: ActionSpace | None = None):
        """`num_actions=N` (discrete, as always) or `action_space=ActionSpace.discrete(N)` /
        `ActionSpace.continuous(A)` (actions in [-1, 1])."""
        config.validate()
        action_space = _resolve_action_space(num_actions, action_space)
        action_space.check_model_bounds()
        actor_distribution(config.behaviour, action_space.is_discrete)  # a ConfigError if it cannot act here
        if action_space.is_discrete and config.behaviour.action_noise:
            raise ConfigError("behaviour.action_noise: Gaussian action noise needs continuous actions, "
                              f"the action space is {action_space}")
        self.config = config
        self.action_space = action_space
        self.action_size = action_space.size  # width of the action vector the model sees
        self.device = torch.device(device)
        self.image_shape = (IMAGE_SIZE, IMAGE_SIZE, config.world_model.image_channels)
        if config.runtime.num_threads:
            torch.set_num_threads(config.runtime.num_threads)
        if self.device.type == "cuda":
            configure_cuda_backends()
        channels_last = config.runtime.channels_last
        with torch.random.fork_rng(devices=[]):  # deterministic init without touching global RNG
            torch.manual_seed(seed)
            self.world_model = WorldModel(config.world_model, config.ablation, self.action_size,
                                          config.behaviour.discount, channels_last).to(self.device)
            self.actor_critic = ActorCritic(config.behaviour, self.world_model.rssm.feature_size,
                                            action_space).to(self.device)
        # How training and policy steps run: "eager" (the CPU path), "graph" (each step one CUDA
        # graph; CUDA only, with capturable optimisers) or "static" (the graph's code path on static
        # buffers without capture: how the CPU tests check it).
        graphs = config.runtime.uses_cuda_graph(self.device.type)
        self.step_mode = self.policy_mode = "graph" if graphs else "eager"
        self.wm_optimizer = Optimizer(self.world_model.parameters(), config.world_model.opt, graphs)
        behaviour_opts = self.actor_critic.make_optimizers(graphs)
        self.actor_optimizer = behaviour_opts["actor"]
        self.critic_optimizer = behaviour_opts["critic"]
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.wm_updates = 0
        self._captured: dict[tuple, CapturedStep] = {}  # (kind, batch shape, reward) -> its graph
        self._policy_steps: dict[tuple[int, str], CapturedPolicyStep] = {}  # (envs, mode) -> its graph
        self._graph_pool = GraphPool()  # the training graphs share memory: they replay in a fixed order
        self.compile_pending = config.runtime.uses_compile(self.device.type)  # done at the first update

    # ------------------------------------------------------------------------------- plumbing
    @property
    def num_actions(self) -> int:
        """The number of discrete actions (a continuous agent has `action_space.shape` instead)."""
        if not self.action_space.is_discrete:
            raise AttributeError(f"a continuous agent ({self.action_space}) has no num_actions; use agent.action_space")
        return self.action_space.n

    @property
    def behaviour_updates(self) -> int:
        return self.actor_critic.updates

    def _autocast(self):
        if self.device.type == "cuda" and self.config.runtime.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _compile(self) -> None:
        """torch.compile the observe and imagine step bodies whole (fullgraph: a graph break is an
        error, not a silent slowdown), and the conv stacks and the heads used outside them in place;
        parameters and state-dict keys are unchanged."""
        wm, ac = self.world_model, self.actor_critic
        wm.rssm.compiled_observe_step = torch.compile(wm.rssm.observe_step, fullgraph=True, dynamic=False)
        ac.compiled_imagine_step = torch.compile(ac.imagine_step, fullgraph=True, dynamic=False)
        for module in (wm.encoder, wm.decoder, wm.discount_head, ac.critic, ac.target_critic, wm.reward_head):
            if module is None:  # no reward head (reward-free data) or no discount head
                continue
            module.compile()

    def check_batch(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Validate a batch; returns its tensors (image, action, is_first, is_terminal, reward if the
        model has a reward head) where they are, without copies."""
        required = ["image", "action", "is_first", "is_terminal"]
        if self.world_model.has_reward:
            required.append("reward")
        missing = [k for k in required if k not in batch]
        if missing:
            hint = " (reward-free data needs ablation.reward='absent')" if missing == ["reward"] else ""
            raise BatchError(f"batch is missing {missing}{hint}; it has {sorted(batch)}")
        image = _as_tensor(batch["image"], "image")
        if image.dtype != torch.uint8 or image.ndim != 5 or tuple(image.shape[2:]) != self.image_shape:
            raise BatchError(f"batch['image'] must be uint8 (B, T, {', '.join(map(str, self.image_shape))}), "
                             f"got {image.dtype} {tuple(image.shape)}")
        shape = tuple(image.shape[:2])
        parts: dict[str, torch.Tensor] = {}
        for key in required[1:]:
            value = _as_tensor(batch[key], key)
            expected = shape if key != "action" or self.action_space.is_discrete else (*shape, self.action_size)
            if tuple(value.shape) != expected:
                what = "(B, T)" if len(expected) == 2 else "(B, T, A)"
                raise BatchError(f"batch[{key!r}] must have shape {what} = {expected}, got {tuple(value.shape)}")
            parts[key] = value
        action = parts["action"]
        if not self.action_space.is_discrete:
            if not action.dtype.is_floating_point:
                raise BatchError(f"batch['action'] must hold float continuous actions, got {action.dtype}")
            if action.device.type == "cpu" and action.numel():
                if not bool(torch.isfinite(action).all()):
                    raise BatchError("batch['action'] holds non-finite continuous actions")
                low, high = float(action.min()), float(action.max())
                if low < -1.0 or high > 1.0:
                    raise BatchError(f"batch['action'] holds continuous actions in [{low}, {high}], outside [-1, 1]")
            return {"image": image, **parts}
        if action.dtype.is_floating_point or action.dtype == torch.bool:
            raise BatchError(f"batch['action'] must hold integer action indices, got {action.dtype}")
        if action.device.type == "cpu" and action.numel():
            low, high = int(action.min()), int(action.max())
            if low < 0 or high >= self.num_actions:
                raise BatchError(f"batch['action'] holds indices in [{low}, {high}], outside [0, {self.num_actions})")
        return {"image": image, **parts}

    def device_batch(self, tensors: Mapping[str, torch.Tensor]) -> WorldModelBatch:
        """Checked batch tensors already on the device -> the model's batch (one-hot or float
        continuous actions, bool flags, float rewards). No host synchronisation: the captured steps
        run it inside the graph."""
        reward = tensors.get("reward")
        action = tensors["action"]
        return WorldModelBatch(
            image=tensors["image"],
            action=(F.one_hot(action.long(), self.action_size).float() if self.action_space.is_discrete
                    else action.float()),
            reward=reward.float() if reward is not None else None,
            is_first=tensors["is_first"].bool(),
            is_terminal=tensors["is_terminal"].bool(),
        )

    def prepare(self, batch: Mapping[str, Any]) -> WorldModelBatch:
        """Validate a batch and move it to the device (one-hot or float actions, bool flags)."""
        tensors = self.check_batch(batch)
        return self.device_batch({key: value.to(self.device, non_blocking=True) for key, value in tensors.items()})

    # ------------------------------------------------------------------------------- training
    def _world_model_body(self, data: WorldModelBatch) -> tuple[RSSMState, dict[str, torch.Tensor]]:
        self.world_model.train()
        with self._autocast():
            output = self.world_model.loss(data, generator=self.generator)
        output.metrics["wm/grad_norm"] = self.wm_optimizer.step(output.loss)
        return output.post.detach(), output.metrics

    def _behaviour_body(self, post: RSSMState, data: WorldModelBatch) -> dict[str, torch.Tensor]:
        start = post.map(lambda x: x.reshape(-1, x.shape[-1]))  # every posterior state: B * T starts
        with self._autocast():
            actor_loss, critic_loss, metrics = self.actor_critic.losses(
                self.world_model, start, data.is_terminal.reshape(-1), self.generator)
        metrics["actor/grad_norm"] = self.actor_optimizer.step(actor_loss)
        metrics["critic/grad_norm"] = self.critic_optimizer.step(critic_loss)
        return metrics

    def _step_body(self, kind: str, data: WorldModelBatch) -> dict[str, torch.Tensor]:
        """One training step's device work: losses, gradients, optimiser steps. `kind` is "update"
        (world model, actor, critic), "world_model" or "behaviour". No host synchronisation and no
        Python state changes: a CUDA graph replays it (`_after_step` does the bookkeeping)."""
        if kind == "world_model":
            return self._world_model_body(data)[1]
        if kind == "update":
            post, metrics = self._world_model_body(data)
        else:  # the world model filters the batch without gradients (it is not trained here)
            with torch.no_grad(), self._autocast():
                _, embed = self.world_model.embed(data.image)
                post, _ = self.world_model.rssm.observe(embed, data.action, data.is_first, generator=self.generator)
            metrics = {}
        metrics.update(self._behaviour_body(post, data))
        return metrics

    def _after_step(self, kind: str) -> None:
        """Host-side bookkeeping after a step: counters and the target critic's copy (every
        `target_update_every` behaviour updates, after the critic's step, as in eager order)."""
        if kind in ("update", "world_model"):
            self.wm_updates += 1
        if kind in ("update", "behaviour"):
            self.actor_critic.update_target()

    def _train(self, kind: str, batch: Mapping[str, Any]) -> UpdateMetrics:
        if kind not in STEP_KINDS:
            raise ValueError(f"kind must be one of {STEP_KINDS}, got {kind!r}")
        if self.compile_pending:
            self.compile_pending = False
            self._compile()
        if self.step_mode == "eager":
            metrics = UpdateMetrics.stack(self._step_body(kind, self.prepare(batch)))
        else:
            tensors = self.check_batch(batch)
            key = (kind, tuple(tensors["image"].shape), "reward" in tensors)
            if key not in self._captured:
                self._captured[key] = CapturedStep(
                    lambda inputs: self._step_body(kind, self.device_batch(inputs)), tensors, self.device,
                    self.generator, capture=self.step_mode == "graph", pool=self._graph_pool)
            metrics = self._captured[key](tensors)
        self._after_step(kind)
        return metrics

    def train_world_model(self, batch: Mapping[str, Any]) -> UpdateMetrics:
        """One world-model update on `batch`; returns `wm/*` metrics."""
        return self._train("world_model", batch)

    def train_behaviour(self, batch: Mapping[str, Any]) -> UpdateMetrics:
        """One actor and one critic update, imagining from every posterior state of `batch`.

        The batch is filtered by the world model without gradients (it is not trained here)."""
        return self._train("behaviour", batch)

    def update(self, batch: Mapping[str, Any]) -> UpdateMetrics:
        """The paper's training step: world model, then actor, then critic, from one batch.

        Imagination starts from the world-model step's posterior states (detached). Returns the
        metrics as a mapping of name to float, copied from the device on first read."""
        return self._train("update", batch)

    # -------------------------------------------------------------------------------- acting
    def initial_policy_state(self, batch_size: int) -> PolicyState:
        latent = self.world_model.rssm.initial(batch_size, self.device)
        return latent, torch.zeros(batch_size, self.action_size, device=self.device)

    @torch.no_grad()
    def policy_step(self, image: Any, is_first: Any, state: PolicyState | None = None,
                    mode: str = "sample") -> tuple[torch.Tensor, PolicyState]:
        """Act on one step of N environments: image uint8 (N, 64, 64, C), is_first bool (N,).

        Rows with is_first set start from the zero state (published `obs_step`). `mode` is
        "sample" (training: sample the actor) or "greedy" (evaluation: the actor's mode). The
        posterior is sampled in both (published `eval_state_mean: False`). Returns the actions on
        the device, int64 (N,) for discrete or float32 (N, A) in [-1, 1] for continuous action
        spaces, and the next state. `behaviour.action_noise` adds clipped Gaussian noise to
        continuous samples (published `action_noise`; DreamerV1's exploration).
        """
        if mode not in ("sample", "greedy"):
            raise ValueError(f"mode must be 'sample' or 'greedy', got {mode!r}")
        image = _as_tensor(image, "image").to(self.device)
        is_first = _as_tensor(is_first, "is_first").to(self.device).bool()
        if image.ndim != 4 or tuple(image.shape[1:]) != self.image_shape or image.dtype != torch.uint8:
            raise BatchError(f"observations must be uint8 (N, {', '.join(map(str, self.image_shape))}), "
                             f"got {image.dtype} {tuple(image.shape)}")
        if state is None:
            state = self.initial_policy_state(image.shape[0])
        if self.policy_mode == "eager":
            action, post, next_action = self._policy_body(image, is_first, *state, mode)
            return action, (post, next_action)
        key = (image.shape[0], mode)
        if key not in self._policy_steps:
            self._policy_steps[key] = CapturedPolicyStep(
                lambda image, is_first, latent, last_action: self._policy_body(image, is_first, latent, last_action, mode),
                self.initial_policy_state(image.shape[0]), self.image_shape, self.device, self.generator,
                capture=self.policy_mode == "graph")
        return self._policy_steps[key](image, is_first, state)

    def _policy_body(self, image: torch.Tensor, is_first: torch.Tensor, latent: RSSMState,
                     last_action: torch.Tensor, mode: str) -> tuple[torch.Tensor, RSSMState, torch.Tensor]:
        """One policy step's device work: (action, posterior, the action as the model's input).
        No host synchronisation: a CUDA graph replays it (`models/captured_policy.py`)."""
        self.world_model.eval()
        with self._autocast():
            _, embed = self.world_model.embed(image)
            post, _ = self.world_model.rssm.obs_step(latent, last_action, embed, is_first, self.generator)
            logits = self.actor_critic.actor(self.world_model.rssm.features(post)).float()
        if not self.action_space.is_discrete:
            action = self._continuous_action(logits, mode)
            return action, post, action
        if mode == "greedy":
            action = logits.argmax(-1)
        else:  # torch.multinomial's draw for one sample, without its host synchronisation
            action = sample_categorical(torch.softmax(logits, -1), self.generator)
        return action, post, F.one_hot(action, self.num_actions).float()

    def _continuous_action(self, raw: torch.Tensor, mode: str) -> torch.Tensor:
        behaviour = self.config.behaviour
        kind = self.actor_critic.dist_kind
        policy = continuous_distribution(kind, raw, behaviour.actor_min_std)
        if mode == "greedy":
            return policy.mode()
        noise = self.actor_critic.sample_noise(raw.shape[:-1], self.generator)
        action = policy.sample(noise)
        if behaviour.action_noise:
            jitter = torch.randn(action.shape, device=action.device, generator=self.generator)
            action = (action + behaviour.action_noise * jitter).clamp(-1.0, 1.0)
        return action

    # ------------------------------------------------------------------------------ reporting
    @torch.no_grad()
    def open_loop(self, batch: Mapping[str, Any], context: int = 5, max_sequences: int = 6,
                  seed: int = 0) -> np.ndarray:
        """The paper's video predictions: `context` observed frames, then the rest predicted open loop.

        Uses the first `max_sequences` sequences of `batch`. The model reconstructs the first
        `context` frames from the posterior, then imagines the remaining T - context frames from
        the recorded actions alone. Returns uint8 (T, 3 * 64, n * 64, C): rows truth, model, and
        error (model - truth + 1) / 2; sequences side by side (published `video_pred`). Latent
        samples come from a generator seeded with `seed`, not the training generator.
        """
        data = self.prepare(batch)
        count = min(max_sequences, data.image.shape[0])
        length = data.image.shape[1]
        if not 0 < context < length:
            raise ValueError(f"context must lie in [1, T-1] = [1, {length - 1}], got {context}")
        data = WorldModelBatch(*(x[:count] if x is not None else None for x in data))
        wm = self.world_model
        wm.eval()
        # A generator of its own: reports are reproducible and never shift the training samples.
        generator = torch.Generator(device=self.device).manual_seed(seed)
        with self._autocast():
            _, embed = wm.embed(data.image[:, :context])
            post, _ = wm.rssm.observe(embed, data.action[:, :context], data.is_first[:, :context],
                                      generator=generator)
            last = post.map(lambda x: x[:, -1])
            prior = wm.rssm.rollout(last, data.action[:, context:], generator)
            features = torch.cat([wm.rssm.features(post), wm.rssm.features(prior)], 1)
            model = wm.decode(features).float() + 0.5  # (n * T, C, 64, 64) in [0, 1]
        model = model.clamp(0, 1).reshape(count, length, *model.shape[1:]).permute(0, 1, 3, 4, 2)
        truth = data.image.float() / 255.0
        error = (model - truth + 1) / 2
        video = torch.cat([truth, model, error], 2)  # (n, T, 3 * 64, 64, C)
        n, t, h, w, c = video.shape
        video = video.permute(1, 2, 0, 3, 4).reshape(t, h, n * w, c)
        return (video * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()

    # ----------------------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """Weights, optimiser states, counters and the sampling RNG (plain tensors and containers)."""
        return {
            "world_model": self.world_model.state_dict(),
            "actor_critic": self.actor_critic.state_dict(),
            "optimisers": {
                "world_model": self.wm_optimizer.state_dict(),
                "actor": self.actor_optimizer.state_dict(),
                "critic": self.critic_optimizer.state_dict(),
            },
            "counters": {"wm_updates": self.wm_updates, "behaviour_updates": self.actor_critic.updates},
            "rng": {"device": self.device.type, "state": self.generator.get_state()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.world_model.load_state_dict(state["world_model"])
        self.actor_critic.load_state_dict(state["actor_critic"])
        self.wm_optimizer.load_state_dict(state["optimisers"]["world_model"])
        self.actor_optimizer.load_state_dict(state["optimisers"]["actor"])
        self.critic_optimizer.load_state_dict(state["optimisers"]["critic"])
        self._captured.clear()  # the optimisers' state tensors were replaced: capture again
        self._policy_steps.clear()
        self.wm_updates = int(state["counters"]["wm_updates"])
        self.actor_critic.updates = int(state["counters"]["behaviour_updates"])
        rng = state["rng"]
        if rng["device"] == self.device.type:  # CPU and CUDA generators have different states
            self.generator.set_state(rng["state"].cpu())

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per module (the target critic is a copy and not counted)."""
        wm, ac = self.world_model, self.actor_critic
        count = lambda m: sum(p.numel() for p in m.parameters()) if m is not None else 0  # noqa: E731
        return {
            "encoder": count(wm.encoder), "rssm": count(wm.rssm), "decoder": count(wm.decoder),
            "reward_head": count(wm.reward_head), "discount_head": count(wm.discount_head),
            "world_model": count(wm), "actor": count(ac.actor), "critic": count(ac.critic),
        }


def _resolve_action_space(num_actions: int | None, action_space: ActionSpace | None) -> ActionSpace:
    """`num_actions` (discrete, the original API) or `action_space`; both only if they agree."""
    if action_space is None:
        if num_actions is None:
            raise ValueError("an agent needs num_actions=N or action_space=ActionSpace...")
        if isinstance(num_actions, bool) or not isinstance(num_actions, int) or num_actions < 1:
            raise ValueError(f"num_actions must be positive, got {num_actions}")
        return ActionSpace.discrete(num_actions)
    if not isinstance(action_space, ActionSpace):
        raise ValueError(f"action_space must be an ActionSpace (ActionSpace.from_dict for dicts), got {action_space!r}")
    if num_actions is not None and (not action_space.is_discrete or action_space.n != num_actions):
        raise ValueError(f"num_actions={num_actions} contradicts action_space={action_space}")
    return action_space
