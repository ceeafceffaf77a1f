"""Attacks on state that outlives its inputs (issue 16): a mid-stage checkpoint resumed after its
inputs changed, a partial of another architecture, stray temporary checkpoints, a checkpoint of
another game, and checkpoint file modes. Each ends in a documented recovery or one clear error."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from factories import make_store

from dreamer_pipeline.pipelines.cli import main

ROOT = Path(__file__).resolve().parents[2]


def stage_config(folder: Path, **agent_overrides) -> Path:
    data = yaml.safe_load((ROOT / "config/debug.yaml").read_text())
    data["train"].update(batch_size=2, sequence_length=8, checkpoint_every=2)
    data["agent"]["overrides"] = agent_overrides
    data["paths"] = {"results": str(folder / "results")}  # the stages' metrics go to the run's folder there
    path = folder / f"config-{len(list(folder.glob('config-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def train(config: Path, replay: Path, out: Path, *extra: str):
    args = ["train-world-model", "--config", str(config), "--game", "pong", "--updates", "4", "--world-model-only",
            "--out", str(out), *extra, str(replay)]
    return CliRunner().invoke(main, args)


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state"]["world_model"]


def same_weights(a: Path, b: Path) -> bool:
    first, second = weights(a), weights(b)
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.fixture
def run(tmp_path):
    """One finished stage: its output, its final partial (kept for a kill after the last update)."""
    replay = make_store(tmp_path / "replay.zarr", [20, 24, 22])
    out = tmp_path / "iter0000/world_model.pt"
    result = train(stage_config(tmp_path), replay, out)
    assert result.exit_code == 0, result.output
    first = tmp_path / "first.pt"
    shutil.copy(out, first)
    out.unlink()  # `snakemake -R` deletes the output; the undeclared partial stays
    assert (tmp_path / "iter0000/world_model.partial.pt").exists()
    return tmp_path, replay, out, first


def test_a_partial_is_not_resumed_after_a_setting_changed(run):
    """Attack 3: after `-R` with a changed agent setting the old, completed partial was "resumed":
    0 updates, and the old weights written as the new checkpoint under the new setting's metadata."""
    from dreamer_pipeline.pipelines.stages.stage_inputs import StalePartialWarning

    folder, replay, out, first = run
    with pytest.warns(StalePartialWarning, match="other inputs .*the settings changed"):
        result = train(stage_config(folder, world_model={"kl_scale": 0.5}), replay, out)
    assert result.exit_code == 0, result.output
    assert not same_weights(first, out)  # 4 new updates were made


def test_a_partial_is_not_resumed_after_its_replay_was_rebuilt(run):
    """Attack 3: the replay's store deleted and collected again (same path, same length)."""
    from dreamer_pipeline.pipelines.stages.stage_inputs import StalePartialWarning

    folder, replay, out, first = run
    shutil.rmtree(replay)
    make_store(replay, [20, 24, 22], seed=5)
    with pytest.warns(StalePartialWarning, match="the replay's stores changed"):
        result = train(stage_config(folder), replay, out)
    assert result.exit_code == 0, result.output
    assert not same_weights(first, out)


def test_a_partial_is_not_resumed_from_another_start(run):
    """Attack 3: the starting checkpoint (`--resume-from`) is not the one the partial started from."""
    from dreamer_pipeline.pipelines.stages.stage_inputs import StalePartialWarning

    folder, replay, out, first = run
    with pytest.warns(StalePartialWarning, match="the starting checkpoint changed"):
        result = train(stage_config(folder), replay, out, "--resume-from", str(first))
    assert result.exit_code == 0, result.output


def test_a_partial_of_the_same_inputs_is_still_resumed(run):
    """The recovery the partial exists for: a kill after the last update redoes nothing."""
    folder, replay, out, first = run
    result = train(stage_config(folder), replay, out)
    assert result.exit_code == 0, result.output
    assert same_weights(first, out)


def test_a_partial_of_another_architecture_is_discarded_not_a_traceback(run):
    """Attack 3: a partial of another architecture under the same name was a traceback (the
    architecture is part of the settings: the warning names the field)."""
    from dreamer_pipeline.pipelines.stages.stage_inputs import StalePartialWarning

    folder, replay, out, first = run
    wider = stage_config(folder, world_model={"rssm": {"deter": 24}})
    with pytest.warns(StalePartialWarning, match="another architecture .*deter"):
        result = train(wider, replay, out)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


def test_an_unreadable_partial_is_discarded(run):
    from dreamer_pipeline.pipelines.stages.stage_inputs import StalePartialWarning

    folder, replay, out, first = run
    (folder / "iter0000/world_model.partial.pt").write_bytes(b"garbage")
    with pytest.warns(StalePartialWarning, match="cannot be read"):
        result = train(stage_config(folder), replay, out)
    assert result.exit_code == 0, result.output


# ----------------------------------------------------------------------------------------------
# Checkpoint files: their game, their mode, leftovers of a kill, a full disk

def evaluate(agent: Path, game: str, out: Path):
    return CliRunner().invoke(main, ["evaluate", "--config", str(ROOT / "config/debug.yaml"), "--game", game,
                                     "--agent", str(agent), "--out", str(out), "--episodes", "1", "--device", "cpu"])


def test_a_checkpoint_of_another_game_is_refused_by_evaluate(run):
    """Attack (low): a pong agent evaluated as space_invaders (both 6 actions) gave a score under
    the wrong game's name, silently. Checkpoints record their game now."""
    folder, replay, out, first = run
    result = evaluate(first, "space_invaders", folder / "eval.json")
    assert result.exit_code == 2, result.output
    assert "was trained on 'pong', not 'space_invaders'" in result.output and not (folder / "eval.json").exists()


def test_a_checkpoint_from_before_games_were_recorded_still_evaluates(run):
    folder, replay, out, first = run
    payload = torch.load(first, map_location="cpu", weights_only=True)
    del payload["extra"]["game"]
    torch.save(payload, folder / "old.pt")
    result = evaluate(folder / "old.pt", "pong", folder / "eval.json")
    assert result.exit_code == 0, result.output


def test_checkpoints_follow_the_umask(run):
    """Attack (low): checkpoints were 0600 while every other output follows the umask."""
    folder, replay, out, first = run
    mask = os.umask(0)
    os.umask(mask)
    result = train(stage_config(folder), replay, out)
    assert result.exit_code == 0, result.output
    for path in (out, folder / "iter0000/world_model.partial.pt"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


KILLED_WHILE_SAVING = """
import os, signal, sys
from click.testing import CliRunner
real_replace = os.replace
def killed(src, dst):
    if str(dst).endswith("world_model.pt"):
        os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is complete, the rename never happens
    real_replace(src, dst)
os.replace = killed
from dreamer_pipeline.pipelines.cli import main
main(sys.argv[1:])
"""


def test_a_temporary_checkpoint_left_by_a_kill_is_removed_by_the_next_run(tmp_path):
    """Attack (low): a `.world_model.pt.*.tmp` stayed beside the output after a SIGKILL."""
    import subprocess
    import sys

    replay = make_store(tmp_path / "replay.zarr", [20, 24, 22])
    out = tmp_path / "iter0000/world_model.pt"
    config = stage_config(tmp_path)
    args = ["train-world-model", "--config", str(config), "--game", "pong", "--updates", "2", "--world-model-only",
            "--out", str(out), str(replay)]
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_SAVING, *args], capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert list(out.parent.glob(".world_model.pt.*.tmp")) and not out.exists()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert out.exists() and not list(out.parent.glob(".*.tmp"))


DISK_FULL = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
from dreamer_pipeline.pipelines.cli import main
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
main(sys.argv[1:])
"""


def test_a_full_disk_in_train_world_model_is_one_line(tmp_path):
    """Attack 6: disk full in `train-world-model` was a traceback."""
    import subprocess
    import sys

    replay = make_store(tmp_path / "replay.zarr", [20, 24, 22])
    out = tmp_path / "iter0000/world_model.pt"
    args = ["train-world-model", "--config", str(stage_config(tmp_path)), "--game", "pong", "--updates", "2",
            "--world-model-only", "--out", str(out), str(replay)]
    result = subprocess.run([sys.executable, "-c", DISK_FULL, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error: ") == 1, result.stderr  # after the progress bar, on its line
    error = result.stderr.split("error: ", 1)[1].splitlines()[0]
    assert "world_model.partial.pt: could not be written" in error and "bytes free" in error, error
    assert not out.exists() and not list(out.parent.glob(".*.tmp"))


# ----------------------------------------------------------------------------------------------
# A store collected by a superseded policy

def collect(store: Path, policy: Path, *extra: str):
    return CliRunner().invoke(main, ["collect", "--game", "pong", "--store", str(store), "--steps", "40",
                                     "--max-episode-steps", "20", "--policy", str(policy), "--seed", "3",
                                     "--no-progress", *extra])


def test_a_store_of_a_superseded_policy_is_moved_aside_and_collected_anew(run):
    """Attack 9: after `-R` on iteration k-1, iteration k's collect refused its existing store
    forever (another policy digest), suggesting a new path or the old settings: neither is
    possible inside Snakemake. The collect rule moves it aside now; nothing is mixed or lost."""
    from dreamer_pipeline.datasets.store import ExperienceStore
    from dreamer_pipeline.pipelines.acting.collector import SupersededStoreWarning

    folder, replay, out, first = run
    store = folder / "iter0001/experience/shard0.zarr"
    assert collect(store, first).exit_code == 0
    old_steps = ExperienceStore(store).num_steps
    retrained = train(stage_config(folder, world_model={"kl_scale": 0.5}), replay, out)  # the forced rerun
    assert retrained.exit_code == 0, retrained.output
    refused = collect(store, out)  # by hand, without the flag: still one error, nothing touched
    assert refused.exit_code == 2 and "policy" in refused.output and "Traceback" not in refused.output
    with pytest.warns(SupersededStoreWarning, match="made for a superseded run and is kept as"):
        result = collect(store, out, "--set-aside-superseded")
    assert result.exit_code == 0, result.output
    aside = list(store.parent.glob(".shard0.zarr.superseded-*"))
    assert len(aside) == 1 and ExperienceStore(aside[0]).num_steps == old_steps
    assert not (aside[0] / "writer.lock").exists()
    new = ExperienceStore(store)
    assert new.attrs["policy"]["sha256"] != ExperienceStore(aside[0]).attrs["policy"]["sha256"]


def test_the_collect_rule_sets_superseded_stores_aside(tmp_path):
    import subprocess
    import sys

    config = yaml.safe_load((ROOT / "config/debug.yaml").read_text())
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
                             "-n", "-p", "--cores", "1", "train_all", "--configfile", str(path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    collects = [line for line in output.splitlines() if "dreamer-pipeline collect " in line]
    assert collects and all("--set-aside-superseded" in line for line in collects)


def test_online_stores_record_the_learner_they_were_collected_for(tmp_path):
    """Beyond the issue, the online stage's form of attack 9: its collectors' provenance named only
    the link folder and the shard, so after `-R` on iteration k-1 they resumed the stores collected
    for the superseded learner and mixed both. The provenance holds the learner's start now, and
    the stage's collectors set such stores aside (`--set-aside-superseded`)."""
    from dreamer_pipeline.models.agent import Agent
    from dreamer_pipeline.models.config import preset
    from dreamer_pipeline.pipelines.acting.collector import provenance_mismatch
    from dreamer_pipeline.pipelines.acting.online_link import OnlineLink
    from dreamer_pipeline.pipelines.acting.online_policy import following_policy

    link = OnlineLink.at(tmp_path / "online")
    link.folder.mkdir()
    link.publish_actor(Agent(preset("debug"), num_actions=3), 0)
    provenances = []
    for start in ("digest-of-the-old-start", "digest-of-the-retrained-start"):
        link.write_plan(train_every=4, lead_updates=2, targets=[40], lineage=start)
        provenances.append(following_policy(link, 0, tmp_path / "s.zarr").provenance)
    assert provenances[0]["lineage"] == "digest-of-the-old-start"
    assert provenance_mismatch({"policy": provenances[0]}, {"policy": provenances[1]})
