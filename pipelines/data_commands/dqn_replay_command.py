"""`dreamer-pipeline import-dqn-replay`: the DQN Replay Dataset's checkpoint files into a store.

The conversion is `datasets/interop/dqn_replay.py`; this command supplies what only the environment side
knows: the game's canonical name and its minimal action set (the dataset's actions index it:
Dopamine played gym's `<Game>NoFrameskip-v0`, minimal actions), and the protocol the data was
collected with, written into the store's `env` attribute so nobody mistakes it for ours.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

import click

from dreamer_pipeline.datasets.schema import IMAGE_SIZE

# Dopamine's Atari protocol for the DQN Replay Dataset (Agarwal et al. 2020; Castro et al. 2018).
DQN_REPLAY_ENV = {
    "sticky_action_probability": 0.25, "action_repeat": 4, "max_pool": True, "noop_max": 0,
    "image_size": IMAGE_SIZE, "grayscale": True, "max_episode_steps": 27_000, "full_action_space": False,
    "life_loss_ends_episode": False, "clip_rewards": True, "fire_reset": False,
}


def dqn_replay_attrs(game: str, source: Path) -> dict:
    """Provenance of an imported DQN-replay run: game, action set, protocol, policy."""
    from ..envs.atari import EnvConfig, VectorAtari

    with VectorAtari(game, 1, EnvConfig()) as env:  # only for the canonical name and the minimal action set
        canonical, rom, action_set = env.game, env.rom_id, env.action_set
    run = next((part for part in reversed(source.resolve().parts) if part.isdigit()), None)
    return {
        "game": canonical,
        "ale_rom": rom,
        "ale_py_version": "legacy: gym/atari-py ROMs of 2019 (the dataset's), not this ale-py's",
        "env": dict(DQN_REPLAY_ENV),
        "action_set": action_set,
        "policy": {"kind": "import", "source": "dqn-replay",
                   "agent": "Nature DQN (Dopamine) while it trained: epsilon-greedy, 200M frames",
                   "run": None if run is None else int(run)},
        "seed": None if run is None else int(run),
        "writer_id": f"import-dqn-replay-{canonical}-{run or 'x'}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    }


def parse_checkpoints(text: str | None) -> list[int] | None:
    """'0-4,7' -> [0, 1, 2, 3, 4, 7]; None -> every checkpoint found."""
    if not text:
        return None
    numbers: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise click.BadParameter(f"{part!r}: use numbers and ranges like 0-4,7")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise click.BadParameter(f"{part!r}: the range runs backwards")
        numbers.update(range(low, high + 1))
    return sorted(numbers)


@click.command("import-dqn-replay", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--game", required=True, help="The game of these files, snake_case (pong, ms_pacman).")
@click.option("--checkpoints", default=None, metavar="LIST",
              help="Checkpoint numbers to import, e.g. 0-4,7 [default: all, in order].")
@click.option("--marker", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a dataset manifest here once the store is complete (as prefill does).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def import_dqn_replay_command(source, store, game, checkpoints, marker, progress):
    """Import DQN Replay Dataset checkpoints (gzipped numpy arrays) into a new store.

    SOURCE is a replay_logs folder of one game and run ($store$_observation_ckpt.<k>.gz and
    friends); STORE is the zarr store to write. Frames are resized 84x84 -> 64x64 (INTER_AREA),
    actions aligned to ours (the action that led to the image), episodes split on terminals;
    rewards stay as stored (Dopamine clipped them to [-1, 1]). Rerun the same command to resume.

    Example: dreamer-pipeline import-dqn-replay dqn/Pong/1/replay_logs
    results/datasets/pong/dqn-replay-1.zarr --game pong --checkpoints 0-4
    """
    import time

    from dreamer_pipeline.datasets.interop.dqn_replay import import_dqn_replay

    attrs = dqn_replay_attrs(game, source)  # errors are the CLI's one `error:` line (pipelines/cli.py)
    started = time.perf_counter()
    report = import_dqn_replay(source, store, attrs, checkpoints=parse_checkpoints(checkpoints), progress=progress)
    seconds = time.perf_counter() - started
    if marker is not None:
        from ..dataset_refs import write_store_marker

        write_store_marker(marker, store, name=store.stem)
    click.echo(
        f"wrote {store}: {report.episodes} episodes, {report.steps} steps from {report.entries_read} entries of "
        f"checkpoints {report.checkpoints} ({report.truncated_episodes} truncated at the time limit, "
        f"{report.entries_dropped} entries of cut episodes left out, {report.skipped_episodes} already there); "
        f"{report.entries_read / max(seconds, 1e-9):,.0f} entries/s"
    )
