"""DQN Replay Dataset files in the exact format, written by a plain re-statement of what wrote them.

`LoggedReplayBuffer` restates Dopamine's `OutOfGraphReplayBuffer.add` (2019: stack_size - 1 zero
entries before every episode, a circular buffer of `capacity`) and batch_rl's
`OutOfGraphLoggedReplayBuffer` (after each `add`, log every array as a gzipped `np.save` when
`add_count % capacity == capacity - 1`). `play(...)` feeds it episodes the way Dopamine's DQN agent
does: entry = (observation acted on, action, reward it earned, whether the episode ended).

Every real observation is a constant 84x84 frame whose value (1..250) encodes its entry, so the
imported 64x64 frame has the same constant (area resizing keeps constants) and a test can tell
exactly which entry it came from.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Episode:
    values: list[int] = field(default_factory=list)  # frame value of each entry
    actions: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    last_add: int = -1  # add index of the terminal entry


class LoggedReplayBuffer:
    def __init__(self, folder: Path, capacity: int, stack_size: int = 4):
        self.folder, self.capacity, self.stack_size = Path(folder), capacity, stack_size
        self.folder.mkdir(parents=True, exist_ok=True)
        self.observation = np.zeros((capacity, 84, 84), np.uint8)
        self.action = np.zeros(capacity, np.int32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminal = np.zeros(capacity, np.uint8)
        self.add_count = 0
        self.log_count = 0
        self.logged_add_counts: list[int] = []

    def _add(self, observation, action, reward, terminal) -> None:
        cursor = self.add_count % self.capacity
        self.observation[cursor], self.action[cursor] = observation, action
        self.reward[cursor], self.terminal[cursor] = reward, terminal
        self.add_count += 1

    def add(self, observation, action, reward, terminal) -> int:
        if self.add_count == 0 or self.terminal[(self.add_count % self.capacity) - 1] == 1:
            for _ in range(self.stack_size - 1):
                self._add(np.zeros((84, 84), np.uint8), 0, 0.0, 0)
        index = self.add_count
        self._add(observation, action, reward, terminal)
        if self.add_count % self.capacity == self.capacity - 1:
            self._log()
        return index

    def _log(self) -> None:
        arrays = {"$store$_observation": self.observation, "$store$_action": self.action,
                  "$store$_reward": self.reward, "$store$_terminal": self.terminal,
                  "add_count": np.array(self.add_count), "invalid_range": np.zeros(self.stack_size)}
        for name, array in arrays.items():
            with gzip.open(self.folder / f"{name}_ckpt.{self.log_count}.gz", "wb") as file:
                np.save(file, array, allow_pickle=False)
        self.logged_add_counts.append(self.add_count)
        self.log_count += 1


def play(buffer: LoggedReplayBuffer, lengths: list[int], num_actions: int = 6, seed: int = 0) -> list[Episode]:
    """Episodes of the given entry counts, fed as Dopamine's agent feeds them; returns the truth."""
    rng = np.random.default_rng(seed)
    episodes, counter = [], 0
    for length in lengths:
        episode = Episode()
        for step in range(length):
            value = counter % 250 + 1
            counter += 1
            action = int(rng.integers(num_actions))
            reward = float(rng.choice([-1.0, 0.0, 0.0, 1.0]))
            index = buffer.add(np.full((84, 84), value, np.uint8), action, reward, int(step == length - 1))
            episode.values.append(value)
            episode.actions.append(action)
            episode.rewards.append(reward)
            episode.last_add = index
        episodes.append(episode)
    return episodes
