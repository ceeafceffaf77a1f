"""The agent learns: a world model of action-driven videos, and a policy on a 2-action bandit.

Tiny synthetic tasks at the debug preset with fixed seeds; each test runs a few hundred updates.
"""

from __future__ import annotations

import numpy as np
import torch

from dreamer_pipeline.models.agent import Agent
from dreamer_pipeline.models.config import preset

torch.set_num_threads(1)

BAR, POSITIONS = 16, 4


def bar_videos(rng: np.random.Generator, batch: int, length: int) -> dict[str, np.ndarray]:
    """A white bar, 16 pixels wide, that action 1 moves right and action 0 moves left by one bar
    width (wrapping around) on a black 64x64 frame: every step moves it, so repeating the last
    frame is always wrong, and only a model that follows the actions predicts the future."""
    image = np.zeros((batch, length, 64, 64, 1), np.uint8)
    action = rng.integers(0, 2, (batch, length))
    action[:, 0] = 0
    position = rng.integers(0, POSITIONS, batch)
    for t in range(length):
        if t:
            position = (position + np.where(action[:, t] == 1, 1, -1)) % POSITIONS
        for b, column in enumerate(position):
            image[b, t, :, column * BAR:(column + 1) * BAR] = 255
    is_first = np.zeros((batch, length), bool)
    is_first[:, 0] = True
    return {"image": image, "action": action, "reward": np.zeros((batch, length), np.float32),
            "is_first": is_first, "is_last": np.zeros((batch, length), bool),
            "is_terminal": np.zeros((batch, length), bool)}


def frame_errors(video: np.ndarray, context: int) -> tuple[float, float, float]:
    """(model, copy-last-frame, all-black) squared errors over the predicted frames of an open-loop video."""
    frames = video.astype(np.float32) / 255.0
    truth, model = frames[:, :64], frames[:, 64:128]
    predicted = slice(context, None)
    copy_last = np.broadcast_to(truth[context - 1], truth[predicted].shape)
    err = lambda a, b: float(((a - b) ** 2).sum())  # noqa: E731
    return (err(model[predicted], truth[predicted]), err(copy_last, truth[predicted]),
            err(np.zeros_like(truth[predicted]), truth[predicted]))


def test_world_model_learns_action_conditioned_videos():
    # The debug preset with a wider latent and a stronger KL term, so that the prior learns the
    # dynamics within 150 small updates.
    config = preset("debug", {"world_model": {"kl_scale": 1.0, "rssm": {"deter": 64, "hidden": 64, "stoch": 8,
                                                                          "classes": 8}}})
    rng = np.random.default_rng(0)
    agent = Agent(config, num_actions=2, seed=0)
    losses = [agent.train_world_model(bar_videos(rng, 8, 16))["wm/image_nll"] for _ in range(150)]
    start, end = np.mean(losses[:5]), np.mean(losses[-10:])
    assert end < 0.1 * start, (start, end)
    video = agent.open_loop(bar_videos(np.random.default_rng(123), 6, 16), context=5)
    assert video.shape == (16, 3 * 64, 6 * 64, 1)
    model, copy_last, black = frame_errors(video, context=5)
    # Open loop from the recorded actions: far better than repeating the last frame, and better
    # than an empty frame (which a model that ignores the actions would tend to).
    assert model < 0.5 * copy_last, (model, copy_last)
    assert model < 0.9 * black, (model, black)


def bandit_batch(rng: np.random.Generator, batch: int, length: int) -> dict[str, np.ndarray]:
    """Random play of a 2-action bandit: action 1 pays 1, action 0 pays 0. The frame shows the
    last action (left half lit after action 1), so the reward is visible in the observation."""
    action = rng.integers(0, 2, (batch, length))
    action[:, 0] = 0
    image = np.full((batch, length, 64, 64, 1), 40, np.uint8)
    image[..., :32, :][action == 1] = 220
    reward = (action == 1).astype(np.float32)
    reward[:, 0] = 0.0
    is_first = np.zeros((batch, length), bool)
    is_first[:, 0] = True
    return {"image": image, "action": action, "reward": reward, "is_first": is_first,
            "is_last": np.zeros((batch, length), bool), "is_terminal": np.zeros((batch, length), bool)}


def play(agent: Agent, mode: str, envs: int = 8, steps: int = 20) -> float:
    """Average reward per step of the agent's policy in the bandit (acting on its own frames)."""
    image = np.full((envs, 64, 64, 1), 40, np.uint8)
    is_first = np.ones(envs, bool)
    state, total = None, 0.0
    for _ in range(steps):
        actions, state = agent.policy_step(image, is_first, state, mode=mode)
        actions = actions.numpy()
        total += float((actions == 1).sum())
        image = np.full((envs, 64, 64, 1), 40, np.uint8)
        image[actions == 1, :32] = 220
        is_first = np.zeros(envs, bool)
    return total / (envs * steps)


def test_actor_critic_learns_the_rewarding_action_in_imagination():
    rng = np.random.default_rng(1)
    agent = Agent(preset("debug"), num_actions=2, seed=1)
    for _ in range(100):  # the world model learns from random play
        agent.train_world_model(bandit_batch(rng, 8, 8))
    assert 0.3 < play(agent, "sample") < 0.7  # the untrained actor is near uniform
    for _ in range(50):  # the actor and critic learn in imagination only
        metrics = agent.train_behaviour(bandit_batch(rng, 8, 8))
    assert metrics["actor/entropy"] < 0.3  # ln 2 = 0.69 for the uniform policy
    assert play(agent, "greedy") > 0.95
    assert play(agent, "sample") > 0.9
