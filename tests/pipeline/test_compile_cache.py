"""torch.compile's persistent caches live in the run's folder, set by the training stages.

Each stage is its own process; without a persistent cache every training stage of every iteration
compiled the agent again (about 40 s on an H200). These tests compile on the CPU with Inductor
(a C compiler is needed) and check the folder is used, filled and read back.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from dreamer_pipeline.models.config import RuntimeConfig
from dreamer_pipeline.pipelines.run_layout import compile_cache_dir
from dreamer_pipeline.pipelines.stages.training import setup, use_compile_cache

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def restored_cache_settings(monkeypatch):
    """Whatever these tests set (environment, torch's config) is undone after each."""
    import torch._functorch.config
    import torch._inductor.config

    for name in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        monkeypatch.setenv(name, "unset by the test")
    # Inductor's worker processes cost a minute to start on a busy 2-core machine; compile in-process.
    monkeypatch.setenv("TORCHINDUCTOR_COMPILE_THREADS", "1")
    inductor, functorch = torch._inductor.config, torch._functorch.config
    saved = inductor.fx_graph_cache, functorch.enable_autograd_cache, inductor.compile_threads
    inductor.compile_threads = 1
    yield
    inductor.fx_graph_cache, functorch.enable_autograd_cache, inductor.compile_threads = saved


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="Inductor on the CPU needs a C compiler")
def test_compiled_code_is_cached_in_the_run_folder_and_read_back(tmp_path, restored_cache_settings):
    run_dir = tmp_path / "runs" / "pong" / "small" / "seed0"
    folder = use_compile_cache(run_dir, RuntimeConfig(mode="compile"), "cpu")
    assert folder == compile_cache_dir(run_dir) == run_dir / "compile_cache"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(folder)
    assert os.environ["TRITON_CACHE_DIR"] == str(folder / "triton")

    def loss(x):
        return (x.sin() * 2 + x.square()).sum()

    x = torch.linspace(-1, 1, 8, requires_grad=True)
    from torch._dynamo.utils import counters

    for attempt in range(2):  # the second compilation, after a reset, reads the first one's entries
        torch._dynamo.reset()
        counters.clear()
        compiled = torch.compile(loss, backend="inductor", fullgraph=True)
        (gradient,) = torch.autograd.grad(compiled(x), x)
        torch.testing.assert_close(gradient, x.cos().detach() * 2 + 2 * x.detach())
        if attempt == 0:
            assert counters["inductor"]["fxgraph_cache_miss"] > 0
    assert counters["inductor"]["fxgraph_cache_hit"] > 0 or counters["aot_autograd"]["autograd_cache_hit"] > 0
    written = [path for path in folder.rglob("*") if path.is_file()]
    assert any("fxgraph" in path.parts for path in written), sorted(map(str, written))[:20]
    torch._dynamo.reset()


def test_no_cache_folder_where_nothing_compiles(tmp_path, restored_cache_settings):
    assert use_compile_cache(tmp_path, RuntimeConfig(mode="auto"), "cpu") is None  # auto is eager on the CPU
    assert use_compile_cache(tmp_path, RuntimeConfig(mode="cuda_graph"), "cpu") is None
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "unset by the test"
    assert not (tmp_path / "compile_cache").exists()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "compile_cache").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="compile_cache: the compile cache is a symbolic link"):
        use_compile_cache(tmp_path, RuntimeConfig(mode="compile"), "cpu")


def test_training_stage_setup_points_the_cache_into_its_run(tmp_path, restored_cache_settings):
    data = yaml.safe_load((ROOT / "config/debug.yaml").read_text())
    data.setdefault("agent", {}).setdefault("overrides", {})["runtime"] = {"mode": "compile"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run"
    context = setup(path, device="cpu", run_dir=run_dir)
    assert context.agent_config.runtime.mode == "compile"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(run_dir / "compile_cache")
    assert (run_dir / "compile_cache").is_dir()
