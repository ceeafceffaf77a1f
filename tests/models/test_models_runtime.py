"""How training steps run: the static-buffer (CUDA graph) path, compiled step bodies, lazy metrics.

The GPU-only parts (capture and replay, fused Adam, bf16) are measured by benchmarks/gpu_check.sh;
these CPU tests check everything of them that does not need a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamer_pipeline.models import behaviour as behaviour_module
from dreamer_pipeline.models import rssm as rssm_module
from dreamer_pipeline.datasets.action_space import ActionSpace
from dreamer_pipeline.models.agent import Agent
from dreamer_pipeline.models.captured_policy import CapturedPolicyStep, sample_categorical
from dreamer_pipeline.models.captured_step import CapturedStep
from dreamer_pipeline.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from dreamer_pipeline.models.config import RuntimeConfig, preset
from dreamer_pipeline.models.config_schema import ConfigError
from dreamer_pipeline.models.rssm import ObserveWeights, RSSMState
from dreamer_pipeline.models.update_metrics import UpdateMetrics, mean_metrics

from test_models_units import make_batch

torch.set_num_threads(1)


def _agent(**overrides) -> Agent:
    return Agent(preset("debug", {"behaviour": {"target_update_every": 2}, **overrides}), num_actions=3, seed=5)


def _same_state(a: Agent, b: Agent) -> None:
    for x, y in zip([*a.world_model.parameters(), *a.actor_critic.parameters()],
                    [*b.world_model.parameters(), *b.actor_critic.parameters()]):
        assert torch.equal(x, y)
    for opt_a, opt_b in ((a.wm_optimizer, b.wm_optimizer), (a.actor_optimizer, b.actor_optimizer)):
        for x, y in zip(opt_a.adam.state.values(), opt_b.adam.state.values()):
            assert all(torch.equal(x[k], y[k]) for k in x)
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
    assert (a.wm_updates, a.behaviour_updates) == (b.wm_updates, b.behaviour_updates)


def test_static_buffer_steps_equal_eager_steps_exactly():
    """The CUDA graph's code path (static buffers, one-hot inside the step, bookkeeping outside it)
    gives eager mode's losses, weights, optimiser states and RNG stream, for every kind of step."""
    eager, static = _agent(), _agent()
    static.step_mode = "static"
    steps = ["update", "update", "world_model", "behaviour", "update"]
    for index, kind in enumerate(steps):
        batch = make_batch(2, 6, 3, seed=index)
        batch["is_first"][1, 3] = True
        batch["is_terminal"][0, 4] = True
        if index == 1:  # other integer / float types are converted into the buffers' dtypes
            batch = {**batch, "action": batch["action"].astype(np.int32), "reward": batch["reward"].astype(np.float64)}
        call = {"update": "update", "world_model": "train_world_model", "behaviour": "train_behaviour"}[kind]
        ours, reference = getattr(static, call)(batch), getattr(eager, call)(batch)
        assert list(ours) == list(reference) and dict(ours) == dict(reference), kind
    _same_state(eager, static)
    assert static.behaviour_updates == 4 and static.wm_updates == 4
    assert sorted(key[0] for key in static._captured) == ["behaviour", "update", "world_model"]
    # A batch of another shape gets buffers of its own; the first ones stay.
    assert dict(static.update(make_batch(3, 4, 3))) == dict(eager.update(make_batch(3, 4, 3)))
    assert len(static._captured) == 4


def test_static_step_checks_its_buffers():
    agent = _agent()
    tensors = agent.check_batch(make_batch(2, 5, 3))
    def body(inputs):
        return agent._step_body("update", agent.device_batch(inputs))

    step = CapturedStep(body, tensors, agent.device, agent.generator, capture=False)
    with pytest.raises(ValueError, match="does not fit the static buffers"):
        step(agent.check_batch(make_batch(2, 4, 3)))
    with pytest.raises(ValueError, match="need a CUDA device"):
        CapturedStep(body, tensors, agent.device, agent.generator, capture=True)
    with pytest.raises(ValueError, match="kind must be one of"):
        agent._train("train", make_batch(2, 5, 3))
    assert agent.step_mode == "eager"  # runtime.mode auto is eager on the CPU, and the graphs need CUDA
    assert _agent(runtime={"mode": "cuda_graph"}).step_mode == "eager"
    assert _agent(runtime={"mode": "cuda_graph"}).policy_mode == "eager"




def _step_arguments(agent: Agent, batch: int = 4):
    rssm = agent.world_model.rssm
    weights = ObserveWeights(rssm.img_in.weight[:, : rssm.stoch_size], rssm.obs_out.weight[:, : rssm.config.deter],
                             rssm.cell.linear.weight)
    generator = torch.Generator().manual_seed(0)
    observe = (torch.zeros(batch, rssm.config.deter), torch.zeros(batch, rssm.stoch_size), torch.ones(batch, 1),
               torch.randn(batch, rssm.config.hidden, generator=generator),
               torch.randn(batch, rssm.config.hidden, generator=generator),
               rssm.noise((batch,), "cpu", generator), weights)
    start = RSSMState(torch.randn(batch, rssm.config.deter, generator=generator),
                      rssm.sample(torch.randn(batch, rssm.stats_size, generator=generator), generator),
                      torch.zeros(batch, rssm.stats_size))
    imagine = (agent.world_model, start, torch.rand(batch, agent.num_actions, generator=generator),
               rssm.noise((batch,), "cpu", generator), rssm.action_first_weight() if rssm.discrete else None)
    return observe, imagine


@pytest.mark.parametrize("layout,latent,autocast", [
    ("embedding_bags", "categorical", False),  # the CPU's layout
    ("dense", "categorical", True),  # the GPU's: dense heads, bf16 autocast
    ("dense", "gaussian", False),
])
def test_observe_and_imagine_step_bodies_have_no_graph_break(monkeypatch, layout, latent, autocast):
    """What runtime.mode compile's fullgraph=True needs: dynamo traces both step bodies whole, with and
    without gradients, with bf16 autocast, on the CPU's and the GPU's head layouts."""
    if layout == "dense":
        for module in (rssm_module, behaviour_module):
            monkeypatch.setattr(module, "embedding_bags_win", lambda device: False)
    agent = _agent(ablation={"latent": latent})
    observe, imagine = _step_arguments(agent)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
    with context:
        for grad in (True, False):
            with torch.set_grad_enabled(grad):
                for function, args in ((agent.world_model.rssm.observe_step, observe),
                                       (agent.actor_critic.imagine_step, imagine)):
                    torch._dynamo.reset()
                    explained = torch._dynamo.explain(function)(*args)
                    assert explained.graph_break_count == 0, (function.__name__, explained.break_reasons)
                    assert explained.graph_count == 1


def test_compiled_step_bodies_give_the_eager_losses():
    """The fullgraph-traced step bodies (dynamo with its plain-PyTorch backend, so no C++ compiler is
    needed) in a whole update: same losses and RNG stream as eager."""
    torch._dynamo.reset()
    eager, compiled = _agent(), _agent()
    compiled.world_model.rssm.compiled_observe_step = torch.compile(
        compiled.world_model.rssm.observe_step, fullgraph=True, backend="eager")
    compiled.actor_critic.compiled_imagine_step = torch.compile(
        compiled.actor_critic.imagine_step, fullgraph=True, backend="eager")
    for seed in range(2):
        batch = make_batch(2, 5, 3, seed=seed)
        torch.testing.assert_close(dict(compiled.update(batch)), dict(eager.update(batch)), rtol=1e-6, atol=1e-6)
    assert torch.equal(compiled.generator.get_state(), eager.generator.get_state())


def test_update_metrics_stay_tensors_until_read():
    agent = _agent()
    records = [agent.update(make_batch(2, 4, 3, seed=seed)) for seed in range(3)]
    assert all(isinstance(r, UpdateMetrics) and r._floats is None for r in records)  # no host copy yet
    averaged = mean_metrics(records)
    assert all(r._floats is None for r in records)  # the window was stacked, not read one by one
    for key in ("wm/loss", "actor/loss", "critic/grad_norm"):
        assert averaged[key] == pytest.approx(np.mean([r[key] for r in records]), rel=1e-6)
    assert isinstance(records[0]["wm/kl"], float) and "wm/kl" in records[0] and len(records[0]) == len(averaged)
    # Plain records (numbers, scalar tensors) mix in; booleans and strings are skipped.
    mixed = mean_metrics([{"a": 1.0, "b": torch.tensor(3.0), "flag": True, "name": "x"}, {"a": 3}])
    assert mixed == {"a": 2.0, "b": 3.0}
    with pytest.raises(ValueError, match="metric names"):
        UpdateMetrics(["a", "b"], torch.zeros(3))


# ------------------------------------------------------------------------- runtime.mode
@pytest.mark.parametrize("mode,cuda,cpu", [
    ("auto", "compile_cuda_graph", "eager"),  # the fastest measured path on CUDA; eager on the CPU
    ("eager", "eager", "eager"),
    ("cuda_graph", "cuda_graph", "eager"),  # the graphs need CUDA
    ("compile", "compile", "compile"),
    ("compile_cuda_graph", "compile_cuda_graph", "compile"),
])
def test_runtime_mode_resolves_per_device(mode, cuda, cpu):
    runtime = RuntimeConfig(mode=mode)
    assert (runtime.resolved_mode("cuda"), runtime.resolved_mode("cpu")) == (cuda, cpu)
    assert runtime.uses_compile("cpu") == cpu.startswith("compile")
    assert runtime.uses_cuda_graph("cuda") == cuda.endswith("cuda_graph") and not runtime.uses_cuda_graph("cpu")
    assert RuntimeConfig().mode == "auto"


@pytest.mark.parametrize("old,mode", [
    ({"compile": False, "cuda_graph": False}, "eager"),  # what every older checkpoint carries
    ({"cuda_graph": True}, "cuda_graph"),
    ({"compile": True}, "compile"),
    ({"compile": True, "cuda_graph": True, "bf16": False}, "compile_cuda_graph"),
])
def test_older_runtime_keys_still_load(tmp_path, old, mode):
    """Configuration files and checkpoints written with the keys `compile` and `cuda_graph` load
    as the `mode` they meant."""
    assert preset("debug", {"runtime": old}).runtime.mode == mode
    path = save_checkpoint(_agent(), tmp_path / "agent.pt")
    payload = read_checkpoint(path)
    runtime = payload["config"]["runtime"]
    del runtime["mode"]
    runtime.update(old)
    torch.save(payload, path)  # the checkpoint as an older version wrote it
    agent, _ = load_checkpoint(path)
    assert agent.config.runtime.mode == mode
    assert agent.step_mode == "eager" and agent.compile_pending == mode.startswith("compile")


@pytest.mark.parametrize("runtime,message", [
    ({"mode": "eager", "cuda_graph": True}, "runtime.mode and the older runtime.cuda_graph both say how to run"),
    ({"compile": "yes"}, "runtime.compile: expected true or false"),
    ({"mode": "graph"}, "runtime.mode: expected one of"),
])
def test_runtime_mode_errors_name_the_key(runtime, message):
    with pytest.raises(ConfigError, match=message):
        preset("debug", {"runtime": runtime})


# ----------------------------------------------------------------- the captured policy step
def test_categorical_draw_is_multinomials():
    """The capturable draw gives torch.multinomial's sample and leaves the generator where it does."""
    probs = torch.softmax(torch.randn(64, 18, generator=torch.Generator().manual_seed(0)), -1)
    ours, reference = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(3):
        expected = torch.multinomial(probs, 1, generator=reference).squeeze(-1)
        assert torch.equal(sample_categorical(probs, ours), expected)
    assert torch.equal(ours.get_state(), reference.get_state())


@pytest.mark.parametrize("continuous", [False, True])
def test_static_buffer_policy_steps_equal_eager_steps_exactly(continuous):
    """The policy's CUDA-graph code path (static buffers, copied in and out) gives eager acting's
    actions, states and RNG stream, for both modes, two batch sizes and episode starts mid-way."""
    def make() -> Agent:
        if continuous:
            return Agent(preset("debug", {"behaviour": {"action_noise": 0.3}}), action_space=ActionSpace.continuous(2),
                         seed=5)
        return _agent()

    eager, static = make(), make()
    static.policy_mode = "static"
    rng = np.random.default_rng(0)
    states = {}
    for step in range(6):
        for size, mode in ((3, "sample"), (1, "greedy"), (3, "greedy")):
            image = rng.integers(0, 256, (size, 64, 64, 1), dtype=np.uint8)
            is_first = np.zeros(size, bool) if step else np.ones(size, bool)
            is_first[0] |= step == 3
            previous = states.get((size, mode), (None, None))
            ours, ours_state = static.policy_step(image, is_first, previous[0], mode)
            theirs, theirs_state = eager.policy_step(image, is_first, previous[1], mode)
            assert torch.equal(ours, theirs) and ours.dtype == theirs.dtype, (step, size, mode)
            for a, b in zip([*ours_state[0], ours_state[1]], [*theirs_state[0], theirs_state[1]]):
                assert torch.equal(a, b)
            states[(size, mode)] = (ours_state, theirs_state)
    assert torch.equal(static.generator.get_state(), eager.generator.get_state())
    assert sorted(static._policy_steps) == [(1, "greedy"), (3, "greedy"), (3, "sample")]
    assert all(isinstance(step, CapturedPolicyStep) for step in static._policy_steps.values())
    # Returned actions and states are the caller's: the next step does not overwrite them.
    kept = ours.clone()
    static.policy_step(image, is_first, ours_state, mode)
    assert torch.equal(ours, kept)
