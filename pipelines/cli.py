"""The `dreamer-pipeline` command line.

Subcommands are loaded lazily, so `dreamer-pipeline --help` and a stage that needs no torch stay
fast. Each stage module exposes one click command; register it in `SUBCOMMANDS` as
"module:attribute" relative to this package.

Errors are mapped here, in one place, for every command: an error the project raises on purpose
(any exception class defined in `dreamer_pipeline`: StoreError, DatasetError, HDF5Error,
ConfigError, CheckpointError, ...) and an `OSError` on a path (permission denied, read-only file
system, disk full) become one line on stderr, `error: ...`, and exit code 2, as do click's own
usage errors. Anything else is a bug and keeps its traceback; `dreamer-pipeline --debug COMMAND`
shows the traceback of every error.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import click

EXIT_ERROR = 2
PACKAGE = "dreamer_pipeline"

SUBCOMMANDS: dict[str, str] = {
    # issue: experience data
    "collect": "stages.collect:collect_command",
    "inspect": "data_commands.inspect_store:inspect_command",
    "stats": "data_commands.stats:stats_command",
    "export-hdf5": "data_commands.hdf5_commands:export_command",
    "import-hdf5": "data_commands.hdf5_commands:import_command",
    "import-dqn-replay": "data_commands.dqn_replay_command:import_dqn_replay_command",
    "import-minari-atari": "data_commands.minari_atari_command:import_minari_atari_command",
    "verify": "data_commands.verify:verify_command",
    # issue: pipeline
    "prefill": "stages.prefill:prefill_command",
    "train-agent": "stages.train_agent:train_agent_command",
    "train-world-model": "stages.train_world_model:train_world_model_command",
    "train-actor-critic": "stages.train_actor_critic:train_actor_critic_command",
    "train-online": "stages.train_online:train_online_command",
    "pretrain-world-model": "stages.pretrain_world_model:pretrain_world_model_command",
    "evaluate": "stages.evaluate:evaluate_command",
    "watch": "acting.watch:watch_command",
    "scores": "scores.command:scores_command",
    "status": "tracking.status:status_command",
    "check-config": "check_config:check_config_command",
    "workflow": "workflow_command:workflow_command",
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

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            error.exit_code = EXIT_ERROR  # click's default for ClickException is 1; one code for every error
            raise
        except Exception as error:  # noqa: BLE001 - mapped or re-raised below
            message = expected_error_message(error)
            if message is None or (ctx.obj or {}).get("debug"):
                raise
            click.echo(f"error: {message}", err=True)
            ctx.exit(EXIT_ERROR)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=70)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def expected_error_message(error: BaseException) -> str | None:
    """The one-line message of an error the user can fix, or None for a bug (keep the traceback)."""
    if type(error).__module__.split(".")[0] == PACKAGE:
        text = str(error)
    elif isinstance(error, OSError) and error.filename is not None:
        text = f"{error.strerror or type(error).__name__}: {error.filename}"
        if error.filename2 is not None:
            text += f" -> {error.filename2}"
    else:
        return None
    return " ".join(text.split()) or type(error).__name__


def _format_warning(message, category, filename, lineno, line=None) -> str:
    if category.__module__.split(".")[0] == PACKAGE:
        return f"warning: {message}\n"
    return _default_format_warning(message, category, filename, lineno, line)


_default_format_warning = warnings.formatwarning


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dreamer-pipeline")
@click.option("--debug", is_flag=True, default=False, help="Show the traceback of every error (for bug reports).")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """DreamerV2 on Atari as a dataset-centric pipeline.

    Collect experience into zarr stores, train the agent (world model, actor and critic) from them,
    evaluate, and report scores. `snakemake --cores 8 train_all` chains every stage; each stage is
    also a subcommand here. Run `dreamer-pipeline COMMAND --help` for one command's options.

    Errors print one line, `error: ...`, and exit with code 2; --debug shows their tracebacks.
    """
    ctx.ensure_object(dict)["debug"] = debug
    warnings.formatwarning = _format_warning  # the project's warnings in one line, like its errors
    from .tracking.progress_lines import install

    install()  # in a job's log (stderr not a terminal), progress bars write whole lines


if __name__ == "__main__":
    sys.exit(main())
