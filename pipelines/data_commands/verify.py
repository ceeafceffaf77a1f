"""`dreamer-pipeline verify`: check whole stores and datasets, chunk by chunk (datasets/verify.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("verify", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, required=True, metavar="PATH...", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per store instead of text.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def verify_command(paths, as_json, progress) -> None:
    """Verify experience stores: every chunk read and checked, and what the data means.

    PATH is any number of stores, directories of stores or dataset manifests.

    For each store: the schema and the commit record; every chunk file of the committed range
    present, its crc32c checksum correct (stores written before checksums have none) and its data
    decodable; the flags delimiting whole episodes that agree with the counters, the committed
    range ending on an episode boundary; first steps holding action 0 and reward 0; actions inside
    the action set; finite rewards. Prints one line per store; exits 2 if any store fails.

    Example: dreamer-pipeline verify results/datasets results/runs/pong/default/seed0
    """
    from tqdm.auto import tqdm

    from dreamer_pipeline.datasets.verify import VerificationError, count_chunks, verify_sources

    total = count_chunks(*paths) if progress else 0
    with tqdm(total=total, desc="verify", unit="chunk", disable=not progress or not total) as bar:
        reports = verify_sources(*paths, on_chunk=bar.update)
    for report in reports:
        if as_json:
            click.echo(json.dumps(report.to_dict()))
        elif report.ok:
            checksums = "crc32c checked" if report.checksummed else "no checksums (written before them)"
            click.echo(f"ok       {report.path}: {report.steps:,} steps, {report.episodes:,} episodes, "
                       f"{report.chunks:,} chunks read, {checksums}")
        else:
            more = f" (and {report.more_problems} more)" if report.more_problems else ""
            click.echo(f"CORRUPT  {report.path}: " + "; ".join(report.problems) + more)
    failed = [report for report in reports if not report.ok]
    if failed:
        raise VerificationError(f"{len(failed)} of {len(reports)} store(s) failed verification: "
                                + ", ".join(report.path for report in failed))
