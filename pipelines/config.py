"""The pipeline's configuration: typed dataclasses are the schema and the defaults.

YAML files in `config/` only override these defaults (`load_config(path)`); unknown keys and
ill-typed values are a `ConfigError` naming the full key path (via `models.config_schema`). The
defaults are the paper's Atari protocol (Hafner et al. 2021, DreamerV2): 200M frames, a replay of
the most recent 2M agent steps, 50k random prefill steps and one update per 16 agent steps.

Step counts are agent steps; one agent step is `env.action_repeat` (4) frames.

Loading is strict (files, checkpoints' saved configurations); command-line overrides are typed by
the same coercer in its lax mode (`config_overrides`). Every size and count has its lower and upper
bound in `limits.BOUNDS`; `env` is checked against the suite's environment settings and
`agent.overrides` against the agent's schema when a configuration loads.

`validate_config(cfg)` is the one validation both `dreamer-pipeline check-config` and the
Snakefile run: schema, numbers, games, dataset paths, the agent preset and the environment keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from dreamer_pipeline.models.config_schema import ConfigError, from_mapping, to_dict

from .config_yaml import load_yaml
from .limits import check_limits

__all__ = [
    "ActorGateConfig", "AgentSection", "CollectConfig", "ConfigError", "EvaluateConfig", "LoggingConfig", "LoopConfig", "PathsConfig",
    "PipelineConfig", "PrefillConfig", "PretrainConfig", "TrainConfig", "load_config", "config_from_mapping", "to_dict",
]


DEVICE_PATTERN = re.compile(r"auto|cpu|mps|(cuda|xpu)(:[0-9]+)?")


def check_device_name(device: str, where: str = "train.device") -> None:
    """A device's name is well formed (whether the device exists is `machine.resolve_device`'s question)."""
    if not isinstance(device, str) or not DEVICE_PATTERN.fullmatch(device):
        raise ConfigError(f"{where}: {device!r} is not a device; use auto, cpu, cuda, cuda:N, mps or xpu:N")


def check_device(where: str, device: str) -> None:
    """A device name ("auto" = the GPU when there is one); whether it exists is checked where it is used."""
    check_device_name(device, where)


@dataclass
class PrefillConfig:
    """Random-policy experience collected once per game and shared by every seed and variant."""

    name: str = "random50k"  # the shared store: {paths.datasets}/{game}/{name}.zarr
    steps: int = 50_000  # agent steps of the uniform random policy (paper: 50k before the first update)
    envs: int = 1  # environments stepped together by the prefill collector
    updates: int | None = None  # iteration 0's updates on the prefill alone; None = steps / train_every
    world_model_only: bool = False  # iteration 0 trains only the world model: the actor starts learning
    # once imagination means something (an actor trained on an untrained model collapses onto noise)

    def validate(self) -> None:  # the bounds of every size and count: pipelines/limits.py
        _check_name("prefill.name", self.name)


@dataclass
class LoopConfig:
    """How acting and learning alternate; docs/pipeline.md, "The loop", has the policy lag of each mode.

    The paper's loop acts and updates in one process (one update every `train_every` steps, so the
    acting policy is at most 16 steps old). The pipeline cuts the run into iterations, each ending
    in a checkpoint and an evaluation. Two mechanisms bound how old the acting policy gets:
    iterations that start small and grow, and the online stage, in which the iteration's
    collectors act with the actor the learner publishes every `publish_every` updates.
    """

    online: bool = False  # collectors and learner run at the same time inside every iteration k >= 1
    first_iteration_steps: int = 0  # agent steps of iteration 1; 0 = steps_per_iteration (no growth)
    growth: float = 2.0  # iteration k+1 collects `growth` times iteration k's steps, up to steps_per_iteration
    publish_every: int = 100  # online: learner updates between actor publications
    lead_updates: int = 100  # online: how many updates' worth of steps the collectors may run ahead


@dataclass
class CollectConfig:
    """How iteration k's experience is gathered with the actor of iteration k-1."""

    envs: int = 1  # environments per collector job, acted on in one batch (the paper used one instance)
    threads: int = 1  # CPU threads a collector job asks Snakemake for (emulators and torch)
    policy_mode: str = "sample"  # the actor samples while collecting (exploration), as in the paper
    device: str = "auto"  # where the actor runs: "auto" = the GPU if there is one, else the CPU

    def validate(self) -> None:
        check_device("collect.device", self.device)
        if self.policy_mode not in ("sample", "greedy"):
            raise ValueError(f"collect.policy_mode must be 'sample' or 'greedy', got {self.policy_mode!r}")


@dataclass
class ActorGateConfig:
    """Hold the actor back until the reward head predicts held-out rewards (pipelines/stages/actor_gate.py).

    While the gate is closed the training stages train the world model only; it opens for good once
    the reward head's correlation on a held-out random-play store reaches `correlation`. Off in the
    paper's protocol: its actor learns from the first update."""

    correlation: float = 0.0  # the threshold on the held-out reward correlation; 0 = off (no gate)
    every: int = 250  # run updates between readings of the reward head
    held_out_steps: int = 5000  # agent steps of random play in the held-out store (made once per game)
    windows: int = 64  # at most this many T-step windows per reading, spread over the store (its cost)

    def validate(self) -> None:
        if not 0.0 <= self.correlation < 1.0:
            raise ValueError(f"train.actor_gate.correlation must lie in [0, 1) (0 = off), got {self.correlation!r}")
        if self.correlation > 0 and self.held_out_steps == 0:
            raise ValueError("train.actor_gate.correlation > 0 needs a held-out store: set train.actor_gate.held_out_steps")


@dataclass
class TrainConfig:
    """Optimisation settings of the training stages (the networks' own settings live in `agent`)."""

    batch_size: int = 16  # B sequences per batch (published code: 16; the paper's text: 50)
    sequence_length: int = 50  # T consecutive steps per sequence, cut inside one episode
    prioritize_ends: bool = True  # published code's sampler: extra weight on windows touching the end
    checkpoint_every: int = 1000  # updates between mid-stage checkpoints (a killed stage resumes there)
    video_sequences: int = 4  # sequences in each open-loop prediction video
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    torch_threads: int = 0  # 0 = torch's default; set it to the job's cores on shared machines
    loader_workers: int = 2  # DataLoader processes sampling batches beside the GPU (0 = in the stage's process)
    replay_device: str = "cpu"  # "cpu": read from the stores; "cuda"/"auto": the whole replay resident there
    actor_gate: ActorGateConfig = field(default_factory=ActorGateConfig)  # off by default (correlation 0)

    def validate(self) -> None:
        check_device("train.device", self.device)
        check_device("train.replay_device", self.replay_device)
        if self.actor_gate.correlation > 0 and self.actor_gate.held_out_steps < self.sequence_length:
            raise ValueError(f"train.actor_gate.held_out_steps ({self.actor_gate.held_out_steps}) must hold at least one "
                             f"window of train.sequence_length ({self.sequence_length}) steps")


@dataclass
class EvaluateConfig:
    """Greedy evaluation episodes after every iteration; sticky actions stay on (paper, Sec. 4)."""

    episodes: int = 10
    envs: int = 10  # episodes run in parallel environments, acted on in one batch (at most `episodes`)
    max_steps: int = 0  # cap on agent steps per episode; 0 = the environment's own time limit
    video: bool = True  # one more greedy episode, recorded as iter{k}/episode.mp4 (pipelines/acting/episode_video.py)
    device: str = "auto"  # where the actor runs: "auto" = the GPU if there is one, else the CPU

    def validate(self) -> None:
        check_device("evaluate.device", self.device)


@dataclass
class PretrainConfig:
    """Reward-free world-model pretraining from named datasets (optional; `pretrain: null` = off).

    The paper's ablation (Sec. 4, "no reward gradients into the representation" scores about the
    same as the full agent) is the basis: the representation can be learnt without rewards.
    """

    name: str = "reward-free"  # saved as {paths.pretrained}/{game}/{name}/world_model.pt
    datasets: list[str] = field(default_factory=list)  # dataset names or paths (see PipelineConfig.datasets)
    updates: int = 10_000  # world-model updates
    reward_free: bool = True  # drop the rewards from every batch: the reward head stays untrained
    initialise_runs: bool = True  # iteration 0 of every run starts from this world model

    def validate(self) -> None:
        _check_name("pretrain.name", self.name)
        if not self.datasets:
            raise ValueError("pretrain.datasets must name at least one dataset")


@dataclass
class AgentSection:
    """The DreamerV2 agent: a preset of `models.config` plus overrides of its fields."""

    preset: str = "atari"  # "atari" (the paper's sizes), "small" (CPU), "debug" (tests)
    overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {world_model: {kl_scale: 0.1}}


@dataclass
class LoggingConfig:
    """Where metrics go (pipelines/tracking/trackers.py). Every backend gets the same keys against frames."""

    backends: list[str] = field(default_factory=lambda: ["jsonl", "tensorboard"])  # also: wandb, mlflow
    project: str = "dreamer-pipeline"  # the W&B project and the MLflow experiment
    wandb_entity: str = ""  # "" = your default W&B entity
    wandb_mode: str = "online"  # "online", "offline" (sync later with `wandb sync`) or "disabled"
    mlflow_tracking_uri: str = ""  # "" = $MLFLOW_TRACKING_URI or MLflow's default (./mlruns)

    def validate(self) -> None:
        from .tracking.trackers import check_backends

        check_backends(self.backends)
        if self.wandb_mode not in ("online", "offline", "disabled"):
            raise ValueError(f"logging.wandb_mode must be online, offline or disabled, got {self.wandb_mode!r}")
        if not self.project:
            raise ValueError("logging.project must not be empty")


@dataclass
class PathsConfig:
    """Where results live. Point `datasets` at a shared filesystem to share stores across runs."""

    results: str = "results"
    datasets: str = ""  # "" = {results}/datasets
    pretrained: str = ""  # "" = {results}/pretrained

    def validate(self) -> None:
        if not self.results:
            raise ValueError("paths.results must not be empty")
        for key in ("results", "datasets", "pretrained"):
            value = getattr(self, key)
            bad = sorted({c for c in value if c in "{}\n\r\0"})
            if bad:  # Snakemake reads braces in a path as wildcards; the rest cannot be file names
                raise ValueError(f"paths.{key} must not contain {', '.join(repr(c) for c in bad)}, got {value!r}")


SUITES = ("atari", "dmc")
DEFAULT_ACTION_REPEAT = {"atari": 4, "dmc": 2}  # the papers' protocols: DreamerV2 Atari, dmc_vision


@dataclass
class PipelineConfig:
    """Everything `snakemake train_all` needs. See docs/pipeline.md for each key's role."""

    suite: str = "atari"  # "atari" (ale-py) or "dmc" (the DeepMind Control Suite from pixels)
    games: list[str] = field(default_factory=lambda: ["pong"])  # snake_case ALE ids (pong, james_bond) or DMC tasks (walker_walk)
    seeds: list[int] = field(default_factory=lambda: [0])
    variant: str = "default"  # names the run folder; use a new name when you change training settings
    frames_budget: int = 200_000_000  # environment frames per run, prefill included (paper: 200M)
    steps_per_iteration: int = 250_000  # agent steps collected per iteration (1M frames: the paper's eval interval)
    train_every: int = 16  # one update per this many collected agent steps (paper's replay ratio)
    replay_steps: int = 2_000_000  # the replay: the most recent agent steps of this run's stores
    collectors: int = 1  # parallel collector jobs per iteration, each with its own store and seed
    interleaved: bool = True  # world model, actor, critic per batch in one stage, as the paper's loop
    loop: LoopConfig = field(default_factory=LoopConfig)  # growing iterations, online stage
    offline: bool = False  # train from `datasets` only: no prefill, no collection; still evaluate
    iterations: int = 0  # 0 = as many as frames_budget allows; n = exactly iterations 0..n-1
    datasets: list[str] = field(default_factory=list)  # shared datasets added to every replay
    prefill: PrefillConfig = field(default_factory=PrefillConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    pretrain: PretrainConfig | None = None
    env: dict[str, Any] = field(default_factory=dict)  # overrides of the suite's EnvConfig or DMCConfig (pipelines/envs/)
    agent: AgentSection = field(default_factory=AgentSection)
    paths: PathsConfig = field(default_factory=PathsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def validate(self) -> None:
        if self.suite not in SUITES:
            raise ValueError(f"suite must be one of {', '.join(SUITES)}, got {self.suite!r}")
        self._check_sections()  # env (its action_repeat) before the bounds that use it
        check_limits(self)  # the bounds of every size and count, lower and upper (pipelines/limits.py)
        if not self.games:
            raise ValueError("games must name at least one game")
        if not self.seeds:
            raise ValueError("seeds must list at least one seed")
        for where, values in (("games", self.games), ("seeds", self.seeds)):
            duplicates = sorted({str(v) for v in values if values.count(v) > 1})
            if duplicates:
                raise ValueError(f"{where} lists {', '.join(duplicates)} more than once")
        if any(seed < 0 for seed in self.seeds):
            raise ValueError("seeds must not be negative")
        _check_name("variant", self.variant)
        if self.steps_per_iteration < self.train_every:
            raise ValueError("steps_per_iteration must be at least train_every (one update per iteration)")
        if self.offline and not self.datasets:
            raise ValueError("offline: true needs at least one entry in datasets to train from")
        if self.collectors > self.steps_per_iteration:
            raise ValueError("collectors must not exceed steps_per_iteration")
        if self.loop.first_iteration_steps > self.steps_per_iteration:
            raise ValueError("loop.first_iteration_steps must not exceed steps_per_iteration (the largest iteration)")
        if self.loop.first_iteration_steps and self.loop.first_iteration_steps < max(self.train_every, self.collectors):
            raise ValueError("loop.first_iteration_steps must be at least train_every and collectors")
        if self.loop.online and not self.interleaved:
            raise ValueError("loop.online needs interleaved: true (the learner trains world model, actor and "
                             "critic on every batch)")
        if self.loop.online and self.offline:
            raise ValueError("loop.online and offline exclude each other: offline training collects nothing")

    def _check_sections(self) -> None:
        """`env` and `agent.overrides` are stored as mappings (a run's own file and its checkpoints
        keep only what was set); their keys and values are checked here against their schemas:
        `env` against the suite's environment settings (Atari's EnvConfig, the Control Suite's
        DMCConfig), `agent.overrides` against the preset's AgentConfig."""
        from dreamer_pipeline.models.config import preset

        from .envs.registry import env_config_of

        env_config_of(self)
        preset(self.agent.preset, self.agent.overrides, where="agent")

    # ---- derived paths (the full run layout is pipelines.run_layout) ----
    @property
    def datasets_dir(self) -> str:
        return self.paths.datasets or f"{self.paths.results}/datasets"

    @property
    def pretrained_dir(self) -> str:
        return self.paths.pretrained or f"{self.paths.results}/pretrained"

    @property
    def action_repeat(self) -> int:
        return int(self.env.get("action_repeat", DEFAULT_ACTION_REPEAT.get(self.suite, 4)))

    @property
    def uses_pretraining(self) -> bool:
        return self.pretrain is not None and self.pretrain.initialise_runs


def _check_name(where: str, name: str) -> None:
    """Names become folder names and Snakemake wildcards: keep them to a safe alphabet."""
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ValueError(f"{where} must be a non-empty name of letters, digits, '-', '_' or '.', got {name!r}")


def config_from_mapping(data: Mapping[str, Any] | None) -> PipelineConfig:
    """Build a `PipelineConfig` from a plain mapping (e.g. Snakemake's `config`)."""
    return from_mapping(PipelineConfig, data or {})


def read_config_data(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML configuration file holds (no aliases, bounded nesting), not yet checked by
    the schema; a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist")
    data = load_yaml(path.read_text(), f"configuration file {path}")
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"configuration file {path} must hold a mapping of keys, got {type(data).__name__}")
    return dict(data or {})


def load_config(path: str | Path) -> PipelineConfig:
    """Read a YAML file of overrides (`config_overrides.load_config_with_settings` adds command-line
    `KEY=VALUE` settings on top). Raises `ConfigError` naming the file and the problem."""
    try:
        return config_from_mapping(read_config_data(path))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def dump_config(cfg: PipelineConfig) -> str:
    """The resolved configuration as YAML (written next to every output)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def budget_steps(cfg: PipelineConfig) -> int:
    return cfg.frames_budget // cfg.action_repeat
