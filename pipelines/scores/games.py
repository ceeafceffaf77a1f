"""Which games the scores code knows, and how each is scored.

Three kinds of game:

- **Atari** games of `atari_baselines.json`: human-normalised scores, Table 1 aggregates and
  rliable statistics (`normalised.py`, `statistics.py`).
- **Catch** (`catch`, `catch-N`, the tiny test game of `pipelines/envs/catch.py`) and
- **Control Suite** tasks (`walker_walk`, `cartpole_swingup`, ...): no published human or random
  references exist to normalise them against, so they are **raw-return games**, scored on their
  returns alone, beside DreamerV2's published curve where there is one (`raw_returns.py`).

The Control Suite names are the `domain_task` names of DreamerV2's `dmc_vision` configuration
(`cup_catch` is dm_control's `ball_in_cup` domain) plus the other benchmark tasks of the suite;
any task with a published curve file (`reference_curves.py`) is known too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

from .normalised import GAME_SET_ATARI55, ScoresError, atari55, load_baselines, unknown_game_message
from .reference_curves import reference_games

ATARI, CATCH, DMC = "atari", "catch", "dmc"
SUITE_TITLES = {ATARI: "Atari", CATCH: "Catch", DMC: "Control Suite"}

# The 20 tasks of DreamerV2's published dmc_vision curves (dreamerv2_dmc_vision_scores.json).
DMC_VISION_TASKS = (
    "acrobot_swingup", "cartpole_balance", "cartpole_balance_sparse", "cartpole_swingup",
    "cartpole_swingup_sparse", "cheetah_run", "cup_catch", "finger_spin", "finger_turn_easy",
    "finger_turn_hard", "hopper_hop", "hopper_stand", "pendulum_swingup", "quadruped_run",
    "quadruped_walk", "reacher_easy", "reacher_hard", "walker_run", "walker_stand", "walker_walk",
)
# The suite's other tasks (dm_control.suite), domain and task joined by "_".
OTHER_DMC_TASKS = (
    "acrobot_swingup_sparse", "ball_in_cup_catch", "cartpole_two_poles", "cartpole_three_poles",
    "dog_fetch", "dog_run", "dog_stand", "dog_trot", "dog_walk", "fish_swim", "fish_upright",
    "humanoid_run", "humanoid_stand", "humanoid_walk", "manipulator_bring_ball",
    "manipulator_bring_peg", "manipulator_insert_ball", "manipulator_insert_peg",
    "point_mass_easy", "point_mass_hard", "quadruped_escape", "quadruped_fetch",
    "stacker_stack_2", "stacker_stack_4", "swimmer_swimmer6", "swimmer_swimmer15",
)
_CATCH = re.compile(r"catch(-[0-9]+)?")


def dmc_tasks() -> tuple[str, ...]:
    """Every Control Suite task name the scores code accepts, sorted."""
    atari = set(load_baselines().table)
    published = {game for game in reference_games() if game not in atari}
    return tuple(sorted(set(DMC_VISION_TASKS) | set(OTHER_DMC_TASKS) | published))


def game_suite(game: str) -> str:
    """`atari`, `catch` or `dmc` for a known game; a ScoresError with close matches otherwise."""
    if game in load_baselines().table:
        return ATARI
    if _CATCH.fullmatch(game):
        return CATCH
    if game in dmc_tasks():
        return DMC
    raise ScoresError(unknown_name_message(game))


def check_game(game: str) -> str:
    """Return `game` if it is an Atari game, a Catch game or a Control Suite task."""
    game_suite(game)
    return game


def is_raw_return(game: str) -> bool:
    """True for a known game scored on raw returns (Catch, Control Suite), False for Atari."""
    return game_suite(game) != ATARI


def unknown_name_message(game: str) -> str:
    """The error for a name of no kind: Atari's message unless it looks like Catch or a task."""
    key = game.lower().replace("-", "_").replace(" ", "_")
    atari, tasks = load_baselines().games, dmc_tasks()
    if key.startswith("catch"):
        return (f"unknown game {game!r}: the Catch games are 'catch' and 'catch-N' "
                f"(N rows of fall, e.g. 'catch-1')")
    scores = {name: difflib.SequenceMatcher(None, key, name).ratio() for name in atari + tasks}
    best = max(scores, key=scores.__getitem__)
    if best in tasks and scores[best] >= 0.6:
        close = difflib.get_close_matches(key, tasks, n=3, cutoff=0.6)
        return (f"unknown Control Suite task {game!r}; did you mean "
                f"{' or '.join(repr(name) for name in close)}? Tasks are named domain_task "
                f"(e.g. 'walker_walk', 'cartpole_swingup').")
    return (unknown_game_message(game, atari) + " Raw-return games: 'catch', 'catch-N' and "
            "Control Suite tasks such as 'walker_walk'.")


def resolve_games(spec: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """Turn a game-set spec into validated game names; None stays None ("the games present").

    `spec` is `atari55`, a comma-separated list of names, a path to a text file with one name a
    line, or an iterable of names. Each name must be an Atari game, Catch or a Control Suite task.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec.strip() == GAME_SET_ATARI55:
            return atari55()
        path = Path(spec)
        if path.is_file():
            names = [line.strip() for line in path.read_text().splitlines()]
            names = [name for name in names if name and not name.startswith("#")]
        else:
            names = [name.strip() for name in spec.split(",") if name.strip()]
    else:
        names = [str(name).strip() for name in spec]
    if not names:
        raise ScoresError(f"the game list {spec!r} names no games")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ScoresError(f"the game list names {', '.join(duplicates)} more than once")
    return tuple(check_game(name) for name in names)
