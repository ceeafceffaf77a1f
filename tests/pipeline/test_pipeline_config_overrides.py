"""One override syntax, `KEY=VALUE` with a dotted key and a YAML value, typed by the schema: the
same function for Snakemake's `--config` (plain, and dotted through `dreamer-pipeline workflow`)
and the benchmarks' `--set`; every override example in README.md and config/README.md runs."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dreamer_pipeline.models.config_schema import ConfigError
from dreamer_pipeline.pipelines.config import config_from_mapping, load_config
from dreamer_pipeline.pipelines.config_overrides import apply_overrides, apply_settings
from dreamer_pipeline.pipelines.workflow_command import rewrite_config_arguments

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_dotted_settings_are_typed_by_the_schema():
    data = apply_settings({"train": {"device": "cpu"}}, [
        "agent.preset=small", "train.batch_size=32", "games=[pong]", "seeds=0,1", "interleaved=off",
        "prefill.updates=null", "frames_budget=2e6", "loop.growth=1.5", "variant=2024",
        "agent.overrides.world_model.kl_scale=0.5", "agent.overrides.behaviour.reinforce_fraction=auto",
        "env.sticky_action_probability=0", "pretrain={datasets: [random50k], updates: 10}",
    ])
    assert data == {
        "train": {"device": "cpu", "batch_size": 32}, "agent": {"preset": "small", "overrides": {
            "world_model": {"kl_scale": 0.5}, "behaviour": {"reinforce_fraction": "auto"}}},
        "games": ["pong"], "seeds": [0, 1], "interleaved": False, "prefill": {"updates": None},
        "frames_budget": 2_000_000, "loop": {"growth": 1.5}, "variant": "2024",
        "env": {"sticky_action_probability": 0.0}, "pretrain": {"datasets": ["random50k"], "updates": 10},
    }
    assert type(data["env"]["sticky_action_probability"]) is float
    cfg = config_from_mapping(data)
    assert cfg.train.batch_size == 32 and cfg.agent.preset == "small" and cfg.pretrain.updates == 10


def test_env_overrides_are_typed_by_the_suite():
    """`env.*` is the suite's own settings: DMCConfig's camera with `suite: dmc`, not Atari's EnvConfig."""
    dmc = apply_settings({"suite": "dmc", "games": ["walker_walk"]}, ["env.camera=1", "env.action_repeat=4"])
    assert dmc["env"] == {"camera": 1, "action_repeat": 4}
    assert config_from_mapping(dmc).action_repeat == 4
    with pytest.raises(ConfigError, match=r"env\.camera"):  # Atari has no camera
        config_from_mapping(apply_settings({}, ["env.camera=1"]))
    with pytest.raises(ConfigError, match=r"env\.camera: expected int"):
        apply_settings({"suite": "dmc"}, ["env.camera=front"])
    with pytest.raises(ConfigError, match=r"env\.full_action_space"):  # a file is checked the same way
        config_from_mapping({"suite": "dmc", "games": ["walker_walk"], "env": {"full_action_space": True}})


@pytest.mark.parametrize("settings, key", [
    (["train.batch_size=big"], r"train\.batch_size: expected int, got 'big'"),
    (["train.batch_sise=3"], r"train\.batch_sise \(did you mean batch_size\?\)"),
    (["interleaved=maybe"], r"interleaved: expected true or false"),
    (["seeds=[0,x]"], r"seeds\[1\]: expected int"),
    (["agent.preset=smal"], r"agent\.preset: unknown agent preset 'smal'"),
    (["agent.overrides.world_model.kl_scael=1"], r"agent\.overrides\.world_model\.kl_scael"),
    (["agent.overrides.world_model.kl_scale=-1"], r"agent\.overrides\.world_model: kl_scale must be >= 0"),
    (["train.batch_size=100000"], r"train\.batch_size is 100,000, more than the limit"),
    (["games=[pong]", "games.x=1"], r"games\.x: games is set to a value, not a section"),
    (["train"], r"expected KEY=VALUE"),
    (["train..batch_size=3"], r"expected KEY=VALUE"),
])
def test_a_wrong_key_or_value_is_one_error_naming_it(settings, key):
    with pytest.raises(ConfigError, match=key):
        config_from_mapping(apply_settings({}, settings))


def test_files_stay_strict():
    """Only command-line strings are read as their types: a quoted "false" in a file is an error."""
    with pytest.raises(ConfigError, match="interleaved: expected true or false"):
        config_from_mapping({"interleaved": "false"})
    with pytest.raises(ConfigError, match=r"train\.batch_size: expected int"):
        config_from_mapping({"train": {"batch_size": "8"}})


def test_every_config_file_and_an_old_saved_configuration_still_load(tmp_path):
    for path in sorted((ROOT / "config").glob("*.yaml")):
        load_config(path)
    old = {"agent": {"preset": "debug", "overrides": {"runtime": {"compile": False, "cuda_graph": False}}}}
    assert config_from_mapping(old).agent.overrides["runtime"] == {"compile": False, "cuda_graph": False}


def test_snakemake_config_with_dotted_keys_is_the_same_as_the_nested_form():
    """`dreamer-pipeline workflow` rewrites dotted `--config` entries into the top-level form that
    Snakemake's own parser accepts; the Snakefile's typing gives the same configuration."""
    from snakemake.cli import parse_config

    dotted = ["agent.preset=small", "train.batch_size=32", "games=[pong]", "agent.overrides.world_model.kl_scale=0.5"]
    rewritten = rewrite_config_arguments(["-n", "--config", *dotted, "--cores", "1"])
    assert rewritten[:2] == ["-n", "--config"] and rewritten[-2:] == ["--cores", "1"]
    overrides = parse_config(rewritten[2:-2])  # raises on a dotted key: none is left
    nested = parse_config(["agent={preset: small, overrides: {world_model: {kl_scale: 0.5}}}",
                           "train={batch_size: 32}", "games=[pong]"])
    base = yaml.safe_load((ROOT / "config/debug.yaml").read_text())
    assert apply_overrides(base, overrides) == apply_overrides(base, nested)
    cfg = config_from_mapping(apply_overrides(base, overrides))
    assert (cfg.agent.preset, cfg.train.batch_size, cfg.games) == ("small", 32, ["pong"])
    assert cfg.agent.overrides == {"world_model": {"kl_scale": 0.5}}
    assert rewrite_config_arguments(["--config=train.batch_size=8"]) == ["--config", 'train={"batch_size": "8"}']
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        rewrite_config_arguments(["--config", "1x.y=3"])


def test_bench_learning_set_uses_the_same_overrides():
    from bench_learning import read_configuration

    data = read_configuration(ROOT / "config/dmc_cpu.yaml", ["games=[walker_stand]", "train.torch_threads=1"])
    assert data["games"] == ["walker_stand"] and data["train"]["torch_threads"] == 1
    with pytest.raises(SystemExit, match=r"error: .*train\.batch_size: expected int"):
        config_from_mapping(read_configuration(ROOT / "config/small.yaml", ["train.batch_size=big"]))


def _documented_commands() -> list[str]:
    """Every command in a bash block of README.md and config/README.md that overrides a key."""
    commands = []
    for name in ("README.md", "config/README.md"):
        for block in re.findall(r"```bash\n(.*?)```", (ROOT / name).read_text(), re.S):
            for line in block.splitlines():
                if "--config " in line or "--set " in line:
                    commands.append(shlex.join(shlex.split(line, comments=True)))  # the same command once
    return sorted(set(commands))


def _documented_table_overrides() -> list[str]:
    """config/README.md's preset table: a row's `--config ...` fragment, as a command on its file."""
    commands = []
    for row in (ROOT / "config/README.md").read_text().splitlines():
        preset = re.match(r"\| `(config/[\w.]+\.yaml)` \|", row)
        for fragment in re.findall(r"`(--config [^`]+)`", row) if preset else ():
            commands.append(f"snakemake --cores 1 train_all --configfile {preset.group(1)} {fragment}")
    return commands


DOCUMENTED = _documented_commands() + _documented_table_overrides()


def test_the_docs_show_overrides():
    assert any("dreamer-pipeline workflow" in c and "agent.preset=" in c for c in DOCUMENTED), DOCUMENTED
    assert any("games=[walker_stand]" in c for c in DOCUMENTED), DOCUMENTED  # the dmc_cpu row
    assert not any(c.startswith("snakemake") and "--set" in c for c in DOCUMENTED)  # snakemake has no --set


@pytest.mark.parametrize("line", DOCUMENTED)
def test_documented_override_examples_run(line, tmp_path):
    """Each documented override command, as a dry run (`-n`) of the real Snakefile."""
    tokens = shlex.split(line, comments=True)
    snakemake = ["-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n"]
    cli = [sys.executable, "-m", "dreamer_pipeline.pipelines.cli"]
    if tokens[0] == "snakemake":
        command, expected = [sys.executable, "-m", "snakemake", *snakemake, *tokens[1:]], "This was a dry-run"
    elif tokens[:2] == ["dreamer-pipeline", "workflow"]:
        command, expected = [*cli, "workflow", *snakemake, *tokens[2:]], "This was a dry-run"
    elif tokens[:2] == ["dreamer-pipeline", "check-config"]:
        command, expected = [*cli, *tokens[1:]], ": ok ("
    else:
        pytest.fail(f"an override example this test cannot run: {line}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert expected in result.stdout + result.stderr


def test_a_wrong_dotted_key_stops_the_workflow_with_one_line(tmp_path):
    command = [sys.executable, "-m", "dreamer_pipeline.pipelines.cli", "workflow", "-s", str(ROOT / "Snakefile"),
               "-d", str(tmp_path), "-n", "--cores", "1", "train_all", "--configfile", str(ROOT / "config/debug.yaml"),
               "--config", "train.batch_sise=8"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode != 0
    assert "Invalid configuration: unknown configuration key(s): train.batch_sise" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_bound_is_a_key_of_the_schema_and_an_error_naming_it():
    """The bounds live in one table (pipelines/limits.py), lower and upper, each a real key."""
    from dreamer_pipeline.pipelines.config_overrides import expand_dotted
    from dreamer_pipeline.pipelines.limits import BOUNDS

    for key, (lowest, highest) in BOUNDS.items():
        for value in (lowest - 1, None if highest is None else highest + 1):
            if value is None:
                continue
            data = expand_dotted({key: value})
            if key.startswith("pretrain."):
                data["pretrain"]["datasets"] = ["random50k"]
            with pytest.raises(ConfigError, match=re.escape(key) + " (must|is)"):
                config_from_mapping(data)


def test_bench_reward_set_uses_the_same_overrides_under_agent_overrides():
    from bench_reward import RECIPE, parse_set

    name, overrides = parse_set(["world_model.reward_scale=30", "world_model.opt.lr=1e-3"])
    assert overrides["world_model"]["reward_scale"] == 30.0 and overrides["world_model"]["opt"] == {"lr": 0.001}
    assert overrides["world_model"]["kl_scale"] == RECIPE["world_model"]["kl_scale"]  # the recipe stays underneath
    with pytest.raises(SystemExit, match=r"agent\.overrides\.world_model\.reward_scal \(did you mean reward_scale"):
        parse_set(["world_model.reward_scal=30"])


def _documented_bench_commands() -> list[list[str]]:
    """The `bench_learning.py` commands of docs/learning.md and of the script's own docstring."""
    commands = []
    for path in (ROOT / "docs/learning.md", ROOT / "benchmarks/bench_learning.py"):
        text = path.read_text().replace("\\\n", " ")
        for match in re.finditer(r"benchmarks/bench_learning\.py((?:[ \n]+--[^`\n]*)+)", text):
            commands.append(shlex.split(match.group(1).replace("\n", " "), comments=True))
    return commands


def test_documented_bench_learning_settings_load():
    """Each documented `--set` of the learning benchmark, on its `--config`, gives a valid configuration."""
    from bench_learning import read_configuration

    commands = _documented_bench_commands()
    assert sum("--set" in c for c in commands) >= 5, commands
    for tokens in commands:
        config = ROOT / "config/boxing_cpu.yaml"  # the benchmark's default
        settings = []
        for flag, value in zip(tokens, tokens[1:]):
            if flag == "--config":
                config = ROOT / value
            elif flag == "--set":
                settings.append(value.replace("TASK", "walker_stand"))
        cfg = config_from_mapping(read_configuration(config, settings))
        for setting in settings:  # each setting reached the configuration
            key, value = setting.split("=", 1)
            node = cfg
            for part in key.split("."):  # agent.overrides is a mapping below the dataclasses
                node = node[part] if isinstance(node, dict) else getattr(node, part)
            assert node == yaml.safe_load(value), (tokens, setting, node)


def test_check_config_takes_the_same_settings(tmp_path):
    from click.testing import CliRunner

    from dreamer_pipeline.pipelines.cli import main

    ok = CliRunner().invoke(main, ["check-config", str(ROOT / "config/small.yaml"), "--show",
                                   "--set", "agent.preset=debug", "--set", "train.batch_size=8"])
    assert ok.exit_code == 0, ok.output
    shown = yaml.safe_load(ok.stdout)
    assert shown["agent"]["preset"] == "debug" and shown["train"]["batch_size"] == 8
    bad = CliRunner().invoke(main, ["check-config", str(ROOT / "config/small.yaml"), "--set", "train.batch_size=big"])
    assert bad.exit_code == 2 and "train.batch_size: expected int, got 'big'" in bad.output
