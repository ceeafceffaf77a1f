"""A rough estimate of what a training stage needs in memory, from the configuration alone.

Purpose: reject a plan that cannot fit (`train.batch_size: 1e12`, a replay larger than the
machine) before any job starts, with the estimate in the message; it is not a profiler. It counts
the terms that grow with the settings and leaves out small constants:

- parameters (estimated from the agent's sizes) with their gradients and Adam's two moments:
  16 bytes each;
- activations kept for the backward pass: per step of a batch, the encoder's and decoder's feature
  maps, the RSSM's states and the heads' hidden layers; per imagined step (B*T starts times the
  horizon H, paper Sec. 2.2), the latent state and the actor's and critic's hidden layers. Autograd
  keeps about this much again for intermediate results and gradients (the factor 3 below);
- batches: the sampled uint8 batches queued by the prefetch thread or the DataLoader workers, and
  the float32 copy of the images on the device;
- the replay's per-step arrays (action, reward, flags: 11 bytes per step) in every sampling
  process, and the fixed cost of each DataLoader worker process (a Python with torch loaded).

Training on the CPU puts everything in host memory; on a GPU, parameters, activations and the
device batch go to the GPU's memory and the rest stays on the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dreamer_pipeline.datasets.schema import IMAGE_SIZE

IMAGE_BYTES = IMAGE_SIZE * IMAGE_SIZE  # one uint8 frame
SMALL_BYTES_PER_STEP = 4 + 4 + 3  # action int32, reward float32, three flags
AUTOGRAD_FACTOR = 3
WORKER_PROCESS_BYTES = 400 * 2**20  # RSS of a DataLoader worker with torch imported (measured ~350 MB)
PREFETCHED_BATCHES = 2  # the prefetch thread's queue, or each worker's prefetch_factor


@dataclass
class MemoryEstimate:
    host_bytes: int = 0
    device_bytes: int = 0
    parts: dict[str, int] = field(default_factory=dict)  # name -> bytes, for the message

    def describe(self) -> str:
        return ", ".join(f"{name} {gib(value)}" for name, value in self.parts.items() if value >= 2**20)


def gib(value: int | float) -> str:
    return f"{value / 2**30:.1f} GiB"


def _mlp(inputs: int, layers: int, units: int, outputs: int) -> int:
    return inputs * units + (layers - 1) * units * units + units * outputs


def parameter_count(agent, num_actions: int = 18) -> int:
    """Parameters of the world model, actor, critic and target critic (weights; biases neglected)."""
    wm, behaviour = agent.world_model, agent.behaviour
    channels, d, dd = wm.image_channels, wm.encoder.depth, wm.decoder.depth
    rssm = wm.rssm
    latent = rssm.stoch * rssm.classes
    feature = rssm.deter + latent
    encoder = 16 * (channels * d + 2 * d * d + 8 * d * d + 32 * d * d)  # 4x4 kernels, channels d..8d
    decoder = feature * 32 * dd + 25 * 32 * dd * 4 * dd + 25 * 4 * dd * 2 * dd + 36 * 2 * dd * dd + 36 * dd * channels
    embed = 32 * d
    dynamics = ((latent + num_actions) * rssm.hidden + 3 * (rssm.hidden + rssm.deter) * rssm.deter
                + rssm.deter * rssm.hidden + 2 * rssm.hidden * 2 * latent + (rssm.deter + embed) * rssm.hidden)
    heads = sum(_mlp(feature, head.layers, head.units, 1) for head in (wm.reward_head, wm.discount_head))
    actor = _mlp(feature, behaviour.actor.layers, behaviour.actor.units, num_actions)
    critics = 2 * _mlp(feature, behaviour.critic.layers, behaviour.critic.units, 1)
    return encoder + decoder + dynamics + heads + actor + critics


def activation_floats(agent, num_actions: int = 18) -> tuple[int, int]:
    """(floats per batch step of the world model, floats per imagined step of the actor-critic)."""
    wm, behaviour = agent.world_model, agent.behaviour
    d, dd, rssm = wm.encoder.depth, wm.decoder.depth, wm.rssm
    latent = rssm.stoch * rssm.classes
    encoder = 961 * d + 196 * 2 * d + 36 * 4 * d + 4 * 8 * d  # 64 -> 31 -> 14 -> 6 -> 2
    decoder = 32 * dd + 25 * 4 * dd + 169 * 2 * dd + 900 * dd + IMAGE_BYTES * wm.image_channels  # 1 -> 5 -> 13 -> 30 -> 64
    dynamics = 4 * rssm.deter + 3 * rssm.hidden + 6 * latent
    heads = sum(head.layers * head.units for head in (wm.reward_head, wm.discount_head))
    per_step = encoder + decoder + dynamics + heads
    imagined = (3 * rssm.deter + 2 * rssm.hidden + 4 * latent + num_actions
                + behaviour.actor.layers * behaviour.actor.units + 2 * behaviour.critic.layers * behaviour.critic.units
                + heads)
    return per_step, imagined


def training_memory(cfg, agent, *, on_gpu: bool, num_actions: int = 18) -> MemoryEstimate:
    """Estimate one training stage of `cfg` (a PipelineConfig) with the agent config `agent`."""
    train = cfg.train
    steps = train.batch_size * train.sequence_length
    per_step, imagined = activation_floats(agent, num_actions)
    parts = {
        "parameters and optimiser state": parameter_count(agent, num_actions) * 16,
        "activations": AUTOGRAD_FACTOR * 4 * (steps * per_step + steps * agent.behaviour.horizon * imagined),
        "device batch": steps * IMAGE_BYTES * 4,
    }
    workers = train.loader_workers
    host = {
        "queued batches": steps * (IMAGE_BYTES + SMALL_BYTES_PER_STEP) * PREFETCHED_BATCHES * max(1, workers),
        "replay index": cfg.replay_steps * SMALL_BYTES_PER_STEP * (1 + workers),
        "loader workers": workers * WORKER_PROCESS_BYTES,
    }
    device_total = sum(parts.values())
    estimate = MemoryEstimate(parts={**parts, **host})
    estimate.host_bytes = sum(host.values()) + (0 if on_gpu else device_total)
    estimate.device_bytes = device_total if on_gpu else 0
    return estimate
