"""Every path of the run layout, in one place. The Snakefile and the stages both use it.

    {datasets}/{game}/{name}.zarr                     shared store (random prefill, imports)
    {datasets}/{game}/{name}.json                     its marker: written atomically once complete
    {pretrained}/{game}/{name}/world_model.pt          reward-free pretraining (+ config.yaml, metrics)
    {results}/runs/{game}/{variant}/seed{seed}/
        config.yaml  metrics.jsonl  tensorboard/
        compile_cache/                                torch.compile's caches, shared by the run's stages
        iter{k:04d}/
            experience/shard{j}.zarr  shard{j}.json   collector store and its marker
            agent.pt                                  interleaved (the default): the whole agent
            world_model.pt  actor_critic.pt           staged (`interleaved: false`): world model, then
                                                      the whole agent after actor-critic training
            eval.json  episode.mp4  videos/  config.yaml
            online/                                   the online stage's exchange files and collector logs
            *.partial.pt                              mid-stage checkpoints (never declared outputs)
    {results}/scores/                                  the report across every variant present:
        scores.md  scores.json  plots/                one row per variant in each table
        variants/{variant}/scores.md  scores.json  plots/   each variant's own report
    {results}/logs/...                                 one log per Snakemake job

Why markers: Snakemake deletes the declared outputs of a job that did not finish. A store is
therefore never a declared output; its small JSON marker is, and the store lives beside it, so a
killed collector resumes its store instead of starting over.

Every method accepts either concrete values or Snakemake wildcard strings ("{game}"), so the
same function yields both a path and a rule's output pattern. The stages build their paths here
too: a training stage's run folder is `RunLayout.from_config(cfg).run_dir(game, cfg.variant, seed)`,
never a folder recovered from its `--out` path.

Before the default (interleaved) checkpoint was named `agent.pt` it was `world_model.pt`; such
files still load anywhere a checkpoint path is given (`--resume-from`, `evaluate --agent`, `watch`):
no code reads a checkpoint's kind from its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def iteration_name(iteration: int | str) -> str:
    return f"iter{iteration:04d}" if isinstance(iteration, int) else f"iter{iteration}"


def store_for_marker(marker: str | Path) -> Path:
    """`.../name.json` -> `.../name.zarr`."""
    return Path(marker).with_suffix(".zarr")


METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def metrics_file(folder: str | Path) -> Path:
    """The metrics of the stages logging into `folder` (a run folder, or a pretraining folder)."""
    return Path(folder) / METRICS_FILE


def tensorboard_dir(folder: str | Path) -> Path:
    return Path(folder) / TENSORBOARD_DIR


@dataclass(frozen=True)
class RunLayout:
    results: str = "results"
    datasets_root: str = ""
    pretrained_root: str = ""

    @classmethod
    def from_config(cls, cfg) -> "RunLayout":
        return cls(cfg.paths.results, cfg.datasets_dir, cfg.pretrained_dir)

    def _datasets(self) -> str:
        return self.datasets_root or f"{self.results}/datasets"

    def _pretrained(self) -> str:
        return self.pretrained_root or f"{self.results}/pretrained"

    # ---- shared datasets ----
    def dataset_store(self, game, name) -> str:
        return f"{self._datasets()}/{game}/{name}.zarr"

    def dataset_marker(self, game, name) -> str:
        return f"{self._datasets()}/{game}/{name}.json"

    # ---- pretraining ----
    def pretrained_dir(self, game, name) -> str:
        return f"{self._pretrained()}/{game}/{name}"

    def pretrained_world_model(self, game, name) -> str:
        return f"{self.pretrained_dir(game, name)}/world_model.pt"

    # ---- one run ----
    def run_dir(self, game, variant, seed) -> str:
        return f"{self.results}/runs/{game}/{variant}/seed{seed}"

    def metrics(self, game, variant, seed) -> str:
        return str(metrics_file(self.run_dir(game, variant, seed)))

    def iteration_dir(self, game, variant, seed, iteration) -> str:
        return f"{self.run_dir(game, variant, seed)}/{iteration_name(iteration)}"

    def shard_store(self, game, variant, seed, iteration, shard) -> str:
        return f"{self.iteration_dir(game, variant, seed, iteration)}/experience/shard{shard}.zarr"

    def shard_marker(self, game, variant, seed, iteration, shard) -> str:
        return f"{self.iteration_dir(game, variant, seed, iteration)}/experience/shard{shard}.json"

    def agent_checkpoint(self, game, variant, seed, iteration) -> str:
        """Interleaved training's output (train-agent, train-online): the whole agent."""
        return f"{self.iteration_dir(game, variant, seed, iteration)}/agent.pt"

    def world_model(self, game, variant, seed, iteration) -> str:
        """Staged training's first output (train-world-model): the agent after world-model updates."""
        return f"{self.iteration_dir(game, variant, seed, iteration)}/world_model.pt"

    def actor_critic(self, game, variant, seed, iteration) -> str:
        """Staged training's second output (train-actor-critic): the whole agent."""
        return f"{self.iteration_dir(game, variant, seed, iteration)}/actor_critic.pt"

    def agent(self, game, variant, seed, iteration, interleaved: bool) -> str:
        """The checkpoint holding iteration k's finished agent (world model, actor and critic)."""
        if interleaved:
            return self.agent_checkpoint(game, variant, seed, iteration)
        return self.actor_critic(game, variant, seed, iteration)

    def online_dir(self, game, variant, seed, iteration) -> str:
        """The online stage's exchange files (pipelines/acting/online_link.py) and collector logs."""
        return f"{self.iteration_dir(game, variant, seed, iteration)}/online"

    def eval_json(self, game, variant, seed, iteration) -> str:
        return f"{self.iteration_dir(game, variant, seed, iteration)}/eval.json"

    def videos_dir(self, game, variant, seed, iteration) -> str:
        return f"{self.iteration_dir(game, variant, seed, iteration)}/videos"

    def eval_video(self, game, variant, seed, iteration) -> str:
        """One greedy evaluation episode, MP4 (evaluate's own output: `videos/` belongs to training)."""
        return f"{self.iteration_dir(game, variant, seed, iteration)}/episode.mp4"

    # ---- scores and logs ----
    def runs_root(self) -> str:
        """Every run of every variant (what the report across variants reads)."""
        return f"{self.results}/runs"

    def scores_dir(self, variant=None) -> str:
        """The report across every variant present (`variant` None), or one variant's own report.

        Variant reports sit one level down, under `variants/`, so no variant name can collide with
        the combined report's own files (`scores.md`, `plots/`)."""
        base = f"{self.results}/scores"
        return base if variant is None else f"{base}/variants/{variant}"

    def scores_table(self, variant=None) -> str:
        return f"{self.scores_dir(variant)}/scores.md"

    def scores_json(self, variant=None) -> str:
        return f"{self.scores_dir(variant)}/scores.json"

    def scores_plots(self, variant=None) -> str:
        return f"{self.scores_dir(variant)}/plots"

    def config_snapshot(self, variant) -> str:
        """The resolved configuration the Snakefile validated, read by every stage of `variant`."""
        return f"{self.results}/configs/{variant}.yaml"

    def log(self, *parts) -> str:
        return f"{self.results}/logs/" + "/".join(str(p) for p in parts) + ".log"


def partial_checkpoint(output: str | Path) -> Path:
    """The undeclared mid-stage checkpoint of a declared checkpoint output (Snakemake never deletes it)."""
    output = Path(output)
    return output.with_name(output.stem + ".partial.pt")


def compile_cache_dir(run_dir: str | Path) -> Path:
    """torch.compile's on-disk caches of a run (or of a pretraining folder): every training stage
    of every iteration reuses what the first one compiled (torch keys entries by code and inputs)."""
    return Path(run_dir) / "compile_cache"


def stage_run_dir(cfg, game, seed) -> Path:
    """The run folder a stage of (game, cfg.variant, seed) logs into, from its configuration."""
    return Path(RunLayout.from_config(cfg).run_dir(game, cfg.variant, seed))
