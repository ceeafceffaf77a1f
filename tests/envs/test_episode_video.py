"""Evaluation videos: the screen emulator stays in lockstep, the MP4 holds every step, and `watch`
plays a saved checkpoint."""

from __future__ import annotations

import dataclasses

import numpy as np

from dreamer_pipeline.pipelines.envs.atari import EnvConfig, VectorAtari
from dreamer_pipeline.pipelines.acting.episode_video import FPS, canvas_size, record_episodes
from dreamer_pipeline.pipelines.acting.policy import RandomPolicy


def test_video_holds_every_step_and_returns_match_a_plain_run(tmp_path):
    import imageio.v2 as imageio

    config = dataclasses.replace(EnvConfig(), max_episode_steps=40)
    video = record_episodes("pong", config, RandomPolicy(6, seed=3), tmp_path / "v.mp4", episodes=2, seed=11, title="t")
    assert video.lengths == [40, 40] and video.frames == [160, 160]
    reader = imageio.get_reader(tmp_path / "v.mp4")
    frames = [frame for frame in reader]
    assert len(frames) == video.video_frames == sum(video.lengths) + 2 * FPS  # each end held for a second
    assert frames[0].shape == (*canvas_size(), 3) and canvas_size()[0] % 16 == 0 == canvas_size()[1] % 16

    # the same seed and actions without the screen emulator: the same returns (lockstep)
    policy, returns = RandomPolicy(6, seed=3), []
    with VectorAtari("pong", 1, config) as env:
        image, is_first, state, total = env.reset(np.asarray([11])), np.ones(1, bool), None, 0.0
        state = policy.initial_state(1)
        while len(returns) < 2:
            action, state = policy.act(image, is_first, state)
            step = env.step(np.asarray(action, np.int64))
            total += float(step.reward[0])
            is_first = step.terminated | step.truncated
            if is_first[0]:
                returns.append(total)
                total = 0.0
            image = step.image
    assert video.returns == returns
    assert not list(tmp_path.glob(".*tmp*"))


def test_watch_plays_a_checkpoint(tmp_path):
    from click.testing import CliRunner

    from dreamer_pipeline.models.config import preset
    from dreamer_pipeline.pipelines.agent_io import build_agent, save_agent
    from dreamer_pipeline.pipelines.cli import main
    from dreamer_pipeline.pipelines.config import config_from_mapping, to_dict

    cfg = config_from_mapping({"games": ["pong"], "agent": {"preset": "debug"}, "evaluate": {"max_steps": 20}})
    agent = build_agent(preset("debug"), 6, "cpu", 0)
    save_agent(tmp_path / "agent.pt", agent, pipeline_config=to_dict(cfg), progress={"frames": 800})
    result = CliRunner().invoke(main, ["watch", str(tmp_path / "agent.pt"), "--episodes", "2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "agent.mp4").stat().st_size > 0 and "2 episode(s)" in result.output
    bad = CliRunner().invoke(main, ["watch", str(tmp_path / "agent.mp4")])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
