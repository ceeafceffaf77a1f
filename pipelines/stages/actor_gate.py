"""The actor gate: hold the actor back until the reward head predicts held-out rewards.

Why (docs/learning.md, "Levers"): on a CPU budget Boxing's reward head is still young when the
actor starts, and the actor learns from its errors. Its entropy fell from 2.8 to 0.7 within 300
updates and the greedy return went to -100. With `train.actor_gate.correlation` > 0 the training
stages that train the actor make world-model updates only (`agent.train_world_model`) while the
gate is closed. Every `every` updates of the run the reward head is read on the held-out store
(`pipelines/held_out_reward.py`: posterior features of whole T-step windows, the head's mean
against its target). The gate opens once the correlation reaches the threshold, and then stays
open for the rest of the run. While it is closed the actor and critic keep their initial weights,
so the collectors act with the untrained, near-uniform actor: random exploration.

The held-out store is random play of the same game with another seed (`HELD_OUT_SEED`), made once
per game beside the prefill store, `{paths.datasets}/{game}/{held_out_name(cfg)}.zarr` (the
Snakefile's `held_out_store` rule), and shared like it. It never joins a replay.

The gate's state (open or closed, the last correlation, the update of the last reading, the update
at which it opened) goes into every partial checkpoint, so a stage resumed after a kill continues
it. It also goes into the stage's output checkpoint (`extra["actor_gate"]`), from which the next
stage or iteration continues. The state records its inputs (threshold, cadence, held-out store,
windows). A state whose inputs differ from the configuration's is not reused: the gate starts
closed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..held_out_reward import HeldOutError, held_out_windows, reward_correlation, reward_predictions

HELD_OUT_SEED = 1000  # other episodes than the prefill's (seed 0); the reward screen's held-out seed too
STATE_FORMAT = 1


def gate_enabled(cfg) -> bool:
    return cfg.train.actor_gate.correlation > 0


def held_out_name(cfg) -> str:
    """The held-out store's name: the prefill's with the step count, so that another size is
    another store (the collector would otherwise resume, or refuse, the old one)."""
    return f"{cfg.prefill.name}-heldout{cfg.train.actor_gate.held_out_steps}"


@dataclass
class GateState:
    open: bool = False
    correlation: float | None = None  # the last reading
    read_at: int | None = None  # the run's update count at the last reading
    opened_at: int | None = None  # the run's update count at which the gate opened


class ActorGate:
    """One stage's gate. `updates` is the run's update count before the stage's next update."""

    def __init__(self, settings, store: str | Path, *, sequence_length: int, updates: int,
                 log: Callable[[dict, int], None] | None = None):
        self.settings = settings
        self.store = Path(store)
        self.sequence_length = sequence_length
        self.updates = updates
        self.log = log
        self.state = GateState()
        self.windows = held_out_windows(self.store, sequence_length, settings.windows)
        if not self.windows["reward"].std() > 0:  # the head's target, tanh(r) or r, is then constant too
            raise HeldOutError(
                f"held-out store {self.store}: the same reward at every step of its {len(self.windows['reward'])} "
                f"windows of {sequence_length} steps, so the reward correlation is undefined and the actor gate "
                "could never open; raise train.actor_gate.held_out_steps")

    @property
    def inputs(self) -> dict[str, Any]:
        """What a reading depends on besides the weights: a saved state is reused only while these match."""
        return {"correlation": float(self.settings.correlation), "every": int(self.settings.every),
                "held_out": self.store.name, "windows": len(self.windows["reward"]),
                "sequence_length": int(self.sequence_length)}

    @property
    def is_open(self) -> bool:
        return self.state.open

    def read(self, agent) -> float:
        """Read the reward head on the held-out windows; open the gate if the threshold is reached."""
        correlation = reward_correlation(*reward_predictions(agent, self.windows))
        self.state.correlation, self.state.read_at = correlation, self.updates
        if not self.state.open and correlation >= self.settings.correlation:  # NaN never opens it
            self.state.open, self.state.opened_at = True, self.updates
        if self.log is not None:
            self.log({"gate/reward_correlation": correlation, "gate/open": float(self.state.open)}, self.updates)
        return correlation

    def wrap(self, agent, full_step: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """The stage's step: `full_step` once the gate is open, world-model updates while it is closed;
        a reading after every `every`-th update of the run."""
        def step(batch):
            metrics = full_step(batch) if self.state.open else agent.train_world_model(batch)
            self.updates += 1
            if self.updates % self.settings.every == 0:
                self.read(agent)
            return metrics

        return step

    # ---- persistence: partial checkpoints (resumable_updates' stage_state) and stage outputs ----
    def state_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "inputs": self.inputs, "updates": self.updates, **asdict(self.state)}

    def load_state_dict(self, saved: Mapping[str, Any] | None) -> bool:
        """Continue from `saved` (its update count always; open, correlation and the rest only if
        its inputs are this gate's). Returns whether the state was reused."""
        if not isinstance(saved, Mapping) or saved.get("format") != STATE_FORMAT:
            return False
        if isinstance(saved.get("updates"), int):
            self.updates = saved["updates"]
        if saved.get("inputs") != self.inputs:
            self.state = GateState()
            return False
        self.state = GateState(open=bool(saved["open"]), correlation=saved["correlation"], read_at=saved["read_at"],
                               opened_at=saved["opened_at"])
        return True


def stage_gate(cfg, game: str, *, carried: Mapping[str, Any] | None, logger, frames: int, updates: int,
               updates_before: int) -> ActorGate | None:
    """The gate of one training stage (None when `train.actor_gate` is off), continuing the state
    `carried` in the checkpoint the stage starts from (`extra`), if its inputs match."""
    # imported here, not above: the Snakefile imports this module's names, and its parse stays free
    # of the stages' command-line and training modules
    import click

    from ..run_layout import RunLayout
    from .training import update_frames

    if not gate_enabled(cfg):
        return None
    layout = RunLayout.from_config(cfg)
    marker = Path(layout.dataset_marker(game, held_out_name(cfg)))
    if not marker.is_file():
        raise click.ClickException(
            f"the actor gate's held-out store is not complete ({marker} does not exist): snakemake makes it "
            f"(rule held_out_store), or: dreamer-pipeline prefill --seed {HELD_OUT_SEED} --steps "
            f"{cfg.train.actor_gate.held_out_steps} --store {layout.dataset_store(game, held_out_name(cfg))} "
            f"--marker {marker} --game {game} --config CONFIG")

    def log(metrics: dict, update: int) -> None:
        logger.log(metrics, frames=update_frames(cfg, frames, updates, update - updates_before, updates_before),
                   updates=update)

    try:
        gate = ActorGate(cfg.train.actor_gate, layout.dataset_store(game, held_out_name(cfg)),
                         sequence_length=cfg.train.sequence_length, updates=updates_before, log=log)
    except HeldOutError as error:
        raise click.ClickException(str(error)) from None
    saved = (carried or {}).get("actor_gate")
    if saved is not None and not gate.load_state_dict(saved):
        click.echo("actor gate: the checkpoint's gate state was made with other settings; starting closed")
    gate.updates = updates_before
    return gate


def gated_step(gate: ActorGate | None, agent, full_step: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return full_step if gate is None else gate.wrap(agent, full_step)


def checkpoint_extra(gate: ActorGate | None) -> dict[str, Any]:
    """What a stage's output checkpoint records of the gate (`save_agent(..., extra=...)`)."""
    return {} if gate is None else {"actor_gate": gate.state_dict()}


def behaviour_allowed(gate: ActorGate | None, agent, updates: int) -> bool:
    """Whether a behaviour-only stage (the staged loop's train-actor-critic, its world model frozen)
    may train the actor. A closed gate reads the stage's world model once, at the run's `updates`."""
    if gate is None:
        return True
    gate.updates = updates
    if not gate.is_open:
        gate.read(agent)
    return gate.is_open
