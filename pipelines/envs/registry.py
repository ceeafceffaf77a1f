"""Suites and games -> environment settings and vector environments (collectors, evaluation, videos).

Two suites: `atari` (ale-py, `pipelines.envs.atari`; the test game Catch, "catch" / "catch-N",
runs in it too) and `dmc` (the DeepMind Control Suite from pixels, `pipelines.envs.dmc`). Every
environment has the collectors' vector interface (`reset(seeds)`, `step(actions) -> Step`, `game`,
`num_envs`, `action_space`, context manager): `pipelines.envs.atari.VectorAtari` documents it.
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


def env_config_class(suite: str):
    """The suite's environment settings dataclass (`env:` in a pipeline configuration overrides it)."""
    if suite == "dmc":
        from .dmc import DMCConfig

        return DMCConfig
    if suite != "atari":
        raise ValueError(f"unknown suite {suite!r}; choose atari or dmc")
    return EnvConfig


def env_config_of(cfg, where: str = "env"):
    """The run's environment settings: the suite's defaults (the published protocol) with `env:` applied."""
    from dreamer_pipeline.models.config_schema import override

    return override(env_config_class(cfg.suite)(), cfg.env, where)


def canonical_game(game: str, suite: str = "atari") -> str:
    """The name the run layout uses for `game`, or a ValueError naming it and close matches."""
    if suite == "dmc":
        from .dmc import resolve_task

        return resolve_task(game)[0]
    if is_catch(game):
        catch_config(game)
        return game
    from .atari import resolve_game

    return resolve_game(game)[0]


def vector_env(game: str, num_envs: int, env_config=EnvConfig(), num_threads: int | None = None):
    """The collectors' vector environment: a Control Suite task when `env_config` is a `DMCConfig`,
    else an Atari game, or "catch" / "catch-N" (`pipelines.envs.catch`, the tiny pixel game of the
    learning test, with balls falling N rows; `env_config` does not apply)."""
    if type(env_config).__name__ == "DMCConfig":
        from .dmc import VectorDMC

        return VectorDMC(game, num_envs, env_config)
    if is_catch(game):
        from .catch import CatchVectorEnv

        return CatchVectorEnv(num_envs, catch_config(game))
    return VectorAtari(game, num_envs, env_config, num_threads=num_threads)
