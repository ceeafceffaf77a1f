"""`dreamer-pipeline workflow ARGS...`: Snakemake, with dotted `--config` keys.

The pipeline has one override syntax, `KEY=VALUE` with a dotted key and a YAML value
(`pipelines/config_overrides.py`). Snakemake 9's command line refuses a dot in a `--config` key
("Config entry must start with a valid identifier", a traceback; snakemake/snakemake#3907) before
the Snakefile is read, so nothing in the workflow can accept `--config agent.preset=small` from a
plain `snakemake`. This command runs Snakemake with the same arguments, each dotted `--config`
entry rewritten into the top-level form Snakemake accepts: `agent.preset=small` becomes
`agent={"preset": "small"}` (JSON, which YAML reads; the value first read as Snakemake reads
values, every scalar a string). The Snakefile types the values by the schema either way, and
jobs Snakemake submits elsewhere (SLURM) get the rewritten entries, which their Snakemake accepts.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

CONFIG_FLAGS = ("--config", "-C")


def rewrite_config_arguments(arguments: list[str]) -> list[str]:
    """`arguments` with every dotted `--config` entry in Snakemake's top-level form (module doc).
    A malformed dotted entry is a ConfigError naming it."""
    from .config_overrides import parse_setting

    out: list[str] = []
    in_config = False
    for argument in arguments:
        if argument in CONFIG_FLAGS:
            in_config = True
            out.append(argument)
            continue
        if argument.startswith("--config="):  # argparse's --config=KEY=VALUE for the first entry
            out.append("--config")
            argument, in_config = argument.removeprefix("--config="), True
        elif argument.startswith("-"):
            in_config = False
        key = argument.partition("=")[0]
        if in_config and "." in key:
            key, value = parse_setting(argument, "--config")
            top, *rest = key.split(".")
            out.append(f"{top}={json.dumps(_nest(rest, value))}")
        else:
            out.append(argument)
    return out


def _nest(keys: list[str], value: Any) -> Any:
    for key in reversed(keys):
        value = {key: value}
    return value


@click.command(
    "workflow",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False, "help_option_names": []},
    add_help_option=False,
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def workflow_command(arguments: tuple[str, ...]) -> None:
    """Run Snakemake with these arguments; `--config` takes dotted keys (train.batch_size=32).

    Example: dreamer-pipeline workflow -n --cores 2 train_all --configfile config/small.yaml
    --config agent.preset=debug train.batch_size=8 "games=[pong]"
    """
    from snakemake.cli import main as snakemake_main

    snakemake_main(rewrite_config_arguments(list(arguments)))  # exits with Snakemake's status
    sys.exit(0)
