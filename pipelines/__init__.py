"""Stages, environments, configuration, the CLI and the Snakemake glue."""
