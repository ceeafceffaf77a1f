"""What CUDA's fused Adam demands of the gradients it is handed, checked on the CPU.

CUDA's fused Adam refuses a step whose gradients differ from their parameters in dtype, device or
strides ("params, grads, exp_avgs, and exp_avg_sqs must have same dtype, device, and layout"); the
CPU's fused and foreach Adam do not check, so these tests look at the gradients at the moment
Adam steps, with Adam built exactly as on CUDA (fused, capturable), for every preset.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamer_pipeline.datasets.action_space import ActionSpace
from dreamer_pipeline.models.agent import Agent
from dreamer_pipeline.models.config import OptimConfig, PRESETS, preset
from dreamer_pipeline.models.optim import Optimizer

torch.set_num_threads(1)


def _batch(agent: Agent, batch: int, length: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    is_first = np.zeros((batch, length), bool)
    is_first[:, 0] = True
    if agent.action_space.is_discrete:
        action = rng.integers(0, agent.num_actions, (batch, length))
    else:
        action = rng.uniform(-1, 1, (batch, length, agent.action_size)).astype(np.float32)
    return {"image": rng.integers(0, 256, (batch, length, *agent.image_shape), dtype=np.uint8),
            "action": action, "reward": rng.normal(size=(batch, length)).astype(np.float32),
            "is_first": is_first, "is_terminal": np.zeros((batch, length), bool)}


def _agent(name: str) -> Agent:
    config = preset(name, {"behaviour": {"horizon": 3}})  # a short imagination keeps `atari` cheap
    if config.world_model.image_channels == 3:  # the Control Suite presets act continuously
        return Agent(config, action_space=ActionSpace.continuous(2), seed=0)
    return Agent(config, num_actions=4, seed=0)


def _as_on_cuda(optimizer: Optimizer, seen: list[tuple]) -> None:
    """Rebuild `optimizer`'s Adam as on CUDA (fused, capturable) and record, at each step, every
    parameter whose gradient differs from it in strides, dtype or device."""
    config = optimizer.config
    optimizer.adam = torch.optim.Adam(optimizer.params, lr=config.lr, eps=config.eps, fused=True, capturable=True)
    step = optimizer.adam.step

    def checked_step(*args, **kwargs):
        for param in optimizer.params:
            grad = param.grad
            if grad is None:
                continue
            seen.append((tuple(param.shape), param.stride(), grad.stride(), param.dtype, grad.dtype,
                         param.device, grad.device))
        return step(*args, **kwargs)

    optimizer.adam.step = checked_step


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_gradient_has_its_parameters_layout_when_adam_steps(name):
    agent = _agent(name)
    seen: list[tuple] = []
    for optimizer in (agent.wm_optimizer, agent.actor_optimizer, agent.critic_optimizer):
        _as_on_cuda(optimizer, seen)
    channels_last = [p for p in agent.world_model.parameters()
                     if p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()]
    assert channels_last, "the preset's convolutions should hold channels_last weights (the case under test)"
    agent.update(_batch(agent, 2, 4))
    assert len(seen) == sum(len(o.params) for o in (agent.wm_optimizer, agent.actor_optimizer,
                                                    agent.critic_optimizer))
    wrong = [s for s in seen if s[1] != s[2] or s[3] != s[4] or s[5] != s[6]]
    assert not wrong, f"gradients not in their parameters' layout (shape, param strides, grad strides, ...): {wrong}"


def test_fused_capturable_adam_steps_as_foreach_adam():
    """The optimiser as on CUDA (fused kernel, capturable step counts) gives the CPU's foreach
    update up to rounding, channels_last convolution weights and clipping included."""
    def parameters():
        generator = torch.Generator().manual_seed(0)
        conv = torch.randn(8, 4, 3, 3, generator=generator).contiguous(memory_format=torch.channels_last)
        return [torch.nn.Parameter(conv), torch.nn.Parameter(torch.randn(5, 7, generator=generator))]

    config = OptimConfig(lr=1e-2, eps=1e-5, clip=1.0, weight_decay=1e-3)
    fused_params, foreach_params = parameters(), parameters()
    fused = Optimizer(fused_params, config, capturable=True, fused=True)
    foreach = Optimizer(foreach_params, config)
    assert fused.adam.defaults["fused"] and fused.adam.defaults["capturable"]
    assert foreach.adam.defaults["foreach"] and not foreach.adam.defaults["fused"]
    inputs = torch.randn(6, 4, 9, 9, generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        norms = []
        for params, optimizer in ((fused_params, fused), (foreach_params, foreach)):
            out = torch.nn.functional.conv2d(inputs.contiguous(memory_format=torch.channels_last), params[0])
            loss = out.square().mean() + (params[1] @ torch.ones(7)).square().sum()
            norms.append(optimizer.step(loss))
        torch.testing.assert_close(norms[0], norms[1])
        for a, b in zip(fused_params, foreach_params):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
            assert a.stride() == b.stride()
    assert fused_params[0].is_contiguous(memory_format=torch.channels_last)
    assert all(state["step"].item() == 5 for state in fused.adam.state.values())
