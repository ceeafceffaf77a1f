"""`dreamer-pipeline check-config`: validate a pipeline configuration before anything runs.

`validate_config(cfg, layout)` is the single validation the Snakefile also runs at parse time, so a
bad configuration fails before any job starts. It checks, in order: the schema (unknown keys,
wrong types, sizes outside `limits.py`, the environment overrides against the suite's settings,
the agent preset and its overrides: done by `load_config`), the games (each must be a game of the
suite), the machine (the device exists and
a training stage's estimated memory fits: `machine.py`), and every dataset the configuration names
(each must be an experience store, a directory of stores or a manifest, unless the pipeline builds
it itself).
Each problem is one `ConfigError` naming the key and what is wrong.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from dreamer_pipeline.models.config_schema import ConfigError, override

from .config import PipelineConfig, check_device_name, dump_config
from .dataset_refs import resolve_dataset
from .config_overrides import load_config_with_settings
from .machine import check_machine, cpu_time_warning, skip_requested
from .run_layout import RunLayout


class PlanWarning(UserWarning):
    """A valid configuration whose plan is probably not what was meant (e.g. years of CPU training)."""


def check_game(game: str, suite: str = "atari") -> None:
    """Raise `ConfigError` unless `game` is the canonical name of a game of `suite` (`pipelines.envs.registry`)."""
    from .envs.registry import canonical_game

    try:
        canonical = canonical_game(game, suite)
    except ValueError as error:  # UnknownGameError names the game and close matches
        raise ConfigError(f"games: {error}") from None
    if canonical != game:  # folder names, eval.json and the score tables use the canonical name
        raise ConfigError(f"games: write {game!r} as {canonical!r} (snake_case, as in the run layout)")


def _check_agent(cfg: PipelineConfig):
    from dreamer_pipeline.models.config import preset

    try:
        base = preset(cfg.agent.preset)
    except (KeyError, ValueError) as error:
        raise ConfigError(f"agent.preset: {error}") from None
    return override(base, cfg.agent.overrides, "agent.overrides")


def _check_trackers(cfg: PipelineConfig) -> None:
    """A tracker whose extra is missing fails here, before any job starts, not in the first stage."""
    from .tracking.trackers import TrackerError, require_backend

    for name in cfg.logging.backends:
        try:
            require_backend(name)
        except TrackerError as error:
            raise ConfigError(str(error)) from None


def validate_config(cfg: PipelineConfig, layout: RunLayout | None = None) -> PipelineConfig:
    """Every check beyond the schema; returns `cfg` unchanged or raises one `ConfigError`."""
    layout = layout or RunLayout.from_config(cfg)
    for game in cfg.games:
        check_game(game, cfg.suite)
    agent_config = _check_agent(cfg)  # env and agent.overrides are typed at load (PipelineConfig.validate)
    _check_trackers(cfg)
    if skip_requested():  # a submit host unlike the nodes: the stages check when they start
        check_device_name(cfg.train.device)
    else:
        warning = cpu_time_warning(cfg, agent_config, check_machine(cfg, agent_config))
        if warning:
            warnings.warn(warning, PlanWarning, stacklevel=2)
    sections = [("datasets", cfg.datasets)]
    if cfg.pretrain is not None:
        sections.append(("pretrain.datasets", cfg.pretrain.datasets))
    for where, entries in sections:
        for index, entry in enumerate(entries):
            for game in cfg.games:
                resolve_dataset(cfg, layout, game, entry, where=f"{where}[{index}]", check=True)
    return cfg


def load_and_validate(path: str | Path, settings: tuple[str, ...] = ()) -> PipelineConfig:
    cfg = load_config_with_settings(path, settings)
    try:
        return validate_config(cfg)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


@click.command("check-config", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config_file", type=click.Path(path_type=Path))
@click.option("--show/--no-show", default=False, help="Print the resolved configuration (defaults filled in).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="An override on top of the file, dotted key and YAML value (train.batch_size=32), as --config.")
def check_config_command(config_file: Path, show: bool, settings: tuple[str, ...]) -> None:
    """Validate a pipeline configuration file before anything runs.

    Exits 2 with one message naming the first problem in CONFIG_FILE (a YAML of pipeline settings).

    Checks unknown keys, wrong types, games ale-py does not know, the agent preset and its
    overrides, environment settings, and that every named dataset is an experience store (or
    will be built by the pipeline). The Snakefile runs the same checks before any job starts.

    Example: dreamer-pipeline check-config config/debug.yaml --show --set agent.preset=small
    """
    with warnings.catch_warnings(record=True) as plan_warnings:
        warnings.simplefilter("always", PlanWarning)
        cfg = load_and_validate(config_file, settings)  # a ConfigError is one line and exit code 2 (pipelines/cli.py)
    for warning in plan_warnings:
        click.echo(f"warning: {warning.message}", err=True)
    if show:
        click.echo(dump_config(cfg), nl=False)
    click.echo(f"{config_file}: ok ({len(cfg.games)} game(s), {len(cfg.seeds)} seed(s), variant {cfg.variant!r})", err=True)
