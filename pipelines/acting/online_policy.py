"""A collector policy that follows the learner of an online stage (see `pipelines.acting.online_link`).

It acts like `AgentPolicy` with the newest actor the learner published: before every vector step
it checks the actor file's change marker (a `stat`) and loads new weights when they changed. It
also holds the replay ratio from the collector's side: collector j takes at most its share of
`(learner updates + lead) * train_every` agent steps, and waits (polling the learner's progress
file) while it is ahead. It reports the agent steps it has taken, counting the store's committed
agent steps from before a resume, so the learner can hold the ratio from its side too.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .agent_policy import AgentPolicy
from .online_link import OnlineLink, OnlineLinkError


def following_policy(link: OnlineLink, shard: int, store: str | Path, *, mode: str = "sample",
                     device: str = "cpu") -> "FollowingPolicy":
    """Collector `shard`'s policy, built from the link's plan and the published actor's configuration."""
    from dreamer_pipeline.models.agent import Agent
    from dreamer_pipeline.models.config import AgentConfig
    from dreamer_pipeline.models.config_schema import from_mapping

    plan = link.read_plan()
    shards = plan["shards"]
    if not 0 <= shard < len(shards):
        raise OnlineLinkError(f"{link.plan}: no shard {shard} (the plan has {len(shards)})")
    payload = link.read_actor()
    if payload is None:
        raise OnlineLinkError(f"{link.actor}: missing; the learner publishes it before it starts the collectors")
    from dreamer_pipeline.datasets.action_space import ActionSpace, ActionSpaceError

    try:
        action_space = ActionSpace.from_dict(payload["action_space"])
    except (KeyError, ActionSpaceError) as error:
        raise OnlineLinkError(f"{link.actor}: no valid action space ({error})") from None
    agent = Agent(from_mapping(AgentConfig, payload["config"]), device=device, action_space=action_space)
    policy = FollowingPolicy(agent, link, shard, store=store, target_steps=shards[shard]["target"],
                             share=shards[shard]["share"], train_every=plan["train_every"],
                             lead_updates=plan["lead_updates"], mode=mode)
    if plan.get("lineage"):  # the learner's start: a store collected for another one is not resumed
        policy.provenance["lineage"] = str(plan["lineage"])
    return policy


class FollowingPolicy(AgentPolicy):
    """`AgentPolicy` whose weights follow `link.actor`, rate-limited by the learner's progress."""

    def __init__(self, agent, link: OnlineLink, shard: int, *, store: str | Path, target_steps: int,
                 share: float, train_every: int, lead_updates: int, mode: str = "sample",
                 poll_seconds: float = 0.02, report_steps: int = 64, wait_timeout: float = 3600.0):
        super().__init__(agent, mode=mode, provenance={"kind": "online", "link": str(link.folder), "shard": int(shard)})
        if not 0 < share <= 1:
            raise ValueError(f"share must lie in (0, 1], got {share}")
        self.link, self.shard, self.store = link, int(shard), Path(store)
        self.target_steps, self.share = int(target_steps), float(share)
        self.train_every, self.lead_updates = int(train_every), int(lead_updates)
        self.poll_seconds, self.report_steps, self.wait_timeout = poll_seconds, int(report_steps), wait_timeout
        # The learner starts its collectors: if it dies (SIGKILL, out of memory), the collector is
        # re-parented and must stop instead of waiting, lock held, for a learner that never comes.
        self.learner_pid = os.getppid()
        self.steps = 0  # agent steps taken by this shard's collector, committed ones of earlier runs included
        self.updates_seen = -1  # the learner update count of the loaded actor
        self.waited_seconds = 0.0
        self._version: int | None = None
        self._reported = -1
        self._learner: dict[str, Any] = {"updates": 0, "finished": False}

    # ---- Policy protocol ----
    def initial_state(self, batch_size: int):
        from dreamer_pipeline.datasets.store import ExperienceStore

        from .collector import stored_agent_steps

        # The collector opened (and trimmed) the store before this call: resume from its committed
        # agent steps (each episode's reset step is stored but is no step taken).
        if (self.store / "zarr.json").exists():
            store = ExperienceStore(self.store)
            self.steps = stored_agent_steps(store.num_steps, store.num_episodes)
        else:
            self.steps = 0
        self._report()
        deadline = time.monotonic() + self.wait_timeout
        while not self._reload():
            self._check_learner_alive()
            if time.monotonic() > deadline:
                raise OnlineLinkError(f"{self.link.actor}: no actor published within {self.wait_timeout:.0f} s")
            time.sleep(self.poll_seconds)
        return super().initial_state(batch_size)

    def act(self, image: np.ndarray, is_first: np.ndarray, state: Any):
        self._wait_for_learner(len(image))
        self._reload()
        actions, state = super().act(image, is_first, state)
        self.steps += len(image)
        if self.steps - self._reported >= self.report_steps:
            self._report()
        return actions, state

    # ---- internals ----
    def allowed_steps(self) -> float:
        """Steps this collector may have taken given the learner's progress (inf once it finished)."""
        if self._learner.get("finished"):
            return math.inf
        updates = int(self._learner.get("updates", 0)) + self.lead_updates
        return math.ceil(updates * self.train_every * self.share)

    def _wait_for_learner(self, count: int) -> None:
        self._learner = self.link.read_learner()
        if self.steps + count <= self.allowed_steps():
            return
        self._report()  # the learner must see our count before it can move on
        started = time.monotonic()
        while self.steps + count > self.allowed_steps():
            self._check_learner_alive()
            if time.monotonic() - started > self.wait_timeout:
                raise OnlineLinkError(f"{self.link.learner}: the learner made no progress for "
                                      f"{self.wait_timeout:.0f} s (stuck at {self._learner.get('updates')} updates)")
            time.sleep(self.poll_seconds)
            self._learner = self.link.read_learner()
        self.waited_seconds += time.monotonic() - started

    def _check_learner_alive(self) -> None:
        if os.getppid() != self.learner_pid:
            raise OnlineLinkError(f"{self.link.learner}: the learner (pid {self.learner_pid}) that started this "
                                  "collector has exited; stopping (the committed episodes are kept)")

    def _reload(self) -> bool:
        """Load the published actor if it changed; False while none is published."""
        version = self.link.actor_version()
        if version is None:
            return False
        if version == self._version:
            return True
        payload = self.link.read_actor()
        if payload is None:  # replaced between stat and read: take it next time
            return self._version is not None
        agent = self.agent
        result = agent.world_model.load_state_dict(payload["world_model"], strict=False)
        if result.unexpected_keys or any(k.startswith(("encoder.", "rssm.")) for k in result.missing_keys):
            raise OnlineLinkError(f"{self.link.actor}: the published actor does not fit this agent "
                                  f"(unexpected {result.unexpected_keys[:3]}, missing {result.missing_keys[:3]})")
        agent.actor_critic.actor.load_state_dict(payload["actor"])
        self._version = version
        self.updates_seen = int(payload["updates"])
        return True

    def report_finished(self, agent_steps: int) -> None:
        """The final count, once the collector has reached its target: the store's agent steps
        (every step taken, unless a SIGKILLed run before this one lost its unfinished episodes)."""
        self.steps = int(agent_steps)
        self.link.write_collector(self.shard, self.steps, self.target_steps, finished=True)
        self._reported = self.steps

    def _report(self) -> None:
        self.link.write_collector(self.shard, self.steps, self.target_steps)
        self._reported = self.steps
