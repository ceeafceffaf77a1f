"""What a dataset entry in the configuration (`datasets:`, `pretrain.datasets:`) refers to.

An entry is either
- a *name* (letters, digits, `-_.`; no `/`): the shared dataset `{paths.datasets}/{game}/{name}`.
  If it is the configured prefill's name, the pipeline builds it (once per game, shared by every
  seed and variant) and its marker `{name}.json` is the Snakemake input. Otherwise it must already
  exist there as `{name}.zarr` (a store, e.g. from `import-hdf5`) or `{name}.json`/`.yaml` (a manifest);
- a *path*, which may contain `{game}`: a store, a directory of stores (e.g. another run's folder,
  searched recursively) or a manifest. It must exist when the workflow starts.

External datasets are passed to the stages as parameters, not declared as Snakemake inputs, so a
dataset that keeps growing elsewhere (another run's folder) never makes finished work look stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dreamer_pipeline.models.config_schema import ConfigError

from .run_layout import RunLayout


@dataclass(frozen=True)
class DatasetRef:
    source: str  # what a stage opens (store, directory or manifest; a built dataset's marker)
    built: bool  # the pipeline builds it: `source` is a marker and a Snakemake input


def is_name(entry: str) -> bool:
    return "/" not in entry and not entry.endswith((".zarr", ".json", ".yaml", ".yml"))


def resolve_dataset(cfg, layout: RunLayout, game: str, entry: str, *, where: str = "datasets", check: bool = False) -> DatasetRef:
    """Resolve one configuration entry for `game`. With `check`, verify it opens as experience data."""
    if is_name(entry):
        if entry == cfg.prefill.name:
            return DatasetRef(layout.dataset_marker(game, entry), built=True)
        candidates = [
            Path(layout.dataset_store(game, entry)),
            Path(layout.dataset_marker(game, entry)),
            Path(layout.dataset_marker(game, entry)).with_suffix(".yaml"),
        ]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise ConfigError(
                f"{where}: {entry!r} is neither the prefill dataset ({cfg.prefill.name!r}) nor an existing "
                f"shared dataset for {game} (looked for {', '.join(str(c) for c in candidates)})"
            )
        path = found
    else:
        try:
            path = Path(entry.format(game=game))
        except (KeyError, IndexError, ValueError) as error:
            raise ConfigError(f"{where}: {entry!r}: only the placeholder {{game}} is allowed ({error})") from None
    if check:
        _check_source(path, game, where)
    return DatasetRef(str(path), built=False)


def _check_source(path: Path, game: str, where: str) -> None:
    from dreamer_pipeline.datasets.dataset import DatasetError, resolve_stores
    from dreamer_pipeline.datasets.store import ExperienceStore, StoreError

    try:
        stores, _ = resolve_stores(path)
        for store_path in stores:
            store = ExperienceStore(store_path)
            store_game = store.attrs.get("game")
            if store_game is not None and str(store_game).replace("_", "") != game.replace("_", ""):
                raise ConfigError(f"{where}: {store_path} holds {store_game!r} experience, not {game!r}")
    except (DatasetError, StoreError) as error:
        raise ConfigError(f"{where}: {error}") from None


def write_store_marker(marker: str | Path, store: str | Path, name: str | None = None) -> Path:
    """Declare a finished store: its marker is a dataset manifest (datasets.dataset) listing it.

    Written atomically and only after the store is complete, so Snakemake (which sees the marker,
    never the store) cannot take a half-collected store as done.
    """
    import os

    from dreamer_pipeline.datasets.durable import atomic_write_json

    marker, store = Path(marker), Path(store)
    entry = os.path.relpath(store.resolve(), marker.parent.resolve())
    content = {"stores": [entry]}
    if name:
        content = {"name": name, **content}
    return atomic_write_json(marker, content)
