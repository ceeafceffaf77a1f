"""The Snakefile's Python side: validated configuration, layout and the input functions of its rules.

The Snakefile only wires rules; every decision (which stores an iteration's replay reads, what a
collector's seed is, where iteration 0 starts from) lives here, where tests can call it directly.
`load_workflow(config)` validates Snakemake's `config` with the same code as `check-config`, so a
bad configuration stops the workflow before any job starts.
"""

from __future__ import annotations

import atexit
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from .check_config import validate_config
from .config import PipelineConfig, config_from_mapping
from .config_overrides import apply_overrides
from .config_snapshot import check_shared_outputs, check_snapshot, write_snapshot
from .config_yaml import check_plain_tree
from .dataset_refs import resolve_dataset
from .results_lock import ResultsLock
from .run_layout import RunLayout, iteration_name
from .schedule import Iteration, eval_seed, plan, replay_iterations, shard_seed
from .stages.actor_gate import gate_enabled, held_out_name


def _k(iteration) -> int:
    return int(iteration)


@dataclass
class WorkflowPlan:
    cfg: PipelineConfig
    layout: RunLayout
    iterations: list[Iteration] = field(init=False)

    def __post_init__(self) -> None:
        self.iterations = plan(self.cfg)
        self._lock: ResultsLock | None = None

    # ---- the running workflow (Snakefile's onstart, onsuccess and onerror) ----
    def start(self) -> None:
        """Take the results folder's lock (one running workflow per folder), then write the
        configuration snapshot the stages read. Planning does neither."""
        self._lock = ResultsLock(self.layout.results).acquire()
        atexit.register(self.finish)  # also when Snakemake ends without its onsuccess/onerror hooks
        write_snapshot(self.layout.config_snapshot(self.variant), self.cfg)

    def finish(self) -> None:
        if self._lock is not None:
            self._lock.release()

    # ---- the whole workflow ----
    @property
    def variant(self) -> str:
        return self.cfg.variant

    @property
    def last_iteration(self) -> int:
        return self.iterations[-1].index

    def runs(self) -> list[tuple[str, int]]:
        return [(game, seed) for game in self.cfg.games for seed in self.cfg.seeds]

    def all_evals(self) -> list[str]:
        return [
            self.layout.eval_json(game, self.variant, seed, it.index)
            for game, seed in self.runs()
            for it in self.iterations
        ]

    def other_variants_evals(self) -> list[str]:
        """The eval.json files of the other variants already in the results folder: inputs of the
        report across variants, so it is redone when another variant's results change. Globbed
        when the workflow is planned (the results lock keeps other workflows out meanwhile)."""
        root = Path(self.layout.runs_root())
        found = root.glob(f"*/*/seed*/{iteration_name('*')}/eval.json")
        return sorted(str(path) for path in found if path.parts[-4] != self.variant)

    def final_evals(self) -> list[str]:
        return [self.layout.eval_json(g, self.variant, s, self.last_iteration) for g, s in self.runs()]

    def staged_iterations(self) -> str:
        """The iteration wildcard's pattern of the rule training on a finished replay (train_agent, or
        staged training's train_world_model): with `loop.online` only iteration 0 (on the prefill),
        every later one is an online stage."""
        return "0000" if self.cfg.loop.online else r"\d{4}"

    def wildcard_constraints(self) -> dict[str, str]:
        return {
            "game": "|".join(re.escape(g) for g in self.cfg.games),
            "variant": re.escape(self.variant),
            "seed": r"\d+",
            "iteration": r"\d{4}",
            "shard": r"\d+",
        }

    # ---- shared datasets ----
    @cached_property
    def _shared(self) -> dict[str, list]:
        return {
            game: [resolve_dataset(self.cfg, self.layout, game, e, where="datasets") for e in self.cfg.datasets]
            for game in self.cfg.games
        }

    def shared_built(self, game: str) -> list[str]:
        """Markers of the shared datasets this workflow builds itself (Snakemake inputs)."""
        return [ref.source for ref in self._shared[game] if ref.built]

    def shared_external(self, game: str) -> list[str]:
        """Shared datasets that already exist (passed as parameters)."""
        return [ref.source for ref in self._shared[game] if not ref.built]

    def held_out(self, game: str) -> list[str]:
        """The actor gate's held-out store of `game` (its marker), a training input while the gate is
        on (`train.actor_gate`); read by the gate only, never part of a replay."""
        return [self.layout.dataset_marker(game, held_out_name(self.cfg))] if gate_enabled(self.cfg) else []

    def pretrain_sources(self, game: str) -> tuple[list[str], list[str]]:
        """(built markers, external sources) of the pretraining datasets."""
        assert self.cfg.pretrain is not None
        refs = [resolve_dataset(self.cfg, self.layout, game, e, where="pretrain.datasets") for e in self.cfg.pretrain.datasets]
        return [r.source for r in refs if r.built], [r.source for r in refs if not r.built]

    # ---- one iteration of one run ----
    def replay(self, game: str, seed, iteration, own: bool = True) -> list[str]:
        """The run's own stores iteration k's replay can reach, oldest first (markers). `own=False`
        leaves out iteration k's own shards (the online stage writes them while it trains)."""
        k = _k(iteration)
        with_prefill, collected = replay_iterations(self.cfg, self.iterations, k)
        sources = [self.layout.dataset_marker(game, self.cfg.prefill.name)] if with_prefill else []
        for i in collected:
            if i == k and not own:
                continue
            sources += [self.layout.shard_marker(game, self.variant, seed, i, j) for j in range(self.iterations[i].num_shards)]
        return sources

    def start_from(self, game: str, seed, iteration) -> dict[str, str]:
        """Where iteration k's training starts: k-1's agent, the pretrained world model, or nothing."""
        k = _k(iteration)
        if k > 0:
            return {"previous": self.layout.agent(game, self.variant, seed, k - 1, self.cfg.interleaved)}
        if self.cfg.uses_pretraining:
            return {"pretrained": self.layout.pretrained_world_model(game, self.cfg.pretrain.name)}
        return {}

    def agent(self, game: str, seed, iteration) -> str:
        return self.layout.agent(game, self.variant, seed, _k(iteration), self.cfg.interleaved)

    def shards(self, game: str, seed, iteration) -> list[str]:
        k = _k(iteration)
        return [self.layout.shard_marker(game, self.variant, seed, k, j) for j in range(self.iterations[k].num_shards)]

    def shard_steps(self, iteration, shard) -> int:
        return self.iterations[_k(iteration)].shard_steps[int(shard)]

    def shard_seed(self, seed, iteration, shard) -> int:
        return shard_seed(int(seed), _k(iteration), int(shard))

    def eval_seed(self, seed, iteration) -> int:
        return eval_seed(int(seed), _k(iteration))

    def train_mode(self, iteration) -> str:
        """train-agent's mode flag for iteration k: the paper's interleaved step, or the world model
        alone for iteration 0's warm-up (`prefill.world_model_only`)."""
        if _k(iteration) == 0 and self.cfg.prefill.world_model_only:
            return "--world-model-only"
        return "--interleaved"

    def updates(self, iteration) -> int:
        return self.iterations[_k(iteration)].updates

    def frames(self, iteration) -> int:
        """Environment frames the run has collected by the end of iteration k's collection."""
        return self.iterations[_k(iteration)].steps_after * self.cfg.action_repeat

    def updates_before(self, iteration) -> int:
        return sum(it.updates for it in self.iterations[: _k(iteration)])


def load_workflow(config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> WorkflowPlan:
    """Validate Snakemake's `config`; raise `ConfigError` naming the problem. Writes nothing:
    `WorkflowPlan.start()` (the workflow's `onstart`) writes the snapshot the stages read.

    `overrides` are the `--config KEY=VALUE` entries only (Snakemake's `config_settings.config`):
    their values arrive as strings and are typed by the schema first (`config_overrides`); values
    from configuration files keep their YAML types. A configuration with YAML aliases or absurd
    nesting is refused before anything walks it (`config_yaml.check_plain_tree`)."""
    check_plain_tree(config, "configuration")
    if overrides:
        check_plain_tree(overrides, "--config")
        config = apply_overrides(config, overrides)
    cfg = config_from_mapping(dict(config))
    layout = RunLayout.from_config(cfg)
    validate_config(cfg, layout)
    check_snapshot(layout.config_snapshot(cfg.variant), cfg)
    check_shared_outputs(cfg, layout)
    return WorkflowPlan(cfg, layout)
