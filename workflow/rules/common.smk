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

def open_loop_videos():
    """The open-loop prediction GIFs every training stage on a replay writes, shown in the report
    (a fresh output object per rule)."""
    return report(
        directory(L.videos_dir("{game}", "{variant}", "{seed}", "{iteration}")),
        patterns=["{video}.gif"],
        caption="../../pipelines/report/open_loop.rst",
        category="Open-loop predictions",
        subcategory="{game} seed {seed}",
        labels={"game": "{game}", "seed": "{seed}", "iteration": "{iteration}", "batch": "{video}"},
    )


# Every value in a rule's shell command is quoted (`:q`): paths may hold spaces, quotes, `$(...)` or
# backticks and must reach the command as one argument each, never as shell code. Optional flags
# are therefore lists of arguments, which `:q` quotes one by one (an empty list adds nothing).


def _shared_flags(wildcards, input):
    """Shared datasets join every replay in full: the ones built here (inputs) and existing ones."""
    sources = [*input.shared, *W.shared_external(wildcards.game)]
    return [argument for source in sources for argument in ("--shared", source)]


def _start_flags(wildcards, input):
    if "previous" in input.keys():
        return ["--resume-from", input.previous]
    if "pretrained" in input.keys():
        return ["--init-world-model", input.pretrained]
    return []
