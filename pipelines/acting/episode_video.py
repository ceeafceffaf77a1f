"""Watch the agent play: episodes recorded as MP4, the full-colour screen beside the agent's view.

    video = record_episodes("pong", env_config, policy, "episode.mp4", episodes=1, seed=7,
                            title="pong · default · seed 0 · iteration 3")

The agent acts exactly as in evaluation: on the environment's 64x64 frames. Atari's colour
screen comes from a second emulator in lockstep: same ROM, settings and seed, stepped with the
same actions, only its observations are the 210x160 RGB screen (ale-py's vector env gives one
kind of observation per environment). Sticky actions and no-op starts draw from the seeded
emulator, so both play the same game; `record_episodes` checks that their rewards and episode
ends agree at every step.

Each video frame shows the screen (2x), the agent's 64x64 view (4x, as the agent sees it: after
max-pooling and resizing), and the return so far and the environment frame count. After each
episode its last frame stays for one second. H.264 in MP4 (imageio + imageio-ffmpeg's ffmpeg),
written to a temporary file and renamed, so a killed recording leaves no video behind.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dreamer_pipeline.datasets.durable import atomic_write

SCREEN = (210, 160)  # the Atari screen
SCREEN_SCALE, VIEW_SCALE = 2, 4
FPS = 15  # agent steps per second: real time at action repeat 4 (60 Hz)
MARGIN = 8


class VideoError(RuntimeError):
    """The two emulators disagreed, or the video could not be written."""


@dataclass
class EpisodeVideo:
    path: Path
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)  # agent steps
    frames: list[int] = field(default_factory=list)  # environment frames
    seconds: float = 0.0  # wall time of playing and encoding
    video_frames: int = 0


def record_episodes(game: str, env_config, policy, out: str | os.PathLike, *, episodes: int = 1, seed: int = 0,
                    title: str = "", fps: int = FPS) -> EpisodeVideo:
    """Play `episodes` episodes of `game` with `policy` (the Policy protocol) and write them to `out` (MP4)."""
    from ..envs.atari import VectorAtari, make_vector_env
    from ..envs.registry import vector_env

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = EpisodeVideo(out)
    started = time.perf_counter()
    with vector_env(game, 1, env_config) as agent_env:
        from .policy import action_space_mismatch, action_space_of

        mismatch = action_space_mismatch(action_space_of(policy), agent_env.action_space)
        if mismatch:
            raise VideoError(f"{game}: {mismatch}")
        # Atari: a second emulator in lockstep gives the colour screen. Other environments have no
        # larger screen than what the agent sees, so their screen panel shows the agent's own image.
        screen_env = (make_vector_env(agent_env.rom_id, 1, env_config, num_threads=1, screen=SCREEN, rgb=True)
                      if isinstance(agent_env, VectorAtari) else _OwnImageScreen(agent_env))

        def write(tmp: Path) -> None:
            with _Mp4Writer(tmp, fps) as video:
                _play(agent_env, screen_env, policy, video, episodes, seed, title, result)
                result.video_frames = video.count

        try:
            atomic_write(out, write, suffix=".mp4")  # ffmpeg's tools expect the extension
        finally:
            screen_env.close()
    result.seconds = time.perf_counter() - started
    return result


def _play(agent_env, screen_env, policy, video: "_Mp4Writer", episodes: int, seed: int, title: str,
          result: EpisodeVideo) -> None:
    repeat = getattr(getattr(agent_env, "config", None), "action_repeat", 1)
    own_image = isinstance(screen_env, _OwnImageScreen)
    image = agent_env.reset(np.asarray([seed]))
    if own_image:
        screen_env.show(image)
    screen = _screen(screen_env.reset(seed=np.asarray([seed], np.int64))[0])
    state, is_first = policy.initial_state(1), np.ones(1, bool)
    episode_return, steps = 0.0, 0
    while len(result.returns) < episodes:
        label = _label(title, len(result.returns), episodes, episode_return, steps, repeat)
        video.append(compose(screen, image[0], label))
        action, state = policy.act(image, is_first, state)
        action = np.asarray(action)
        step = agent_env.step(action)
        if own_image:
            screen_env.show(step.last_image if step.last_image is not None and (step.terminated[0] or step.truncated[0])
                            else step.image)
            obs, info = screen_env.step(action)[0], {}
            reward, terminated, truncated = step.reward, step.terminated, step.truncated
        else:
            obs, reward, terminated, truncated, info = screen_env.step(action.astype(np.int64))
        if not (np.isclose(reward[0], step.reward[0]) and bool(terminated[0]) == bool(step.terminated[0])
                and bool(truncated[0]) == bool(step.truncated[0])):
            raise VideoError(f"{agent_env.game}: the screen emulator left lockstep at step {steps} "
                             f"(reward {reward[0]} vs {step.reward[0]}); the video would show another game")
        episode_return += float(step.reward[0])
        steps += 1
        done = bool(step.terminated[0] or step.truncated[0])
        if done:
            last = _screen(info["final_obs"] if "final_obs" in info else obs)
            label = _label(title, len(result.returns), episodes, episode_return, steps, repeat, final=True)
            frame = compose(last, step.last_image[0], label)
            for _ in range(video.fps):  # hold the final score for a second
                video.append(frame)
            result.returns.append(episode_return)
            result.lengths.append(steps)
            result.frames.append(steps * repeat)
            episode_return, steps = 0.0, 0
        if own_image and done:
            screen_env.show(step.image)
            obs = screen_env.step(action)[0]
        image, is_first, screen = step.image, np.asarray([done]), _screen(obs)


class _OwnImageScreen:
    """The screen of an environment without a separate colour screen: its own 64x64 image, 2x,
    centred in an Atari-sized panel (stepped by `_play` like the Atari screen emulator)."""

    def __init__(self, agent_env):
        self.agent_env = agent_env

    def reset(self, seed):
        return self._last, {}

    def step(self, action):
        return self._last, None, None, None, {}

    def show(self, image: np.ndarray) -> None:
        image = np.asarray(image)[0]
        image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
        panel = np.zeros((1, 1, *SCREEN, 3), np.uint8)
        big = image.repeat(2, 0).repeat(2, 1)
        top, left = (SCREEN[0] - big.shape[0]) // 2, (SCREEN[1] - big.shape[1]) // 2
        panel[0, 0, top:top + big.shape[0], left:left + big.shape[1]] = big
        self._last = panel

    def close(self) -> None:
        pass


def _screen(obs: np.ndarray) -> np.ndarray:
    """ale-py's batch of observations (N=1, stack=1, H, W, 3) -> the one screen (H, W, 3)."""
    return np.asarray(obs)[0, 0]


def _label(title: str, index: int, episodes: int, episode_return: float, steps: int, repeat: int,
           final: bool = False) -> list[str]:
    number = f"episode {index + 1}/{episodes}" if episodes > 1 else "episode"
    return [
        title,
        "agent's view (64x64)",
        f"{number}{' (end)' if final else ''}",
        f"return {episode_return:g}",
        f"frame {steps * repeat:,} (step {steps:,})",
    ]


def canvas_size() -> tuple[int, int]:
    """(height, width) of every video frame, multiples of 16 (H.264 macroblocks)."""
    height = SCREEN[0] * SCREEN_SCALE + 2 * MARGIN
    width = SCREEN[1] * SCREEN_SCALE + 64 * VIEW_SCALE + 3 * MARGIN + 160
    return -(-height // 16) * 16, -(-width // 16) * 16


def compose(screen: np.ndarray, view: np.ndarray, lines: list[str]) -> np.ndarray:
    """One video frame: the RGB screen (2x), the agent's grayscale view (4x) and text lines
    (`[title, caption, *stats]`; title and caption are drawn once per recording and reused)."""
    from PIL import Image, ImageDraw

    title, caption, *stats = lines
    canvas = _background(title, caption).copy()
    big = screen.repeat(SCREEN_SCALE, 0).repeat(SCREEN_SCALE, 1)
    canvas[MARGIN:MARGIN + big.shape[0], MARGIN:MARGIN + big.shape[1]] = big
    view = np.asarray(view)
    view = view[..., None] if view.ndim == 2 else view  # grayscale (64, 64, 1) or RGB (64, 64, 3)
    small = view.repeat(VIEW_SCALE, 0).repeat(VIEW_SCALE, 1)
    left = 2 * MARGIN + SCREEN[1] * SCREEN_SCALE
    canvas[MARGIN:MARGIN + small.shape[0], left:left + small.shape[1]] = small
    top = MARGIN + 64 * VIEW_SCALE + 40 + 26
    text = Image.fromarray(canvas[top:, left:])  # only the changing lines go through PIL
    draw = ImageDraw.Draw(text)
    for row, line in enumerate(stats):
        draw.text((0, 26 * row), line, fill=(255, 255, 255), font=_font())
    canvas[top:, left:] = np.asarray(text)
    return canvas


@functools.lru_cache(maxsize=4)
def _background(title: str, caption: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    height, width = canvas_size()
    picture = Image.fromarray(np.full((height, width, 3), 24, np.uint8))
    draw = ImageDraw.Draw(picture)
    left, below_view = 2 * MARGIN + SCREEN[1] * SCREEN_SCALE, MARGIN + 64 * VIEW_SCALE
    draw.text((left, below_view + 4), caption, fill=(170, 170, 170), font=_font())
    draw.text((left, below_view + 40), title, fill=(255, 255, 255), font=_font())
    return np.asarray(picture)


_FONT = None


def _font():
    global _FONT
    if _FONT is None:
        from PIL import ImageFont

        try:
            _FONT = ImageFont.load_default(size=18)  # Pillow >= 10.1 with FreeType
        except TypeError:
            _FONT = ImageFont.load_default()
    return _FONT


class _Mp4Writer:
    """Frames appended one at a time (bounded memory) to an H.264 MP4."""

    def __init__(self, path: Path, fps: int):
        import imageio.v2 as imageio

        self.fps, self.count = fps, 0
        try:
            self.writer = imageio.get_writer(str(path), format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                             pixelformat="yuv420p", macro_block_size=16, ffmpeg_log_level="error",
                                             output_params=["-preset", "ultrafast"])  # flat Atari colours: small files anyway
        except Exception as error:  # noqa: BLE001 - imageio raises several kinds when ffmpeg is missing
            raise VideoError(f"cannot write MP4 ({error}); install imageio-ffmpeg") from None

    def append(self, frame: np.ndarray) -> None:
        self.writer.append_data(frame)
        self.count += 1

    def __enter__(self) -> "_Mp4Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()
