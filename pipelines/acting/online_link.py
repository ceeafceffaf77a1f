"""The files through which an online stage's learner and its collectors talk (one folder per iteration).

    iter{k}/online/plan.json         {"train_every", "lead_updates", "shards": [{"target", "share"}]}
                                     written once by the learner before it starts the collectors
    iter{k}/online/actor.pt          the published actor: the agent's configuration, the acting
                                     weights (encoder, RSSM, actor) and the learner's update count
    iter{k}/online/learner.json      {"updates", "target", "finished"}: the learner's progress
    iter{k}/online/collector{j}.json {"steps", "target", "finished"}: agent steps collector j has
                                     taken (committed or still in an unfinished episode); once it
                                     reached its target, `finished` and the store's exact count

Both sides hold the replay ratio through these files (docs/pipeline.md, "The online stage"): the
learner makes at most one update per `train_every` steps the collectors have taken, and collector
j takes at most its share of `(updates + lead) * train_every` steps. Every file is written
atomically (a temporary sibling, then a rename), so a reader sees the old or the new version,
never a torn one. The actor file is a plain dict of tensors, read with `weights_only=True`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreamer_pipeline.datasets.durable import atomic_write, atomic_write_json

ACTOR_FORMAT = "dreamer-pipeline/online-actor"
ACTOR_FORMAT_VERSION = 1
# The world-model parts acting needs; the decoder and the reward and discount heads stay behind.
ACTING_PREFIXES = ("encoder.", "rssm.")


@dataclass(frozen=True)
class OnlineLink:
    """Paths of one online iteration's exchange folder."""

    folder: Path

    @classmethod
    def at(cls, folder: str | os.PathLike) -> "OnlineLink":
        return cls(Path(folder))

    @property
    def actor(self) -> Path:
        return self.folder / "actor.pt"

    @property
    def learner(self) -> Path:
        return self.folder / "learner.json"

    @property
    def plan(self) -> Path:
        return self.folder / "plan.json"

    def collector(self, shard: int) -> Path:
        return self.folder / f"collector{int(shard)}.json"

    def collector_log(self, shard: int) -> Path:
        return self.folder / f"collector{int(shard)}.log"

    # ---- the learner's side ----
    def publish_actor(self, agent, updates: int) -> None:
        """Write the acting weights of `agent` after `updates` updates (atomically)."""
        import torch

        world_model = {k: v.detach().cpu() for k, v in agent.world_model.state_dict().items()
                       if k.startswith(ACTING_PREFIXES)}
        payload = {
            "format": ACTOR_FORMAT,
            "format_version": ACTOR_FORMAT_VERSION,
            "config": agent.config.to_dict(),
            "action_space": agent.action_space.to_dict(),
            "updates": int(updates),
            "world_model": world_model,
            "actor": {k: v.detach().cpu() for k, v in agent.actor_critic.actor.state_dict().items()},
        }
        atomic_write(self.actor, lambda tmp: torch.save(payload, tmp))

    def write_plan(self, train_every: int, lead_updates: int, targets: list[int], lineage: str | None = None) -> None:
        """`lineage` names what the learner started from (a digest); the collectors record it in
        their stores' provenance, so a store of a superseded learner is never resumed."""
        total = sum(targets)
        shards = [{"target": int(t), "share": t / total} for t in targets]
        _write_json(self.plan, {"train_every": int(train_every), "lead_updates": int(lead_updates), "shards": shards,
                                **({"lineage": str(lineage)} if lineage else {})})

    def write_learner(self, updates: int, target: int, finished: bool = False) -> None:
        _write_json(self.learner, {"updates": int(updates), "target": int(target), "finished": bool(finished)})

    # ---- the collectors' side ----
    def write_collector(self, shard: int, steps: int, target: int, finished: bool = False) -> None:
        _write_json(self.collector(shard), {"steps": int(steps), "target": int(target), "finished": bool(finished)})

    def read_actor(self) -> dict[str, Any] | None:
        """The published actor, or None if none is published yet."""
        import torch

        try:
            payload = torch.load(self.actor, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            return None
        if not isinstance(payload, dict) or payload.get("format") != ACTOR_FORMAT:
            raise OnlineLinkError(f"{self.actor}: not a published online actor")
        if payload.get("format_version") != ACTOR_FORMAT_VERSION:
            raise OnlineLinkError(f"{self.actor}: format version {payload.get('format_version')!r}, "
                                  f"expected {ACTOR_FORMAT_VERSION}")
        return payload

    def actor_version(self) -> int | None:
        """A cheap change marker of the actor file (its mtime in ns), or None if absent."""
        try:
            return self.actor.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def read_plan(self) -> dict[str, Any]:
        plan = _read_json(self.plan, {})
        if not plan:
            raise OnlineLinkError(f"{self.plan}: missing; the learner writes it before it starts the collectors")
        return plan

    def read_learner(self) -> dict[str, Any]:
        return _read_json(self.learner, {"updates": 0, "target": 0, "finished": False})

    def read_collector(self, shard: int) -> dict[str, Any]:
        return _read_json(self.collector(shard), {"steps": 0, "target": 0, "finished": False})


class OnlineLinkError(RuntimeError):
    """An exchange file of the online stage that cannot be used."""


def _write_json(path: Path, data: dict) -> None:
    """Replace `path` atomically. No fsync: these files are rewritten many times a second, and after
    a crash the stage restarts from the stores and its partial checkpoint, not from them."""
    atomic_write_json(path, data, fsync=False)


def _read_json(path: Path, default: dict) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return dict(default)
    except json.JSONDecodeError as error:  # files are replaced atomically: this is corruption
        raise OnlineLinkError(f"{path}: not valid JSON ({error})") from None
