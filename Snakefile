# DreamerV2 on Atari as a Snakemake pipeline (see docs/pipeline.md).
#
#   snakemake --cores 8 train_all --configfile config/default.yaml  # the paper's protocol, online loop
#   snakemake --cores 2 --configfile config/debug.yaml train_all # a tiny end-to-end run
#   snakemake --cores 8 --resources gpu=1 --profile profiles/local train_all
#
# Each stage is one `dreamer-pipeline` subcommand, called with the rule's named inputs and outputs.
# The configuration is validated here, at parse time, by the same code as `dreamer-pipeline
# check-config`: a bad configuration stops the workflow before any job starts.

import os
import re
import sys
import warnings

from snakemake.utils import min_version

# Snakemake builds the DAG recursively, about four frames per job along the chain of iterations:
# the default limit (1000) stops near 240 staged iterations. Iterations are bounded by
# pipelines/limits.py; this leaves room for them.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 100_000))

from dreamer_pipeline.models.config_schema import ConfigError
from dreamer_pipeline.pipelines.check_config import PlanWarning
from dreamer_pipeline.pipelines.results_lock import ResultsLockedError
from dreamer_pipeline.pipelines.workflow_plan import load_workflow

min_version("9.0")

try:
    # `--config KEY=VALUE` values arrive as strings; the schema types them (pipelines/config_overrides.py;
    # dotted keys come through `dreamer-pipeline workflow`, since Snakemake's own parser refuses them).
    # Only those: `overwrite_config` also holds the config files' values, which keep their YAML types.
    with warnings.catch_warnings(record=True) as planning_warnings:
        warnings.simplefilter("always", PlanWarning)
        W = load_workflow(config, overrides=workflow.config_settings.config)
except ConfigError as error:
    sys.stderr.write(f"\nInvalid configuration: {error}\n\n")
    raise SystemExit(1)
for warning in planning_warnings:
    sys.stderr.write(f"Warning: {warning.message}\n")

L = W.layout
CFG = W.cfg
VARIANT = CFG.variant
CONFIG_SNAPSHOT = L.config_snapshot(VARIANT)

report: "pipelines/report/workflow.rst"

wildcard_constraints:
    **W.wildcard_constraints(),


localrules: train_all


onstart:
    # One running workflow per results folder (a lock inside it, pipelines/results_lock.py), and the
    # configuration snapshot written under that lock: a dry run or --lint writes nothing.
    try:
        W.start()
    except (ConfigError, ResultsLockedError) as error:
        sys.stderr.write(f"\nError: {error}\n\n")
        raise SystemExit(1)


onsuccess:
    W.finish()


onerror:
    W.finish()


rule train_all:
    """Every configured game and seed to the end of its frame budget, then the score reports: this
    variant's own and the one across every variant in the results folder."""
    input:
        evals=W.final_evals(),
        scores=L.scores_table(VARIANT),
        scores_all_variants=L.scores_table(),


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
