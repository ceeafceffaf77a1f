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
from dreamer_pipeline.models.agent import Agent
from dreamer_pipeline.models.captured_step import CapturedStep
from dreamer_pipeline.models.config import preset
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
    step = CapturedStep(agent, "update", tensors, capture=False)
    with pytest.raises(ValueError, match="does not fit the static buffers"):
        step(agent.check_batch(make_batch(2, 4, 3)))
    with pytest.raises(ValueError, match="kind must be one of"):
        CapturedStep(agent, "train", tensors, capture=False)
    with pytest.raises(ValueError, match="need a CUDA device"):
        CapturedStep(agent, "update", tensors, capture=True)
    assert agent.step_mode == "eager"  # runtime.cuda_graph is off by default, and ignored on the CPU
    assert _agent(runtime={"cuda_graph": True}).step_mode == "eager"




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
    """What runtime.compile's fullgraph=True needs: dynamo traces both step bodies whole, with and
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
