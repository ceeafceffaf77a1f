"""The configuration snapshot `{results}/configs/{variant}.yaml`: what every stage of a variant reads.

Stages get the configuration as this file, not as Snakemake parameters, so it must not change
under a running workflow, and a variant's outputs must all come from one configuration:

- Planning writes nothing: `snakemake -n`, `--lint` and `check-config` only read. The workflow's
  `onstart` writes the snapshot, after it has taken the results folder's lock
  (`results_lock.py`), so no other workflow runs stages that read it.
- A configuration that differs from the variant's snapshot in a setting that shapes its outputs
  is refused, at planning, with one `ConfigError` naming the settings: a dry run with another
  config file used to rewrite the snapshot, and the live run's next evaluation read it.
  Settings that do not change what existing outputs hold may change (`MAY_CHANGE`): more games
  or seeds, a longer budget, devices, threads, logging.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from dreamer_pipeline.models.config_schema import ConfigError

from dreamer_pipeline.datasets.durable import write_if_changed
from .config import PipelineConfig, dump_config, to_dict
from .config_yaml import load_yaml

# Keys (or sections) that may differ from the snapshot: new runs, a longer run, where and how fast.
MAY_CHANGE = (
    "games", "seeds", "frames_budget", "iterations", "logging",
    "train.device", "train.torch_threads", "train.loader_workers", "train.replay_device",
    "collect.device", "collect.threads", "evaluate.device", "agent.overrides.runtime",
)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _may_change(key: str) -> bool:
    return any(key == allowed or key.startswith(allowed + ".") for allowed in MAY_CHANGE)


def snapshot_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """`key: snapshot X, now Y` for every output-shaping setting that differs."""
    before, after = _flatten(old), _flatten(new)
    missing = "<not set>"
    return [f"{key}: {before.get(key, missing)!r} in the snapshot, {after.get(key, missing)!r} now"
            for key in sorted(set(before) | set(after))
            if not _may_change(key) and before.get(key, missing) != after.get(key, missing)]


def read_snapshot(path: str | Path) -> dict[str, Any] | None:
    path = Path(path)
    if not path.exists():
        return None
    data = load_yaml(path.read_text(), f"configuration snapshot {path}")
    if not isinstance(data, Mapping):
        raise ConfigError(f"configuration snapshot {path} does not hold a mapping; remove it")
    return dict(data)


def check_snapshot(path: str | Path, cfg: PipelineConfig) -> None:
    """Raise `ConfigError` if `cfg` differs from the variant's snapshot at `path` in a setting
    that shapes its outputs (see the module doc)."""
    saved = read_snapshot(path)
    if saved is None:
        return
    differences = snapshot_differences(saved, to_dict(cfg))
    if differences:
        shown = "; ".join(differences[:4]) + (f"; and {len(differences) - 4} more" if len(differences) > 4 else "")
        raise ConfigError(
            f"variant {cfg.variant!r} already has a configuration ({path}) that differs in {shown}. One variant's "
            f"outputs come from one configuration: use a new variant name, or start the variant over (remove "
            f"{path} and its run folders)")


def write_snapshot(path: str | Path, cfg: PipelineConfig) -> bool:
    """Check, then write the snapshot (only when it changed); called under the results lock."""
    check_snapshot(path, cfg)
    return write_if_changed(path, dump_config(cfg))


# ---- shared outputs: built once, reused by every variant that names them ----
PREFILL_KEYS = ("suite", "prefill.steps", "env")
PRETRAIN_KEYS = ("suite", "pretrain", "agent", "train.batch_size", "train.sequence_length", "train.prioritize_ends",
                 "env")
PRETRAIN_MAY_CHANGE = ("pretrain.initialise_runs", "agent.overrides.runtime")


def _selected(flat: Mapping[str, Any], keys: tuple[str, ...], ignore: tuple[str, ...]) -> dict[str, Any]:
    def inside(key: str, prefixes: tuple[str, ...]) -> bool:
        return any(key == p or key.startswith(p + ".") for p in prefixes)

    return {k: v for k, v in flat.items() if inside(k, keys) and not inside(k, ignore)}


def _check_shared(kind: str, output: str, settings: Path, keys: tuple[str, ...], ignore: tuple[str, ...],
                  cfg: PipelineConfig, rename: str) -> None:
    saved = read_snapshot(settings)
    if saved is None:
        return
    missing = "<not set>"
    before = _selected(_flatten(saved), keys, ignore)
    after = _selected(_flatten(to_dict(cfg)), keys, ignore)
    differences = [f"{key}: {before.get(key, missing)!r} there, {after.get(key, missing)!r} here"
                   for key in sorted(set(before) | set(after)) if before.get(key, missing) != after.get(key, missing)]
    if differences:
        raise ConfigError(f"the {kind} {output} was built with other settings ({'; '.join(differences[:4])}; see "
                          f"{settings}). It is shared by every variant that names it: choose another {rename}")


def check_shared_outputs(cfg: PipelineConfig, layout) -> None:
    """Raise `ConfigError` if a shared output this workflow would reuse (the prefill store, the
    pretrained world model) exists but was built with other settings than `cfg` gives it: its
    marker makes Snakemake reuse it whatever its settings were."""
    for game in cfg.games:
        if not cfg.offline:
            store = layout.dataset_store(game, cfg.prefill.name)
            _check_shared("prefill store", store, Path(store).with_suffix(".config.yaml"), PREFILL_KEYS, (), cfg,
                          "prefill.name")
        if cfg.pretrain is not None:
            folder = layout.pretrained_dir(game, cfg.pretrain.name)
            _check_shared("pretrained world model", f"{folder}/world_model.pt", Path(folder) / "config.yaml",
                          PRETRAIN_KEYS, PRETRAIN_MAY_CHANGE, cfg, "pretrain.name")
