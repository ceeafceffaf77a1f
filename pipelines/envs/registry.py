"""The game name -> vector environment dispatch, used by collectors, evaluation and videos.

Every environment has the collectors' vector interface (`reset(seeds)`, `step(actions) -> Step`,
`game`, `num_envs`, `num_actions`, context manager): `pipelines.envs.atari.VectorAtari` documents it.
"""

from __future__ import annotations

from .atari import EnvConfig, VectorAtari


def is_catch(game: str) -> bool:
    return game == "catch" or game.startswith("catch-")


def catch_config(game: str):
    """The CatchConfig of "catch" or "catch-N" (balls fall N rows), or a ValueError naming the game."""
    from .catch import CELLS, CatchConfig

    if game == "catch":
        return CatchConfig()
    text = game.removeprefix("catch-")
    if not text.isdigit():
        raise ValueError(f"unknown game {game!r}: the Catch games are 'catch' and 'catch-N' (N rows of fall)")
    fall = int(text)
    if not 1 <= fall <= CELLS - 1:
        raise ValueError(f"unknown game {game!r}: a ball falls 1 to {CELLS - 1} rows")
    return CatchConfig(fall=fall)


def canonical_game(game: str) -> str:
    """The name the run layout uses for `game`, or a ValueError naming it and close matches."""
    if is_catch(game):
        catch_config(game)
        return game
    from .atari import resolve_game

    return resolve_game(game)[0]


def vector_env(game: str, num_envs: int, env_config: EnvConfig = EnvConfig(), num_threads: int | None = None):
    """The collectors' vector environment: an Atari game, or "catch" / "catch-N" (`pipelines.envs.catch`,
    the tiny pixel game of the learning test, with balls falling N rows; `env_config` does not apply)."""
    if is_catch(game):
        from .catch import CatchVectorEnv

        return CatchVectorEnv(num_envs, catch_config(game))
    return VectorAtari(game, num_envs, env_config, num_threads=num_threads)
