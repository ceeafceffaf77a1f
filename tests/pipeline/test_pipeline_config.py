"""Pipeline configuration, check-config, the iteration schedule and the run layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dreamer_pipeline.models.config_schema import ConfigError, to_dict
from dreamer_pipeline.pipelines.check_config import load_and_validate, validate_config
from dreamer_pipeline.pipelines.config import PipelineConfig, config_from_mapping, load_config
from dreamer_pipeline.pipelines.run_layout import RunLayout, partial_checkpoint, stage_run_dir
from dreamer_pipeline.pipelines.schedule import plan, replay_iterations, split_steps
from dreamer_pipeline.pipelines.workflow_plan import WorkflowPlan

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, data: dict, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_default_yaml_is_the_paper_protocol_and_equals_the_dataclass_defaults_but_for_the_loop():
    cfg = load_config(ROOT / "config/default.yaml")
    ours, schema = to_dict(cfg), to_dict(PipelineConfig())
    # the loop is the schedule A/B's choice (docs/learning.md): online, iterations growing from 5k steps
    assert ours.pop("loop") == {**schema.pop("loop"), "online": True, "first_iteration_steps": 5000}
    # the collector is sized for a GPU's update rate (docs/pipeline.md); the replay ratio stays 16
    assert ours.pop("collect") == {**schema.pop("collect"), "envs": 32, "threads": 4}
    assert ours == schema
    assert (cfg.games, cfg.seeds, cfg.frames_budget) == (["pong"], [0], 200_000_000)
    assert (cfg.steps_per_iteration, cfg.train_every, cfg.replay_steps, cfg.prefill.steps) == (250_000, 16, 2_000_000, 50_000)
    assert cfg.agent.preset == "atari"


@pytest.mark.parametrize("name", ["default", "small", "debug", "catch", "boxing_cpu", "dmc", "dmc_debug"])
def test_presets_validate(name):
    cfg = load_and_validate(ROOT / f"config/{name}.yaml")
    assert plan(cfg)


def test_debug_preset_shape():
    cfg = load_config(ROOT / "config/debug.yaml")
    assert len(cfg.games) == 2 and len(cfg.seeds) == 2 and cfg.agent.preset == "debug"
    assert len(plan(cfg)) == 2 and cfg.pretrain is not None and cfg.pretrain.datasets == [cfg.prefill.name]


def test_schedule_of_the_paper_protocol_spends_the_budget_exactly():
    cfg = PipelineConfig()
    iterations = plan(cfg)
    assert len(iterations) == 201  # iteration 0 on the prefill, then 200 collections
    assert iterations[0].collect_steps == 0 and iterations[0].updates == 50_000 // 16
    assert all(it.updates == 250_000 // 16 for it in iterations[1:-1])
    total_steps = cfg.prefill.steps + sum(it.collect_steps for it in iterations)
    assert total_steps * 4 == cfg.frames_budget
    assert iterations[-1].collect_steps == 50_000_000 - 50_000 - 199 * 250_000
    # the replay window: 2M steps reach back 8 full iterations, and the prefill drops out after 8
    assert replay_iterations(cfg, iterations, 3) == (True, [1, 2, 3])
    assert replay_iterations(cfg, iterations, 100) == (False, list(range(93, 101)))


def test_split_steps_and_offline_schedule():
    assert split_steps(10, 3) == (4, 3, 3) and sum(split_steps(250_000, 7)) == 250_000
    cfg = config_from_mapping({"offline": True, "datasets": ["/x.zarr"], "iterations": 3, "steps_per_iteration": 160})
    iterations = plan(cfg)
    assert [it.collect_steps for it in iterations] == [0, 0, 0] and iterations[0].updates == 10


def test_planned_steps_are_whole_vector_steps():
    """A collector steps its environments together and stops at its target (pipelines/acting/collector.py),
    so the plan gives every collector a multiple of its environments: planned steps are taken steps."""
    assert split_steps(2500, 1, 4) == (2500,) and split_steps(2500, 3, 4) == (836, 832, 832)
    assert split_steps(10, 3, 4) == (4, 4, 4) and split_steps(3, 2, 4) == (4,)
    cfg = config_from_mapping({"frames_budget": 4 * 1000, "steps_per_iteration": 301, "collectors": 2,
                               "collect": {"envs": 3}, "prefill": {"steps": 101, "envs": 4, "updates": 1}})
    iterations = plan(cfg)
    assert iterations[0].steps_after == 104  # 26 vector steps of 4 environments
    for previous, iteration in zip(iterations, iterations[1:]):
        assert all(steps % 3 == 0 for steps in iteration.shard_steps)
        assert iteration.collect_steps == sum(iteration.shard_steps) == iteration.steps_after - previous.steps_after
    assert [it.collect_steps for it in iterations[1:]] == [303, 303, 291]
    assert iterations[-1].steps_after == 1001  # the budget, rounded up to whole vector steps


def test_layout_paths_and_wildcard_patterns():
    layout = RunLayout("results")
    assert layout.shard_marker("pong", "default", 0, 3, 1) == "results/runs/pong/default/seed0/iter0003/experience/shard1.json"
    assert layout.world_model("{game}", "{variant}", "{seed}", "{iteration}") == (
        "results/runs/{game}/{variant}/seed{seed}/iter{iteration}/world_model.pt"
    )
    assert partial_checkpoint("a/iter0001/world_model.pt").name == "world_model.partial.pt"
    assert layout.agent("pong", "v", 1, 2, interleaved=True) == "results/runs/pong/v/seed1/iter0002/agent.pt"
    assert layout.agent("pong", "v", 1, 2, interleaved=False) == "results/runs/pong/v/seed1/iter0002/actor_critic.pt"
    assert layout.metrics("pong", "v", 1) == "results/runs/pong/v/seed1/metrics.jsonl"
    assert layout.online_dir("pong", "v", 1, 2) == "results/runs/pong/v/seed1/iter0002/online"
    cfg = load_config(ROOT / "config/debug.yaml")
    assert stage_run_dir(cfg, "pong", 1) == Path(f"{cfg.paths.results}/runs/pong/debug/seed1")


def test_workflow_plan_inputs():
    cfg = load_config(ROOT / "config/debug.yaml")
    workflow = WorkflowPlan(cfg, RunLayout.from_config(cfg))
    assert workflow.start_from("pong", 0, "0000") == {"pretrained": "results/pretrained/pong/reward-free/world_model.pt"}
    assert workflow.start_from("pong", 0, "0001") == {"previous": "results/runs/pong/debug/seed0/iter0000/actor_critic.pt"}
    assert workflow.replay("pong", 1, "0001") == [
        "results/datasets/pong/random-debug.json",
        "results/runs/pong/debug/seed1/iter0001/experience/shard0.json",
    ]
    assert workflow.shard_seed(0, 1, 0) != workflow.shard_seed(1, 1, 0) != workflow.shard_seed(0, 2, 0)


# ---- bad configurations: one ConfigError naming the problem ----


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"gmaes": ["pong"]}, "gmaes (did you mean games?)"),
        ({"train": {"batch_sise": 4}}, "train.batch_sise"),
        ({"frames_budget": "lots"}, "frames_budget: expected int"),
        ({"interleaved": "yes"}, "interleaved: expected true or false"),
        ({"games": ["pongg"]}, "pongg"),
        ({"train_every": 0}, "train_every must be positive"),
        ({"agent": {"preset": "huge"}}, "huge"),
        ({"agent": {"overrides": {"world_model": {"kl_scael": 1.0}}}}, "agent.overrides.world_model.kl_scael"),
        ({"env": {"sticky": 0.1}}, "env.sticky"),
        ({"offline": True}, "offline: true needs at least one entry in datasets"),
        ({"datasets": ["unknown-name"]}, "'unknown-name' is neither the prefill dataset"),
        ({"collect": {"device": "gpu"}}, "collect.device: 'gpu' is not a device"),
        ({"evaluate": {"device": "cuda:x"}}, "evaluate.device: 'cuda:x' is not a device"),
        ({"train": {"device": "cpu:0"}}, "train.device: 'cpu:0' is not a device"),
    ],
)
def test_bad_configurations_name_the_problem(tmp_path, data, needle):
    with pytest.raises(ConfigError) as error:
        load_and_validate(write(tmp_path, data))
    assert needle in str(error.value)


def test_dataset_path_that_is_not_a_store(tmp_path, store_factory):
    (tmp_path / "notastore").mkdir()
    (tmp_path / "notastore" / "file.txt").write_text("hello")
    with pytest.raises(ConfigError, match=r"datasets\[0\]: .*notastore"):
        validate_config(config_from_mapping({"datasets": [str(tmp_path / "notastore")]}))
    store = store_factory("pong_store", [20, 20], game="pong")
    validate_config(config_from_mapping({"datasets": [str(store)]}))
    with pytest.raises(ConfigError, match="holds 'pong' experience, not 'breakout'"):
        validate_config(config_from_mapping({"games": ["breakout"], "datasets": [str(store)]}))
    templated = str(tmp_path / "{game}_store.zarr")
    validate_config(config_from_mapping({"datasets": [templated]}))


def test_check_config_command(tmp_path):
    bad = write(tmp_path, {"train": {"batch_sise": 4}})
    result = subprocess.run(
        [sys.executable, "-m", "dreamer_pipeline.pipelines.cli", "check-config", str(bad)],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "train.batch_sise" in result.stderr and "Traceback" not in result.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "dreamer_pipeline.pipelines.cli", "check-config", str(ROOT / "config/debug.yaml"), "--show"],
        capture_output=True, text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert yaml.safe_load(ok.stdout)["variant"] == "debug"


def test_seeds_fit_ale_py():
    from dreamer_pipeline.pipelines.schedule import eval_seed, shard_seed

    seeds = [shard_seed(s, k, j) for s in range(3) for k in range(50) for j in range(3)] + [eval_seed(s, k) for s in range(3) for k in range(50)]
    assert all(0 <= seed < 2**31 - 1000 for seed in seeds) and len(set(seeds)) == len(seeds)


def test_growing_schedule_starts_small_and_keeps_the_budget():
    cfg = config_from_mapping({"loop": {"first_iteration_steps": 5000, "growth": 2.0}, "prefill": {"updates": 1}})
    iterations = plan(cfg)
    sizes = [it.collect_steps for it in iterations]
    assert sizes[:8] == [0, 5000, 10_000, 20_000, 40_000, 80_000, 160_000, 250_000]
    assert iterations[0].updates == 1  # the paper's single pretraining update, not 3125 on random data
    assert all(it.updates == it.collect_steps // 16 for it in iterations[1:])
    assert (cfg.prefill.steps + sum(sizes)) * 4 == cfg.frames_budget
    assert len(iterations) == 206  # about the batched schedule's 201: the DAG stays small
    # the remainder never makes an iteration too small for an update
    cfg = config_from_mapping({"frames_budget": 4 * (50_000 + 5000 + 10_000 + 3), "loop": {"first_iteration_steps": 5000}})
    assert [it.collect_steps for it in plan(cfg)] == [0, 5000, 10_003]


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"loop": {"growth": 0.5}}, "loop.growth must be at least 1"),
        ({"loop": {"first_iteration_steps": 300_000}}, "must not exceed steps_per_iteration"),
        ({"loop": {"online": True}, "interleaved": False}, "loop.online needs interleaved: true"),
        ({"prefill": {"updates": 0}}, "prefill.updates must be positive"),
    ],
)
def test_bad_loop_settings(data, needle):
    with pytest.raises(ConfigError, match=needle):
        config_from_mapping(data)


def test_online_workflow_replaces_collect_and_staged_training(tmp_path):
    from dreamer_pipeline.pipelines.workflow_plan import load_workflow

    cfg = {"loop": {"online": True, "first_iteration_steps": 5000}, "collectors": 2, "paths": {"results": str(tmp_path)}}
    workflow = load_workflow(cfg)
    assert workflow.staged_iterations() == "0000"
    own = workflow.replay("pong", 0, 2)
    before = workflow.replay("pong", 0, 2, own=False)
    assert own[: len(before)] == before and len(own) == len(before) + 2  # iteration 2's two shards
    assert all("iter0002" not in source for source in before)


def test_acting_devices():
    """Collectors and evaluation act where `collect.device` / `evaluate.device` say; "auto" is the
    GPU when there is one, and the online stage's collectors follow a learner on a GPU."""
    import torch

    from dreamer_pipeline.pipelines.agent_io import cap_torch_threads
    from dreamer_pipeline.pipelines.machine import resolve_device
    from dreamer_pipeline.pipelines.stages.train_online import collector_device

    cfg = config_from_mapping({"collect": {"device": "cuda:1"}, "evaluate": {"device": "cpu"}})
    assert (cfg.collect.device, cfg.evaluate.device) == ("cuda:1", "cpu")
    assert PipelineConfig().collect.device == PipelineConfig().evaluate.device == "auto"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.device_count() < 2:
        with pytest.raises(ConfigError, match="does not exist here"):
            resolve_device("cuda:1")
    assert collector_device("auto", "cuda:1") == "cuda:1" and collector_device("auto", "cpu") == "cpu"
    assert collector_device("cpu", "cuda") == "cpu"
    before = torch.get_num_threads()
    try:
        cap_torch_threads("cuda", 1)
        assert torch.get_num_threads() == before  # a GPU actor leaves the CPU threads alone
        cap_torch_threads("cpu", 1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
