"""Issue 8's GPU numbers in one short run: update speed per mode, kernels, equality, acting, loader.

    bash benchmarks/gpu_check.sh                  # on a GPU machine: sets up, then runs this
    python benchmarks/gpu_check.py --device cpu --preset debug --budget 200   # a dry run of every path

Each section runs in its own process (a failed CUDA graph capture cannot take the other numbers
with it) under a share of the `--budget` seconds, then one table and one JSON report follow:

    eager     updates/s of `Agent.update` (10 warm-up, 50 timed, CUDA events), and of the world-model
              and behaviour steps alone; kernels and host launches per update (profiler); host
              synchronisations per update; peak memory
    graph     the same with runtime.mode cuda_graph (one CUDA graph per step); graphed losses against
              eager: with the same (capturable) optimiser, and against the default eager agent
    fp32      bf16 autocast off: eager and graphed updates/s, graphed losses against eager
    acting    policy_step at batch 1 and 8 (host in, actions back on the host), eager and graphed
              (one CUDA graph per batch size), alone and, graphed, beside a process that trains with
              graphed updates (and that process's updates/s)
    loader    a 2-worker DataLoader over a zarr store feeding graphed updates for 20 s
    compile   runtime.mode compile and compile_cuda_graph (fullgraph observe and imagine step
              bodies; compile_cuda_graph is what `auto` runs on CUDA): compile time, updates/s

On the CPU the graph sections run the static-buffer path without capture (what the tests check),
so the dry run exercises every line but measures nothing about GPUs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SECTIONS = ("eager", "graph", "fp32", "acting", "loader", "compile")
# Caps per section; the last section (compile) gets whatever the budget has left.
SECTION_SECONDS = {"eager": 45, "graph": 70, "fp32": 45, "acting": 45, "loader": 50, "compile": 150}
UPDATES_PER_RUN = 200_000_000 // 4 // 16  # the paper's run: 50M agent steps, one update per 16


# ------------------------------------------------------------------------------------ helpers
def make_agent(args, **runtime):
    """An agent whose runtime.mode is "eager" unless `runtime` names another."""
    from dreamer_pipeline.models.agent import Agent
    from dreamer_pipeline.models.config import preset

    runtime = {"bf16": True, "mode": "eager", **runtime}
    agent = Agent(preset(args.preset, {"runtime": runtime}), args.num_actions, args.device, seed=0)
    if runtime["mode"].endswith("cuda_graph") and agent.device.type == "cpu":
        agent.step_mode = agent.policy_mode = "static"  # the dry run: the graphs' code path without capture
    return agent


def device_batches(args, count: int = 4) -> list[dict[str, torch.Tensor]]:
    """Random batches already on the device: the timings are the update's, not the copy's."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        shape = (args.batch, args.length)
        is_first = np.zeros(shape, bool)
        is_first[:, 0] = True
        batch = {"image": rng.integers(0, 256, (*shape, 64, 64, 1), dtype=np.uint8),
                 "action": rng.integers(0, args.num_actions, shape), "reward": rng.normal(size=shape).astype(np.float32),
                 "is_first": is_first, "is_terminal": rng.random(shape) < 0.01}
        out.append({key: torch.from_numpy(value).to(args.device) for key, value in batch.items()})
    return out


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn, batches, warmup: int, timed: int, device) -> float:
    """Mean seconds per call: CUDA events around `timed` calls after `warmup` (perf_counter on CPU)."""
    for index in range(warmup):
        fn(batches[index % len(batches)])
    synchronize(device)
    if torch.device(device).type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for index in range(timed):
            fn(batches[index % len(batches)])
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000 / timed
    begin = time.perf_counter()
    for index in range(timed):
        fn(batches[index % len(batches)])
    return (time.perf_counter() - begin) / timed


SCALE = 1.0  # --scale: a dry run times fewer calls (warm-ups that capture graphs stay long enough)


def rates(fn, batches, warmup, timed, device) -> dict:
    warmup, timed = max(min(warmup, 5), round(warmup * SCALE)), max(2, round(timed * SCALE))
    seconds = seconds_per_call(fn, batches, warmup, timed, device)
    return {"seconds": seconds, "per_s": 1.0 / seconds, "warmup": warmup, "timed": timed}


def kernel_count(fn, batch, device) -> dict:
    """Device kernels and host-side launches of one call, from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.device(device).type == "cuda" else [])
    synchronize(device)
    with profile(activities=activities) as prof:
        fn(batch)
        synchronize(device)
    kernels = launches = graph_launches = 0
    for event in prof.events():
        name = event.name
        if event.device_type == torch.autograd.DeviceType.CUDA and not name.startswith(("Memcpy", "Memset")):
            kernels += 1
        elif name in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx"):
            launches += 1
        elif name in ("cudaGraphLaunch", "cuGraphLaunch"):
            graph_launches += 1
    return {"kernels": kernels, "kernel_launches": launches, "graph_launches": graph_launches,
            "aten_ops": sum(1 for e in prof.events() if e.name.startswith("aten::"))}


def host_syncs(fn, batch, device) -> int | None:
    """Host synchronisations one call makes (CUDA's sync debug mode; None on the CPU)."""
    if torch.device(device).type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn(batch)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    synchronize(device)
    return sum("synchroniz" in str(w.message) for w in caught)


def peak_memory_gib(device) -> float | None:
    if torch.device(device).type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


LOSS_KEYS = ("wm/loss", "wm/image_nll", "wm/reward_nll", "wm/discount_nll", "wm/kl", "actor/entropy", "critic/loss",
             "critic/value")


def compare_losses(reference, candidate, batches, updates: int = 6) -> dict:
    """Max relative difference of the losses (and entropy, value), per update, between two agents
    fed the same batches (relative to at least 1e-3: some of them start near zero)."""
    per_update = []
    for index in range(updates):
        batch = batches[index % len(batches)]
        a, b = dict(reference.update(batch)), dict(candidate.update(batch))
        difference = {k: abs(a[k] - b[k]) / max(abs(a[k]), abs(b[k]), 1e-3) for k in LOSS_KEYS if k in a}
        worst = max(difference, key=difference.get)
        per_update.append({"max_rel_diff": difference[worst], "worst_metric": worst, "loss": a["wm/loss"]})
    same_rng = torch.equal(reference.generator.get_state(), candidate.generator.get_state())
    return {"per_update": per_update, "max_rel_diff": max(u["max_rel_diff"] for u in per_update), "same_rng": same_rng}


def graph_equality(args, bf16: bool, batches) -> dict:
    """Graphed updates against eager ones from the same seed: with the same capturable optimiser
    (only the launch differs), and against the default eager agent (fused vs capturable Adam)."""
    tolerance = 2e-2 if bf16 else 1e-3
    graphed = make_agent(args, bf16=bf16, mode="cuda_graph")
    same_optimiser = make_agent(args, bf16=bf16, mode="cuda_graph")
    same_optimiser.step_mode = "eager"
    result = {"tolerance": tolerance, "same_optimiser": compare_losses(same_optimiser, graphed, batches)}
    result["default_eager"] = compare_losses(make_agent(args, bf16=bf16), make_agent(args, bf16=bf16, mode="cuda_graph"),
                                             batches)
    result["equal"] = all(r["max_rel_diff"] <= tolerance and r["same_rng"]
                          for r in (result["same_optimiser"], result["default_eager"]))
    return result


# ----------------------------------------------------------------------------------- sections
def measure_agent(args, agent, batches) -> dict:
    """Updates/s (whole update, world model alone, behaviour alone), profile, syncs, memory.
    Warm-ups of at least 4 calls: a graphed step is captured on its fourth call."""
    out = {"update": rates(agent.update, batches, 10, 50, args.device)}
    out["world_model"] = rates(agent.train_world_model, batches, 5, 20, args.device)
    out["behaviour"] = rates(agent.train_behaviour, batches, 5, 20, args.device)
    out["profile"] = kernel_count(agent.update, batches[0], args.device)
    out["host_syncs_per_update"] = host_syncs(agent.update, batches[0], args.device)
    out["peak_memory_gib"] = peak_memory_gib(args.device)
    return out


def section_eager(args) -> dict:
    return measure_agent(args, make_agent(args), device_batches(args))


def section_graph(args) -> dict:
    batches = device_batches(args)
    out = measure_agent(args, make_agent(args, mode="cuda_graph"), batches)
    out["equality"] = graph_equality(args, True, batches)
    return out


def section_fp32(args) -> dict:
    batches = device_batches(args)
    out = {"eager_update": rates(make_agent(args, bf16=False).update, batches, 5, 30, args.device),
           "graph_update": rates(make_agent(args, bf16=False, mode="cuda_graph").update, batches, 8, 30, args.device),
           "peak_memory_gib": peak_memory_gib(args.device)}
    out["equality"] = graph_equality(args, False, batches)
    return out


def acting_rates(agent, sizes=(1, 8), seconds: float = 4.0) -> dict:
    seconds *= SCALE
    """policy_step as a collector calls it: numpy observations in, int64 actions back on the host."""
    out = {}
    rng = np.random.default_rng(0)
    for size in sizes:
        images = rng.integers(0, 256, (4, size, 64, 64, 1), dtype=np.uint8)
        first, later = np.ones(size, bool), np.zeros(size, bool)
        state = None
        for step in range(20):
            actions, state = agent.policy_step(images[step % 4], first if step == 0 else later, state)
            actions.cpu().numpy()
        steps, begin = 0, time.perf_counter()
        while time.perf_counter() - begin < seconds:
            actions, state = agent.policy_step(images[steps % 4], later, state)
            actions.cpu().numpy()
            steps += 1
        elapsed = time.perf_counter() - begin
        out[f"batch{size}"] = {"ms_per_step": 1000 * elapsed / steps, "steps_per_s": steps / elapsed,
                               "env_steps_per_s": size * steps / elapsed}
    return out


def section_acting(args) -> dict:
    out = {"alone": acting_rates(make_agent(args))}
    agent = make_agent(args, mode="cuda_graph")  # the policy step as one CUDA graph per batch size
    out["graph_alone"] = acting_rates(agent)
    with tempfile.TemporaryDirectory() as folder:
        ready, stop, result = (Path(folder) / name for name in ("ready", "stop", "result.json"))
        trainer = subprocess.Popen([sys.executable, __file__, "--trainer", folder, "--device", args.device,
                                    "--preset", args.preset, "--batch", str(args.batch), "--length", str(args.length),
                                    "--num-actions", str(args.num_actions)])
        try:
            deadline = time.time() + (60 if args.device.startswith("cuda") else 300)  # a dry run on a busy CPU is slow
            while not ready.exists():
                if trainer.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the training process did not start (exit code {trainer.poll()})")
                time.sleep(0.2)
            out["beside_training"] = acting_rates(agent)
            stop.touch()
            trainer.wait(timeout=60)
            out["training_beside_acting"] = json.loads(result.read_text())
        finally:
            if trainer.poll() is None:
                trainer.kill()
    return out


def trainer_process(args) -> None:
    """The training side of the acting section: graphed updates until told to stop."""
    folder = Path(args.trainer)
    batches = device_batches(args)
    agent = make_agent(args, mode="cuda_graph")
    for index in range(max(5, round(10 * SCALE))):  # the graph is captured on the fourth
        agent.update(batches[index % len(batches)])
    synchronize(args.device)
    (folder / "ready").touch()
    count, begin = 0, time.perf_counter()
    while not (folder / "stop").exists():
        agent.update(batches[count % len(batches)])
        count += 1
        if count % 10 == 0:
            synchronize(args.device)
    synchronize(args.device)
    elapsed = time.perf_counter() - begin
    (folder / "result.json").write_text(json.dumps({"updates": count, "seconds": elapsed, "per_s": count / elapsed}))


def section_loader(args) -> dict:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from factories import make_store  # noqa: E402 - tiny synthetic stores, written through StoreWriter

    from dreamer_pipeline.datasets.dataset import open_dataset
    from dreamer_pipeline.datasets.torch_loader import make_loader

    with tempfile.TemporaryDirectory() as folder:
        begin = time.perf_counter()
        lengths = [1000] * 6 if SCALE >= 1 else [200] * 3  # random pixels: incompressible, unlike Atari frames
        store = make_store(Path(folder) / "replay.zarr", lengths, num_actions=args.num_actions)
        out = {"store_steps": sum(lengths), "store_write_s": time.perf_counter() - begin}
        dataset = open_dataset(str(store))
        loader = make_loader(dataset, num_workers=2, seed=0, pin_memory=args.device.startswith("cuda"),
                             batch_size=args.batch, seq_len=args.length)
        agent = make_agent(args, mode="cuda_graph")
        stream = iter(loader)
        to_device = lambda b: {k: v.to(args.device, non_blocking=True) for k, v in b.items()}  # noqa: E731
        for _ in range(max(5, round(10 * SCALE))):
            agent.update(to_device(next(stream)))
        synchronize(args.device)
        count, begin = 0, time.perf_counter()
        while time.perf_counter() - begin < args.loader_seconds:
            agent.update(to_device(next(stream)))
            count += 1
        synchronize(args.device)
        elapsed = time.perf_counter() - begin
        out.update({"workers": 2, "seconds": elapsed, "updates": count, "per_s": count / elapsed})
        begin, batches = time.perf_counter(), 0
        while time.perf_counter() - begin < 5:
            next(stream)
            batches += 1
        out["loader_alone_batches_per_s"] = batches / (time.perf_counter() - begin)
        del stream, loader
    return out


def section_compile(args) -> dict:
    batches = device_batches(args)
    out = {}
    for name, graph in (("eager", False), ("graph", True)):
        torch._dynamo.reset()
        inductor = args.compile_backend == "inductor"
        mode = ("compile_" if inductor else "") + ("cuda_graph" if graph else "")
        agent = make_agent(args, mode=mode.rstrip("_") or "eager")
        if not inductor:  # a dry run: only the step bodies, through the given dynamo backend
            for holder, attribute, function in ((agent.world_model.rssm, "compiled_observe_step", "observe_step"),
                                                (agent.actor_critic, "compiled_imagine_step", "imagine_step")):
                setattr(holder, attribute, torch.compile(getattr(holder, function), fullgraph=True,
                                                         backend=args.compile_backend))
        begin = time.perf_counter()
        agent.update(batches[0])
        synchronize(args.device)
        out[f"{name}_first_update_s"] = time.perf_counter() - begin
        out[name] = rates(agent.update, batches, 8, 30, args.device)
        del agent
    out["peak_memory_gib"] = peak_memory_gib(args.device)
    return out


SECTION_FUNCTIONS = {"eager": section_eager, "graph": section_graph, "fp32": section_fp32,
                     "acting": section_acting, "loader": section_loader, "compile": section_compile}


# ------------------------------------------------------------------------------------- driver
def run_sections(args) -> dict:
    """Every section in its own process, each under its share of what is left of the budget."""
    started, results = time.time(), {}
    common = ["--device", args.device, "--preset", args.preset, "--batch", str(args.batch), "--length",
              str(args.length), "--num-actions", str(args.num_actions), "--loader-seconds", str(args.loader_seconds),
              "--compile-backend", args.compile_backend, "--scale", str(args.scale)]
    for name in args.sections:
        left = args.budget - (time.time() - started) - 5
        if left < 20:
            results[name] = {"skipped": "the time budget was spent"}
            continue
        last_or_dry_run = name == args.sections[-1] or args.device == "cpu"
        limit = left if last_or_dry_run else min(SECTION_SECONDS[name], left)
        print(f"[{time.time() - started:5.0f} s] {name} (at most {limit:.0f} s)", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "section.json"
            begin = time.time()
            try:
                done = subprocess.run([sys.executable, __file__, "--section", name, "--section-out", str(target), *common],
                                      timeout=limit, capture_output=True, text=True)
            except subprocess.TimeoutExpired:
                results[name] = {"error": f"timed out after {limit:.0f} s"}
            else:
                if done.returncode != 0 or not target.exists():
                    results[name] = {"error": f"exit code {done.returncode}", "log": (done.stdout + done.stderr)[-3000:]}
                    print(results[name]["log"], file=sys.stderr)
                else:
                    results[name] = json.loads(target.read_text())
            results[name]["wall_s"] = time.time() - begin
    return results


def _get(tree, *path, default=None):
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return default
        tree = tree[key]
    return tree


def summarise(results: dict) -> dict:
    """The issue's numbers, and the planned wall time of one 200M-frame run (one game, one seed)."""
    summary = {
        "eager_updates_per_s": _get(results, "eager", "update", "per_s"),
        "eager_world_model_per_s": _get(results, "eager", "world_model", "per_s"),
        "eager_behaviour_per_s": _get(results, "eager", "behaviour", "per_s"),
        "graph_updates_per_s": _get(results, "graph", "update", "per_s"),
        "graph_world_model_per_s": _get(results, "graph", "world_model", "per_s"),
        "graph_behaviour_per_s": _get(results, "graph", "behaviour", "per_s"),
        "compiled_eager_updates_per_s": _get(results, "compile", "eager", "per_s"),
        "compiled_graph_updates_per_s": _get(results, "compile", "graph", "per_s"),
        "compile_first_update_s": _get(results, "compile", "eager_first_update_s"),
        "fp32_eager_updates_per_s": _get(results, "fp32", "eager_update", "per_s"),
        "fp32_graph_updates_per_s": _get(results, "fp32", "graph_update", "per_s"),
        "kernels_per_eager_update": _get(results, "eager", "profile", "kernels"),
        "launches_per_eager_update": _get(results, "eager", "profile", "kernel_launches"),
        "kernels_per_graph_update": _get(results, "graph", "profile", "kernels"),
        "launches_per_graph_update": _get(results, "graph", "profile", "kernel_launches"),
        "host_syncs_per_eager_update": _get(results, "eager", "host_syncs_per_update"),
        "graph_equals_eager_bf16": _get(results, "graph", "equality", "equal"),
        "graph_vs_eager_bf16_max_rel_diff": _get(results, "graph", "equality", "default_eager", "max_rel_diff"),
        "graph_equals_eager_fp32": _get(results, "fp32", "equality", "equal"),
        "graph_vs_eager_fp32_max_rel_diff": _get(results, "fp32", "equality", "default_eager", "max_rel_diff"),
        "acting_batch1_steps_per_s": _get(results, "acting", "alone", "batch1", "steps_per_s"),
        "acting_batch8_env_steps_per_s": _get(results, "acting", "alone", "batch8", "env_steps_per_s"),
        "acting_graph_batch1_steps_per_s": _get(results, "acting", "graph_alone", "batch1", "steps_per_s"),
        "acting_graph_batch8_env_steps_per_s": _get(results, "acting", "graph_alone", "batch8", "env_steps_per_s"),
        "acting_batch1_beside_training_steps_per_s": _get(results, "acting", "beside_training", "batch1", "steps_per_s"),
        "acting_batch8_beside_training_env_steps_per_s": _get(results, "acting", "beside_training", "batch8",
                                                              "env_steps_per_s"),
        "training_beside_acting_updates_per_s": _get(results, "acting", "training_beside_acting", "per_s"),
        "loader_fed_graph_updates_per_s": _get(results, "loader", "per_s"),
        "peak_memory_gib": max([v for v in (_get(results, s, "peak_memory_gib") for s in SECTIONS) if v] or [0.0]) or None,
    }
    sustained = [summary[k] for k in ("loader_fed_graph_updates_per_s", "training_beside_acting_updates_per_s") if summary[k]]
    if sustained:
        rate = min(sustained)
        summary["planned_run_updates_per_s"] = rate
        summary["planned_run_hours"] = UPDATES_PER_RUN / rate / 3600
        summary["acting_needed_env_steps_per_s"] = 16 * rate
    return summary


GOALS = {"graph_updates_per_s": ">= 36", "acting_batch8_beside_training_env_steps_per_s": ">= 600",
         "planned_run_hours": "<= 30", "graph_equals_eager_bf16": "true", "graph_equals_eager_fp32": "true"}


def print_table(report: dict) -> None:
    print(f"\nGPU check {report['date']}: {report['gpu']}, torch {report['torch']} (CUDA {report['cuda']}), "
          f"preset {report['preset']}, B={report['batch']}, T={report['length']}")
    print(f"{'measurement':48} {'value':>12}  goal")
    for key, value in report["summary"].items():
        shown = "-" if value is None else (f"{value:12.3f}" if isinstance(value, float) else f"{value!s:>12}")
        print(f"{key:48} {shown:>12}  {GOALS.get(key, '')}")
    for name, result in report["sections"].items():
        if "error" in result or "skipped" in result:
            print(f"section {name}: {result.get('error') or result.get('skipped')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="atari")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--num-actions", type=int, default=18)
    parser.add_argument("--budget", type=float, default=285, help="seconds for all sections together")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--loader-seconds", type=float, default=20.0)
    parser.add_argument("--compile-backend", default="inductor", help="'eager' for a dry run without a compiler")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the timed calls (dry runs: 0.1)")
    parser.add_argument("--out", default=str(HERE / "gpu_check.json"))
    parser.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)
    parser.add_argument("--section-out", help=argparse.SUPPRESS)
    parser.add_argument("--trainer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global SCALE
    SCALE = args.scale
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("torch sees no CUDA device here; give --device cpu for a dry run")
    if args.trainer:
        return trainer_process(args)
    if args.section:
        result = SECTION_FUNCTIONS[args.section](args)
        Path(args.section_out).write_text(json.dumps(result, indent=1, default=str))
        return None
    report = {
        "benchmark": "gpu_check", "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "gpu": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "none (dry run on the CPU)",
        "torch": torch.__version__, "cuda": torch.version.cuda, "preset": args.preset, "batch": args.batch,
        "length": args.length, "num_actions": args.num_actions, "cpu_count": os.cpu_count(),
    }
    report["sections"] = run_sections(args)
    report["summary"] = summarise(report["sections"])
    print_table(report)
    text = json.dumps(report, indent=1, default=str)
    Path(args.out).write_text(text)
    print(f"\nwrote {args.out}\n{text}")
    return None


if __name__ == "__main__":
    main()
