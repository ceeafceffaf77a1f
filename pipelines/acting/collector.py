"""Collect Atari episodes with a policy into one experience store, counting every step taken.

`collect(path, game, target_steps, ...)` steps N environments together (`VectorAtari`), asks the
policy for N actions per vector step, keeps one episode buffer per environment, and commits
finished episodes whole, in batches of about `commit_steps` steps (`StoreWriter.append_episodes`).

Counting: `target_steps` is in agent steps, the actions taken (one agent step = `action_repeat`
frames). A stored episode of L steps holds L - 1 of them: its first step is the reset image, which
no action led to. The collector stops after the vector step that brings the store's agent steps to
the target: exactly the target when the steps still to take are a multiple of N (the pipeline's
plan makes them so, pipelines/schedule.py), else up to N - 1 steps past it. The episodes still
running then are committed as truncated (`is_last` without `is_terminal`, as at a time limit), so
every step taken is in the store, and the run record lists them (`cut_episodes`) so that episode
statistics can leave them out.

Alignment (the published code's): step t holds the image at t, the action that led to it and the
reward received on arriving there. The first step of an episode holds action 0 and reward 0. The
auto-reset is not a transition: with SAME_STEP auto-reset the finished episode's last image comes
from `Step.last_image`, and the reset image starts the next episode's buffer.

Resume: running `collect` again on the same store continues toward the same target. The writer
trims any uncommitted tail, and the seeds of the new run come from `(seed, resume count)`, so a
resumed run never replays the episodes of an earlier one. SIGINT/SIGTERM stop cleanly after the
current vector step: the episodes still running are committed as truncated, and
`CollectResult.stopped_by` names the signal. Only a SIGKILL (or an error) loses steps: those of the
episodes still running, counted in `CollectResult.discarded_steps` where the process survives.
"""

from __future__ import annotations

import datetime as _dt
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from dreamer_pipeline.datasets.action_space import ActionSpace
from dreamer_pipeline.datasets.store import (
    DEFAULT_CHUNK_STEPS,
    DEFAULT_ZSTD_LEVEL,
    IMAGE_SHAPE,
    ExperienceStore,
    StoreWriter,
    provenance_mismatch,
)
from dreamer_pipeline.datasets.store_lock import StoreLock

from ..envs.atari import EnvConfig, VectorAtari
from ..envs.registry import vector_env
from .policy import Policy, RandomPolicy, action_space_mismatch, action_space_of


DEFAULT_COMMIT_STEPS = 1  # commit each episode as it finishes: a SIGKILL loses no finished episode
DEFAULT_COMMIT_SECONDS = 10.0


class CollectError(RuntimeError):
    """A collection that cannot start: a policy that does not fit the game, a bad argument."""


def stored_agent_steps(committed_steps: int, committed_episodes: int) -> int:
    """Agent steps (actions) in a collected store: every stored step but each episode's reset step."""
    return int(committed_steps) - int(committed_episodes)


@dataclass
class CollectResult:
    """What one `collect` call did. `target_steps`, `agent_steps`, `env_steps` and
    `discarded_steps` count agent steps (actions); `committed_steps` and `new_steps` count stored
    steps, which hold one reset step per episode besides them."""

    path: Path
    target_steps: int
    committed_steps: int  # stored steps in the store now, over all runs
    committed_episodes: int
    new_steps: int = 0  # stored steps committed by this call
    new_episodes: int = 0  # episodes committed by this call, finished or cut
    cut_episodes: int = 0  # of those, episodes still running at the stop, committed as truncated
    discarded_steps: int = 0  # agent steps taken by this call that are not in the store (an error)
    env_steps: int = 0  # agent steps (actions) taken by this call
    seconds: float = 0.0  # wall time of the call, setting up included
    loop_seconds: float = 0.0  # wall time of the collection loop (stepping, acting, writing), after the reset
    env_seconds: float = 0.0  # part of loop_seconds spent inside the emulator's step
    stopped_by: str | None = None  # "SIGINT" / "SIGTERM" when a signal stopped the run
    returns: list[float] = field(default_factory=list)  # of the finished episodes committed by this call
    lengths: list[int] = field(default_factory=list)  # their stored lengths

    @property
    def agent_steps(self) -> int:
        """Agent steps in the store now, over all runs."""
        return stored_agent_steps(self.committed_steps, self.committed_episodes)

    @property
    def complete(self) -> bool:
        return self.agent_steps >= self.target_steps


class EpisodeBuffer:
    """One environment's episode in progress, in preallocated arrays that double when full.

    Images are (64, 64, C); actions int32 indices (discrete) or float32 (A,) vectors (continuous),
    as the store's schema has them (`action_space` is the environment's: an `ActionSpace` or its dict).
    """

    def __init__(self, capacity: int = 1024, image_shape: tuple[int, ...] = IMAGE_SHAPE,
                 action_space=None):
        space = ActionSpace.from_dict(action_space) if action_space is not None else ActionSpace.any_discrete()
        self.image = np.empty((capacity, *image_shape), np.uint8)
        self.action = np.empty((capacity, *space.step_shape), space.dtype)
        self.reward = np.empty(capacity, np.float32)
        self.length = 0
        self.score = 0.0

    def start(self, image: np.ndarray) -> None:
        """Begin an episode at its reset image: action 0, reward 0 (published code's convention)."""
        self.length = 0
        self.score = 0.0
        self.add(image, 0, 0.0)

    def add(self, image: np.ndarray, action, reward: float) -> None:
        if self.length == len(self.action):
            self._grow()
        t = self.length
        self.image[t] = image
        self.action[t] = action
        self.reward[t] = reward
        self.score += reward
        self.length = t + 1

    def episode(self, terminal: bool) -> dict[str, np.ndarray]:
        """The finished episode as store arrays (views into the buffer: write them before reuse)."""
        n = self.length
        is_first = np.zeros(n, bool)
        is_first[0] = True
        is_last = np.zeros(n, bool)
        is_last[-1] = True
        is_terminal = np.zeros(n, bool)
        is_terminal[-1] = bool(terminal)
        return {
            "image": self.image[:n],
            "action": self.action[:n],
            "reward": self.reward[:n],
            "is_first": is_first,
            "is_last": is_last,
            "is_terminal": is_terminal,
        }

    def _grow(self) -> None:
        capacity = 2 * len(self.action)
        for name in ("image", "action", "reward"):
            old = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)


def store_attributes(env, policy_provenance: dict[str, Any], seed: int) -> dict[str, Any]:
    """The provenance attributes a collector writes (docs/architecture.md, "Experience store")."""
    common = {
        "action_space": dict(env.action_space),
        "image_shape": list(env.image_shape),
        "env": env.config.to_dict(),
        "policy": dict(policy_provenance),
        "seed": int(seed),
    }
    if not hasattr(env, "rom_id"):  # the Control Suite
        from importlib.metadata import version

        return {"game": env.game, "suite": "dmc", "dm_control_version": version("dm_control"),
                "mujoco_version": version("mujoco"), **common}
    import ale_py

    return {"game": env.game, "ale_rom": env.rom_id, "ale_py_version": str(ale_py.__version__),
            "action_set": env.action_set, **common}


def run_seeds(seed: int, resume_index: int, num_envs: int) -> tuple[np.ndarray, np.random.SeedSequence]:
    """Environment reset seeds and the policy's seed for run `resume_index` of a store.

    Derived with a SeedSequence so that distinct (seed, resume index) pairs get unrelated
    streams: collectors with seeds 0 and 1 share no environment seed (plain `seed + i` would),
    and a resumed run does not replay the episodes of the run before it.
    """
    sequence = np.random.SeedSequence([int(seed), int(resume_index)])
    env_sequence, policy_sequence = sequence.spawn(2)
    env_seeds = (env_sequence.generate_state(num_envs, dtype=np.uint32) % np.uint32(2**31 - 1)).astype(np.int64)
    return env_seeds, policy_sequence


class _StopOnSignals:
    """Turn the first SIGINT/SIGTERM into a flag; a second one aborts at once (KeyboardInterrupt)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopOnSignals":
        if self.enabled:
            try:
                for sig in self.SIGNALS:
                    self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals to the caller
                self._previous.clear()
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborting")
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def collect(
    path: str | Path,
    game: str,
    target_steps: int,
    *,
    num_envs: int = 1,
    seed: int = 0,
    env_config: EnvConfig = EnvConfig(),
    policy: Policy | None = None,
    chunk_steps: int = DEFAULT_CHUNK_STEPS,
    zstd_level: int = DEFAULT_ZSTD_LEVEL,
    num_threads: int | None = None,
    commit_steps: int = DEFAULT_COMMIT_STEPS,
    commit_seconds: float = DEFAULT_COMMIT_SECONDS,
    progress: bool = True,
    handle_signals: bool = True,
    break_lock: bool = False,
    checksum: bool = True,
    fsync: bool = True,
    set_aside_superseded: bool = False,
) -> CollectResult:
    """Fill the store at `path` with episodes until it holds >= `target_steps` agent steps (actions).

    `policy=None` is the uniform random policy (seeded from `seed` and the resume count). Any other
    policy must act over the game's action set. Reruns resume; the provenance (game, environment
    settings, action set, policy, seed) must then match the store's. Returns a `CollectResult`;
    `result.stopped_by` is set when SIGINT/SIGTERM ended the run early. The last vector step may
    pass the target by up to `num_envs - 1` steps (none when the steps still to take are a
    multiple of `num_envs`); the episodes still running at the stop are committed as truncated.

    By default every episode is committed as soon as it finishes, so a SIGKILLed collector loses only
    the episodes still running. A commit replaces a dozen small files (the last chunk of each
    array, their metadata, the counters), which costs tens of milliseconds on a loaded ext4 disk;
    for games whose random-policy episodes are very short, `commit_steps` > 1 batches finished
    episodes (committed once that many steps wait, after `commit_seconds`, and always at the end),
    at the price of losing up to that many finished steps to a SIGKILL.

    The collector holds the store's writer lock while it runs: a second writer on the same store
    gets a `StoreLockedError` naming this one. `break_lock` takes over the lock of a writer on
    another host (datasets/store_lock.py). `checksum` and `fsync` are `StoreWriter.open`'s (turn
    `set_aside_superseded`: a store made with other settings (another policy: its upstream agent
    was retrained) is renamed to a hidden `.{name}.superseded-{time}` and collected anew, with a
    warning, instead of being refused; the workflow's collect rule asks for it (`--set-aside-superseded`).

    them off only for scratch data, e.g. to measure what they cost: benchmarks/bench_collect.py).
    """
    if target_steps < 1:
        raise CollectError(f"target_steps must be at least 1, got {target_steps}")
    if seed < 0:
        raise CollectError(f"seed must be >= 0, got {seed}")
    if commit_steps < 1:
        raise CollectError(f"commit_steps must be at least 1, got {commit_steps}")
    path = Path(path)
    start_time = time.perf_counter()
    with vector_env(game, num_envs, env_config, num_threads) as env:
        mismatch = action_space_mismatch(action_space_of(policy), env.action_space) if policy is not None else None
        if mismatch:
            setting = getattr(env_config, "full_action_space", None)
            which = "" if setting is None else f" ({'full' if setting else 'minimal'} action set)"
            raise CollectError(f"{env.game}: {mismatch}{which}")
        provenance = policy.provenance if policy is not None else RandomPolicy(env.action_space).provenance
        attrs = store_attributes(env, provenance, seed)
        if set_aside_superseded:
            set_aside_if_superseded(path, attrs, break_lock=break_lock)

        done_already = _already_complete(path, attrs, target_steps)
        if done_already is not None:
            return CollectResult(path, target_steps, done_already.num_steps, done_already.num_episodes)

        with StoreWriter.open(path, attrs, chunk_steps=chunk_steps, zstd_level=zstd_level, break_lock=break_lock,
                              checksum=checksum, fsync=fsync) as writer:
            result = _collect_into(writer, env, policy, seed, num_envs, target_steps, commit_steps, commit_seconds,
                                   progress, handle_signals)
    result.seconds = time.perf_counter() - start_time
    return result


def _collect_into(writer: StoreWriter, env: VectorAtari, policy: Policy | None, seed: int, num_envs: int,
                  target_steps: int, commit_steps: int, commit_seconds: float, progress: bool,
                  handle_signals: bool) -> CollectResult:
    """`collect` once the writer holds the store: seeds, the run record, the loop."""
    resume_index = int(writer.meta.get("resumed", 0))
    env_seeds, policy_seed = run_seeds(seed, resume_index, num_envs)
    if policy is None:
        policy = RandomPolicy(env.action_space, policy_seed)
    elif callable(getattr(policy, "seed", None)):
        policy.seed(int(policy_seed.generate_state(1)[0]))  # optional hook, e.g. torch sampling
    result = CollectResult(writer.path, target_steps, writer.committed_steps, writer.committed_episodes)
    agent_steps_before = result.agent_steps
    run_record = {
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "resume_index": resume_index,
        "num_envs": num_envs,
        "target_steps": int(target_steps),  # agent steps
        "steps_before": writer.committed_steps,  # stored steps
        "agent_steps_before": agent_steps_before,
        "commit_steps": int(commit_steps),
        "versions": _versions(),
    }
    runs = list(writer.meta.get("runs", []))
    writer.update_attrs(runs=runs + [run_record])
    cut: list[int] = []
    if agent_steps_before < target_steps:
        with _StopOnSignals(handle_signals) as stop:
            _run(env, policy, writer, env_seeds, result, stop, progress, commit_steps, commit_seconds, cut)
            result.stopped_by = stop.received
    run_record.update(
        finished=_dt.datetime.now(_dt.timezone.utc).isoformat(),
        steps_after=writer.committed_steps,
        agent_steps_after=result.agent_steps,
        env_steps=result.env_steps,  # taken by this run: agent_steps_after - agent_steps_before unless steps were lost
        cut_episodes=cut,  # indices of the episodes committed as truncated because the run stopped
        stopped_by=result.stopped_by,
    )
    writer.update_attrs(runs=runs + [run_record])
    return result


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("dreamer-pipeline", "ale-py", "zarr", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


class SupersededStoreWarning(UserWarning):
    """A store made with other settings than its collector's was moved aside."""


def set_aside_if_superseded(path: Path, attrs: dict[str, Any], *, break_lock: bool = False) -> Path | None:
    """Rename the store at `path` to `.{name}.superseded-{UTC time}` beside it if it was made with
    other settings than `attrs` (another policy, seed or environment); returns the new path. The
    hidden name keeps it out of directory datasets; nothing in it is deleted."""
    if not (path / "zarr.json").exists():
        return None
    problem = provenance_mismatch(ExperienceStore(path).attrs, attrs)
    if problem is None:
        return None
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    aside = path.with_name(f".{path.name}.superseded-{stamp}")
    with StoreLock(path, break_lock=break_lock) as lock:  # never move a store a live writer holds
        path.rename(aside)
        lock.moved(aside)
    warnings.warn(f"experience store {path}: {problem}; it was made for a superseded run and is kept as {aside}. "
                  "Collecting it anew", SupersededStoreWarning, stacklevel=2)
    return aside


def _already_complete(path: Path, attrs: dict[str, Any], target_steps: int) -> ExperienceStore | None:
    """The store, if it exists with these attributes and already reaches the target (nothing to do)."""
    if not (path / "zarr.json").exists():
        return None  # nothing there yet (or only the lock file of a writer killed while creating it)
    store = ExperienceStore(path)
    problem = provenance_mismatch(store.attrs, attrs)
    if problem:
        return None  # let StoreWriter.open raise its error naming the mismatch
    return store if stored_agent_steps(store.num_steps, store.num_episodes) >= target_steps else None


class _Committer:
    """Episodes waiting to be committed together (see `collect`'s commit_steps)."""

    def __init__(self, writer: StoreWriter, result: CollectResult, commit_steps: int, commit_seconds: float,
                 cut: list[int]):
        self.writer, self.result, self.cut = writer, result, cut
        self.commit_steps, self.commit_seconds = commit_steps, commit_seconds
        self.episodes: list[dict[str, np.ndarray]] = []
        self.returns: list[float | None] = []  # None for an episode cut at the stop
        self.steps = 0
        self.last = time.monotonic()
        self.failed = False

    def add(self, episode: dict[str, np.ndarray], score: float | None) -> None:
        """Queue an episode; `score=None` marks one cut at the stop (not a finished episode)."""
        self.episodes.append({key: value.copy() for key, value in episode.items()})  # the buffer is reused
        self.returns.append(None if score is None else float(score))
        self.steps += len(episode["is_first"])

    def due(self) -> bool:
        return self.steps >= self.commit_steps or (
            bool(self.episodes) and time.monotonic() - self.last >= self.commit_seconds
        )

    def commit(self) -> None:
        if self.episodes:
            first_index = self.writer.committed_episodes
            self.failed = True  # until it returns: a failed commit is not retried (disk full twice)
            self.writer.append_episodes(self.episodes)
            self.failed = False
            self.result.new_steps += self.steps
            self.result.new_episodes += len(self.episodes)
            for offset, (episode, score) in enumerate(zip(self.episodes, self.returns)):
                if score is None:
                    self.cut.append(first_index + offset)
                    self.result.cut_episodes += 1
                else:
                    self.result.returns.append(score)
                    self.result.lengths.append(len(episode["is_first"]))
        self.episodes, self.returns, self.steps = [], [], 0
        self.last = time.monotonic()


def _run(
    env: VectorAtari,
    policy: Policy,
    writer: StoreWriter,
    env_seeds: np.ndarray,
    result: CollectResult,
    stop: _StopOnSignals,
    progress: bool,
    commit_steps: int,
    commit_seconds: float,
    cut: list[int],
) -> None:
    """The hot loop: one vector step per iteration until the store's agent steps reach the target;
    finished episodes are committed in batches, the ones still running at the end as truncated."""
    n = env.num_envs
    image = env.reset(env_seeds)
    buffers = [EpisodeBuffer(image_shape=image.shape[1:], action_space=env.action_space) for _ in range(n)]
    for i in range(n):
        buffers[i].start(image[i])
    is_first = np.ones(n, bool)
    state = policy.initial_state(n)
    pending = _Committer(writer, result, commit_steps, commit_seconds, cut)
    taken = before = result.agent_steps  # agent steps: committed ones, plus those taken by this run
    bar = tqdm(total=result.target_steps, initial=taken, unit="step", desc=f"collect {env.game}",
               disable=not progress, dynamic_ncols=True)
    recent: list[float] = []
    loop_start = time.perf_counter()
    try:
        while taken < result.target_steps and stop.received is None:
            actions, state = policy.act(image, is_first, state)
            actions = np.asarray(actions)
            env_start = time.perf_counter()
            step = env.step(actions)
            result.env_seconds += time.perf_counter() - env_start
            result.env_steps += n
            taken += n
            done = step.terminated | step.truncated
            if not done.any():
                for i in range(n):
                    buffers[i].add(step.image[i], actions[i], step.reward[i])
                is_first = np.zeros(n, bool)
            else:
                for i in range(n):
                    buffer = buffers[i]
                    if not done[i]:
                        buffer.add(step.image[i], actions[i], step.reward[i])
                        continue
                    buffer.add(step.last_image[i], actions[i], step.reward[i])
                    pending.add(buffer.episode(terminal=bool(step.terminated[i])), buffer.score)
                    recent = (recent + [buffer.score])[-20:]
                    buffer.start(step.image[i])
                bar.set_postfix(episodes=writer.committed_episodes + len(pending.episodes),
                                ret=f"{np.mean(recent):.1f}", refresh=False)
                is_first = done
            if taken > bar.total:  # the last vector step passes a target that is not a multiple of n
                bar.total = taken
            bar.update(n)
            image = step.image
            if pending.due():
                pending.commit()
        # The target is reached, or a signal asked to stop: every step taken stays in the store. An
        # episode still running is committed as truncated (its last step bootstraps, as at a time
        # limit); one that has only its reset step holds no agent step and is left out.
        for buffer in buffers:
            if buffer.length > 1:
                pending.add(buffer.episode(terminal=False), None)
        pending.commit()
    except Exception:
        if not pending.failed:
            pending.commit()  # whole episodes are valid whatever failed (the policy, the emulator)
        raise
    finally:
        result.loop_seconds = time.perf_counter() - loop_start
        bar.close()
        result.committed_steps = writer.committed_steps
        result.committed_episodes = writer.committed_episodes
        result.discarded_steps = result.env_steps - (result.agent_steps - before)
