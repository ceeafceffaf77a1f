"""The `dreamer-pipeline` command line.

Subcommands are loaded lazily, so `dreamer-pipeline --help` and a stage that needs no torch stay
fast. Each stage module exposes one click command; register it in `SUBCOMMANDS` as
"module:attribute" relative to this package.
"""

from __future__ import annotations

import importlib

import click

SUBCOMMANDS: dict[str, str] = {
    # issue: experience data
    "collect": "collect:collect_command",
    "inspect": "inspect_store:inspect_command",
    "stats": "stats:stats_command",
    "export-hdf5": "hdf5_commands:export_command",
    "import-hdf5": "hdf5_commands:import_command",
    "import-dqn-replay": "dqn_replay_command:import_dqn_replay_command",
    "import-minari-atari": "minari_atari_command:import_minari_atari_command",
    # issue: pipeline
    "prefill": "prefill:prefill_command",
    "train-world-model": "train_world_model:train_world_model_command",
    "train-actor-critic": "train_actor_critic:train_actor_critic_command",
    "train-online": "train_online:train_online_command",
    "pretrain-world-model": "pretrain_world_model:pretrain_world_model_command",
    "evaluate": "evaluate:evaluate_command",
    "watch": "watch:watch_command",
    "scores": "scores_command:scores_command",
    "check-config": "check_config:check_config_command",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(f"{__package__}.{module_name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__package__}.{module_name}":
                raise
            return None  # not built yet; hidden from the command list
        return getattr(module, attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=70)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dreamer-pipeline")
def main() -> None:
    """DreamerV2 on Atari as a dataset-centric pipeline.

    Collect experience into zarr stores, train the world model and the actor-critic from them,
    evaluate, and report scores. `snakemake --cores 8 train_all` chains every stage; each stage is
    also a subcommand here. Run `dreamer-pipeline COMMAND --help` for one command's options.
    """


if __name__ == "__main__":
    main()
