"""Reading the world model's reward head on held-out experience: has it learned the game's reward?

Issue 7's diagnosis as a library: a world model's reward head is read on a store it never trained
on (random play of the same game with another seed). Training batches cannot tell this: on a CPU
budget the reward NLL on them stays near predict-zero while the head memorises (docs/learning.md).
The actor gate (`pipelines/stages/actor_gate.py`) and the reward screen (`benchmarks/bench_reward.py`)
read the head this way.

1. `held_out_windows(store, length)`: whole `length`-step windows of the store's episodes (at
   offsets 0, T, 2T, ... inside each episode), each starting with `is_first` as the sampler's
   windows do; with `limit`, at most that many, spread evenly over the store.
2. `reward_predictions(agent, windows)`: at every step of every window, the reward head's mean on
   the posterior features, and the head's target (the reward under the world model's
   `reward_transform`: tanh(r) for Atari, r for the Control Suite). No gradients, the world model
   in eval mode (its training mode is restored), latents sampled from a generator of its own so a
   reading neither depends on nor moves the training RNG.
3. `reward_scores(predicted, target)`: the correlation, the mean prediction at positive, negative
   and zero-reward steps, and the error ratio (held-out squared error over predict-zero's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WINDOW_KEYS = ("image", "action", "reward", "is_first", "is_terminal")
READING_SEED = 0  # the reading's own latent samples: the same weights always read the same


class HeldOutError(ValueError):
    """A held-out store that cannot be read for the reward (missing, reward-free, no whole window)."""


def held_out_windows(store_path: str | Path, length: int, limit: int | None = None) -> dict[str, np.ndarray]:
    """Whole `length`-step windows of the store's episodes as (N, length, ...) arrays, `is_first`
    set on every window's first step; at most `limit` windows, evenly spaced over the store."""
    from dreamer_pipeline.datasets.store import ExperienceStore, StoreError

    try:
        store = ExperienceStore(store_path)
    except StoreError as error:
        raise HeldOutError(f"held-out store: {error}") from None
    if store.reward_free:
        raise HeldOutError(f"held-out store {store_path} is reward-free: it cannot show whether rewards are learned")
    index = store.episodes()
    begins = [int(start) + offset for start, steps in zip(index.starts, index.lengths)
              for offset in range(0, int(steps) - length + 1, length)]
    if not begins:
        raise HeldOutError(f"held-out store {store_path} has no episode of at least {length} steps "
                           f"({store.num_steps} steps in {store.num_episodes} episodes); collect more steps")
    if limit is not None and len(begins) > limit:
        chosen = np.unique(np.linspace(0, len(begins) - 1, num=limit).round().astype(np.int64))
        begins = [begins[i] for i in chosen]
    windows = {key: np.stack([store.read(key, begin, begin + length) for begin in begins]) for key in WINDOW_KEYS}
    windows["is_first"][:, 0] = True
    return windows


def reward_target(reward: np.ndarray, transform: str) -> np.ndarray:
    """What the reward head is trained to predict (models/world_model.py): tanh(r) or r itself."""
    return np.tanh(reward) if transform == "tanh" else np.asarray(reward, dtype=np.float64)


def reward_predictions(agent, windows: dict[str, np.ndarray], chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, target) at every step of `windows`, flattened in window order: the reward
    head's mean on the posterior features, and the head's training target."""
    import torch

    wm = agent.world_model
    if not wm.has_reward:
        raise HeldOutError("the world model has no reward head (ablation.reward: absent)")
    was_training = wm.training
    generator = torch.Generator(device=agent.device).manual_seed(READING_SEED)
    predicted = []
    wm.eval()
    try:
        with torch.no_grad():
            for begin in range(0, len(windows["image"]), chunk):
                data = agent.prepare({key: value[begin:begin + chunk] for key, value in windows.items()})
                _, embed = wm.embed(data.image)
                post, _ = wm.rssm.observe(embed, data.action, data.is_first, generator=generator)
                features = wm.rssm.features(post)
                predicted.append(wm.predict_reward(features).float().cpu().numpy().reshape(-1))
    finally:
        wm.train(was_training)
    target = reward_target(windows["reward"].astype(np.float64), wm.config.reward_transform).reshape(-1)
    return np.concatenate(predicted).astype(np.float64), target


def reward_correlation(predicted: np.ndarray, target: np.ndarray) -> float:
    """Pearson's correlation; 0 when either side is constant (a head that predicts one value
    everywhere knows nothing about where rewards come). NaN predictions give NaN."""
    spread = predicted.std() * target.std()
    if not spread > 0:
        return float("nan") if np.isnan(spread) else 0.0
    return float(np.mean((predicted - predicted.mean()) * (target - target.mean())) / spread)


def reward_scores(predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """The screen's numbers for one reading (benchmarks/bench_reward.py prints them)."""
    positive, negative, zero = target > 0.05, target < -0.05, np.abs(target) <= 0.05
    mean_at = lambda mask: float(predicted[mask].mean()) if mask.any() else float("nan")  # noqa: E731
    return {
        "correlation": reward_correlation(predicted, target),
        "mean_at_positive": mean_at(positive),
        "mean_at_negative": mean_at(negative),
        "mean_at_zero": mean_at(zero),
        "error_ratio": float(np.mean((predicted - target) ** 2) / max(np.mean(target ** 2), 1e-12)),
        "positive_steps": int(positive.sum()),
        "negative_steps": int(negative.sum()),
        "steps": int(target.size),
    }
