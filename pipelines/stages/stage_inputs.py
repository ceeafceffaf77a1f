"""What a training stage was started from, so that its mid-stage checkpoint is resumed only by the same stage.

A partial checkpoint (`*.partial.pt`) is a cache of updates made on particular inputs. After a
forced rerun (`snakemake -R`), a changed setting or a rebuilt store, the same output path is
trained again on other inputs, and resuming the old partial would skip those updates and write the
old weights under the new name. So every partial records digests of its inputs:

- `checkpoint`: the bytes of the checkpoint the stage started from (`--resume-from`,
  `--init-world-model`, `--world-model`), or none;
- `replay`: every store of the replay with its writer id (a rebuilt store has a new one) and its
  committed steps when the stage started;
- `settings`: the agent's configuration (its runtime section aside: compile, threads and the like
  change no result) and the pipeline settings the updates depend on (batch, sequence length,
  replay window, the stage's seed, iteration and update count).

`resume_partial` loads a partial only when all three match and its architecture is the agent's;
any other partial (of other inputs, of another architecture, unreadable, or written before these
digests existed) is discarded with one `StalePartialWarning` naming why, and the stage starts over.
A partial is only ever a cache: discarding one loses time, never data.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from dreamer_pipeline.datasets.durable import file_sha256

from ..run_layout import partial_checkpoint

INPUT_KEYS = ("checkpoint", "replay", "settings")


class StalePartialWarning(UserWarning):
    """A partial checkpoint that does not belong to this stage's inputs was discarded."""


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def replay_identity(stores: Sequence[Any]) -> list[list[Any]]:
    """[path, writer id, committed steps] of every store (`datasets.store.ExperienceStore`)."""
    return [[str(Path(store.path).resolve()), store.attrs.get("writer_id"), int(store.num_steps)] for store in stores]


def stage_inputs(*, agent_config, stores: Sequence[Any], start: str | os.PathLike | None = None,
                 **settings: Any) -> dict[str, str]:
    """The digests a stage's partial must match (see the module doc). `settings` are the pipeline
    values the updates depend on (batch size, seed, iteration, ...)."""
    agent = {key: value for key, value in agent_config.to_dict().items() if key != "runtime"}
    return {
        "checkpoint": _digest(None if start is None else file_sha256(start)),
        "replay": _digest(replay_identity(stores)),
        "settings": _digest({"agent": agent, **settings}),
    }


def training_settings(cfg, **more: Any) -> dict[str, Any]:
    """The pipeline settings every training stage's updates depend on."""
    train = cfg.train
    return {"batch_size": train.batch_size, "sequence_length": train.sequence_length,
            "prioritize_ends": train.prioritize_ends, "replay_steps": cfg.replay_steps,
            "train_every": cfg.train_every, **more}


@dataclass(frozen=True)
class Resumed:
    """What a partial checkpoint gave back: the updates it holds (0: none) and the stage's own state
    (e.g. the actor gate's), read from the same file, which is read once."""

    done: int = 0
    stage_state: Mapping[str, Any] | None = None


def _discard(partial: Path, why: str) -> Resumed:
    warnings.warn(f"{partial}: discarded, {why}; the stage starts over", StalePartialWarning, stacklevel=3)
    partial.unlink(missing_ok=True)
    return Resumed()


def resume_partial(agent, out: str | os.PathLike, *, stage: str, updates: int,
                   inputs: Mapping[str, str] | None) -> Resumed:
    """Load `out`'s partial checkpoint into `agent` if it was made by this stage on these `inputs`;
    returns the updates it holds and the stage state it saved (`Resumed()`: nothing to resume; a
    stale partial is discarded). A stage calls it once, before its first update."""
    from dreamer_pipeline.models.checkpoint import architecture_differences

    from ..agent_io import AgentLoadError, read_payload

    partial = partial_checkpoint(out)
    if not partial.exists():
        return Resumed()
    try:
        payload = read_payload(partial)
    except AgentLoadError as error:
        return _discard(partial, f"it cannot be read ({error})")
    progress = payload.get("extra", {}).get("stage_progress") or {}
    if progress.get("stage") != stage or progress.get("updates") != updates:
        return _discard(partial, f"it belongs to {progress.get('stage')!r} with {progress.get('updates')} updates, "
                                 f"not {stage!r} with {updates}")
    differences = architecture_differences(payload, agent.config, agent.action_space)
    if differences:
        return _discard(partial, "it holds another architecture (" + "; ".join(differences[:3]) + ")")
    saved = progress.get("inputs") or {}
    changed = [key for key in INPUT_KEYS if inputs is not None and saved.get(key) != inputs.get(key)]
    if changed:
        names = {"checkpoint": "the starting checkpoint", "replay": "the replay's stores", "settings": "the settings"}
        return _discard(partial, "it was made from other inputs (" + ", ".join(names[key] for key in changed)
                        + " changed since)")
    try:
        agent.load_state_dict(payload["state"])
    except (KeyError, RuntimeError, ValueError) as error:
        return _discard(partial, f"its weights do not fit the agent ({error})")
    return Resumed(int(progress.get("done", 0)), payload.get("extra", {}).get("stage_state"))
