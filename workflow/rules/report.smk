# The score reports: normalised scores, aggregates and learning curves over every evaluation.
# Each variant writes its own report (scores/variants/{variant}/); the report across variants
# (scores/) reads every variant's runs in the results folder, one row per variant in each table.
# `snakemake --report report.html` collects the outputs marked with report() into one HTML file.


rule scores:
    """Human-normalised scores, aggregates and learning curves of this variant's runs."""
    input:
        evals=W.all_evals(),
    output:
        table=report(L.scores_table(VARIANT), caption="../../pipelines/report/scores.rst", category="Scores",
                     subcategory=VARIANT),
        data=L.scores_json(VARIANT),
        plots=report(
            directory(L.scores_plots(VARIANT)),
            patterns=["{plot}.png"],
            caption="../../pipelines/report/curves.rst",
            category="Learning curves",
            subcategory=VARIANT,
            labels={"plot": "{plot}"},
        ),
    params:
        out=lambda w, output: os.path.dirname(output.table),
        games=",".join(CFG.games),
    log:
        L.log("scores", VARIANT),
    conda:
        CONDA_ENV
    shell:
        "dreamer-pipeline scores --out {params.out:q} --games {params.games:q} {input.evals:q} > {log:q} 2>&1"


rule scores_all_variants:
    """The same report over every variant's runs in the results folder: this variant's, once its own
    report is done, and those other workflows left there (each one a row of every table)."""
    input:
        own=L.scores_json(VARIANT),
        others=W.other_variants_evals(),
    output:
        table=report(L.scores_table(), caption="../../pipelines/report/scores.rst", category="Scores",
                     subcategory="all variants"),
        data=L.scores_json(),
        plots=report(
            directory(L.scores_plots()),
            patterns=["{plot}.png"],
            caption="../../pipelines/report/curves.rst",
            category="Learning curves",
            subcategory="all variants",
            labels={"plot": "{plot}"},
        ),
    params:
        out=lambda w, output: os.path.dirname(output.table),
        runs=L.runs_root(),
    log:
        L.log("scores_all_variants"),
    conda:
        CONDA_ENV
    shell:
        "dreamer-pipeline scores --out {params.out:q} {params.runs:q} > {log:q} 2>&1"
