"""Checks of a configuration against the machine that runs it: the device exists, the plan fits.

`check_machine(cfg, agent_config)` raises one `ConfigError`:
- when `train.device` is not a device name torch knows (`banana`), or names a device this machine
  does not have (`cuda:3` on a one-GPU machine, `cuda` without a GPU);
- when the estimated memory of a training stage (pipelines/memory_estimate.py) exceeds the
  machine's physical memory or the GPU's memory; the estimate is in the message.

`check-config` and the Snakefile run it at parse time, and every training stage runs it again when
it starts (`training.setup`), on the machine where it actually runs. A cluster's submit host may
have no GPU while its nodes do: set `DREAMER_PIPELINE_NO_MACHINE_CHECK=1` for the Snakemake
process there (e.g. `DREAMER_PIPELINE_NO_MACHINE_CHECK=1 snakemake --profile profiles/slurm ...`);
the stages still check on the nodes.
"""

from __future__ import annotations

import os

from dreamer_pipeline.models.config_schema import ConfigError

from .config import check_device_name
from .memory_estimate import gib, parameter_count, training_memory

SKIP_VARIABLE = "DREAMER_PIPELINE_NO_MACHINE_CHECK"


# Device files of GPU drivers (NVIDIA, AMD ROCm). Without any, 'auto' means the CPU and torch
# (2 s to import on a loaded machine) need not be imported to find out: `snakemake -n` stays fast.
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/proc/driver/nvidia")


def skip_requested() -> bool:
    return os.environ.get(SKIP_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def resolve_device(device: str, where: str = "train.device") -> str:
    """The concrete device `device` means here ('auto' -> 'cuda' or 'cpu'); raises if it does not exist."""
    check_device_name(device, where)
    if device == "cpu":
        return device
    if device == "auto" and not any(os.path.exists(path) for path in GPU_DEVICE_FILES):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = device.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (index and int(index) >= count):
            raise ConfigError(f"{where}: {device!r} does not exist here: this machine has {count} CUDA device(s)"
                              + ("" if count else " (or torch was built without CUDA)"))
    elif kind == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"{where}: 'mps' is not available on this machine")
    elif kind == "xpu":
        count = torch.xpu.device_count() if hasattr(torch, "xpu") and torch.xpu.is_available() else 0
        if count == 0 or (index and int(index) >= count):
            raise ConfigError(f"{where}: {device!r} does not exist here: this machine has {count} XPU device(s)")
    return device


def physical_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def device_memory_bytes(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    import torch

    index = int(device.partition(":")[2] or 0)
    return int(torch.cuda.get_device_properties(index).total_memory)


def check_memory(cfg, agent_config, device: str) -> None:
    """Raise if the estimate of a training stage exceeds this machine's memory (see module docstring)."""
    on_gpu = device.startswith("cuda")
    estimate = training_memory(cfg, agent_config, on_gpu=on_gpu)
    host = physical_memory_bytes()
    plan = (f"train.batch_size {cfg.train.batch_size} x sequence_length {cfg.train.sequence_length}, "
            f"agent preset {cfg.agent.preset!r}, replay_steps {cfg.replay_steps:,}")
    if host and estimate.host_bytes > host:
        raise ConfigError(f"a training stage would need about {gib(estimate.host_bytes)} of memory "
                          f"({estimate.describe()}; {plan}), more than this machine's {gib(host)}")
    gpu = device_memory_bytes(device) if on_gpu else None
    if gpu and estimate.device_bytes > gpu:
        raise ConfigError(f"a training stage would need about {gib(estimate.device_bytes)} on {device} "
                          f"({estimate.describe()}; {plan}), more than its {gib(gpu)}")


# The CPU rate measured for the `small` preset: 0.88 s per interleaved update of batch 16 x 50 on the
# 2-core development machine (docs/agent.md). Other sizes scale by parameters and batch, which
# gives 23 s for the `atari` preset, as measured (22 to 26 s, docs/pipeline.md).
CPU_SECONDS_PER_SMALL_UPDATE = 0.88
CPU_WARNING_HOURS = 24.0


def cpu_time_warning(cfg, agent_config, device: str) -> str | None:
    """A warning when a plan that trains on the CPU would take more than a day (the paper's
    protocol there: years), with the estimate; None otherwise."""
    if device != "cpu":
        return None
    from dreamer_pipeline.models.config import preset

    from .schedule import plan

    runs = len(cfg.games) * len(cfg.seeds)
    updates = sum(iteration.updates for iteration in plan(cfg)) * runs
    scale = parameter_count(agent_config) / parameter_count(preset("small"))
    scale *= cfg.train.batch_size * cfg.train.sequence_length / (16 * 50)
    seconds = updates * CPU_SECONDS_PER_SMALL_UPDATE * scale
    if seconds < CPU_WARNING_HOURS * 3600:
        return None
    return (f"training on the CPU: {updates:,} updates ({runs} run(s)) at about {CPU_SECONDS_PER_SMALL_UPDATE * scale:.1f} s "
            f"each (the rate measured on 2 cores) would take about {seconds / 86400:,.0f} days; plan a GPU (train.device) or a smaller "
            "budget (docs/pipeline.md, 'Planned wall time of a 200M-frame run')")


def check_machine(cfg, agent_config, device: str | None = None) -> str:
    """Device and memory checks; returns the concrete device ('auto' resolved)."""
    concrete = resolve_device(device or cfg.train.device, "--device" if device else "train.device")
    check_memory(cfg, agent_config, concrete)
    return concrete
