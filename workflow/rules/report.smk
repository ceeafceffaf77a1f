# The score report: normalised scores, Table 1 aggregates and learning curves over every evaluation.
# `snakemake --report report.html` collects the outputs marked with report() into one HTML file.


rule scores:
    """Human-normalised scores, aggregates and learning curves of every configured run."""
    input:
        evals=W.all_evals(),
    output:
        table=report(L.scores_table(), caption="../../pipelines/report/scores.rst", category="Scores"),
        data=L.scores_json(),
        plots=report(
            directory(L.scores_plots()),
            patterns=["{plot}.png"],
            caption="../../pipelines/report/curves.rst",
            category="Learning curves",
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
