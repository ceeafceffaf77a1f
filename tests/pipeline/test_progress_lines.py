"""Progress bars in job logs become whole lines (issue 18: tqdm's carriage returns made `tail`
print one huge line), with a real tqdm bar writing into the wrapper."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from tqdm import tqdm

from dreamer_pipeline.pipelines.tracking.progress_lines import ProgressLines


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_tqdm_bar_becomes_a_line_every_interval_and_its_final_state():
    log, clock = io.StringIO(), Clock()
    stream = ProgressLines(log, interval=30.0, clock=clock)
    bar = tqdm(total=100, desc="train", unit="update", file=stream, mininterval=0, ascii=True)
    for update in range(100):
        clock.now = update * 1.0            # one update a second: a line every 30 updates
        bar.update(1)
        if update == 49:
            tqdm.write("resuming note", file=stream)   # tqdm.write's message passes through as its own line
    bar.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert all(line.startswith("train:") or line == "resuming note" for line in lines), lines
    progress = [line for line in lines if line.startswith("train:")]
    assert progress[0].startswith("train:   0%") and progress[-1].startswith("train: 100%")
    assert 4 <= len(progress) <= 8           # 0%, ~every 30 s, before the note, 100%: not 100 lines
    assert lines.count("resuming note") == 1 and "" not in lines


def test_plain_text_passes_through_unchanged():
    log = io.StringIO()
    stream = ProgressLines(log)
    stream.write("error: something\n")
    stream.write("warning: a\nwarning: b\n")
    assert log.getvalue() == "error: something\nwarning: a\nwarning: b\n"


def test_the_cli_writes_bars_as_lines_when_stderr_is_a_file(tmp_path):
    # a real subcommand with a progress bar, its stderr a file as in a Snakemake job
    log = tmp_path / "scores.log"
    for seed in (0, 1):
        path = tmp_path / f"runs/pong/a/seed{seed}/iter0000/eval.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"game": "pong", "variant": "a", "seed": seed, "iteration": 0,
                                    "frames": 100, "returns": [1.0], "mean_return": 1.0}))
    with log.open("w") as handle:
        subprocess.run([sys.executable, "-m", "dreamer_pipeline.pipelines.cli", "scores", str(tmp_path / "runs"),
                        "--out", str(tmp_path / "out"), "--no-plots", "--bootstrap-reps", "10"],
                       stderr=handle, stdout=subprocess.DEVNULL, check=True, timeout=300)
    text = log.read_bytes().decode()                      # read_text would turn \r into \n
    assert "eval.json: 100%" in text and "\r" not in text
