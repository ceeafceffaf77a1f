# Helpers shared by the rules, and the software every rule runs with.
#
# Every rule runs `dreamer-pipeline` subcommands; `--software-deployment-method conda` builds
# workflow/envs/dreamer-pipeline.yaml once (see docs/pipeline.md, "Software").

CONDA_ENV = "../envs/dreamer-pipeline.yaml"  # relative to this rules folder

# The evaluation video is an output only when configured (evaluate.video), shown in the report.
EVAL_VIDEO = (
    {
        "video": report(
            L.eval_video("{game}", "{variant}", "{seed}", "{iteration}"),
            caption="../../pipelines/report/video.rst",
            category="Evaluation episodes",
            subcategory="{game} seed {seed}",
            labels={"game": "{game}", "seed": "{seed}", "iteration": "{iteration}"},
        )
    }
    if CFG.evaluate.video
    else {}
)


def _shared_flags(wildcards, input):
    """Shared datasets join every replay in full: the ones built here (inputs) and existing ones."""
    sources = [*input.shared, *W.shared_external(wildcards.game)]
    return " ".join(f"--shared {source}" for source in sources)


def _start_flags(wildcards, input):
    if "previous" in input.keys():
        return f"--resume-from {input.previous}"
    if "pretrained" in input.keys():
        return f"--init-world-model {input.pretrained}"
    return ""
