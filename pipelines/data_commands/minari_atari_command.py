"""`dreamer-pipeline import-minari-atari`: Minari's Atari datasets (`atari/<game>/expert-v0`) into a store.

Those datasets hold ALE v5's full 210x160 RGB screens (frameskip 4 without max-pooling, no sticky
actions, a CleanBA PPO expert). Our stores hold 64x64 grayscale, so the import converts every
frame explicitly, exactly as our environment would (`datasets/frames.py`: ALE's grayscale, then
INTER_AREA), and records the conversion and the dataset's protocol in the store's provenance
(`imported_from.conversion`, `env`), since training on it is not training on our protocol.
Action indices are mapped through the action set the dataset's `env_spec` names (ale-py's
minimal set unless `full_action_space=True`), never guessed from their count.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("import-minari-atari", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", metavar="DATASET_DIR", type=click.Path(exists=True, path_type=Path))
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--game", default=None, help="The game, if the dataset's env_spec does not name it.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def import_minari_atari_command(source, store, game, progress):
    """Import a Minari Atari dataset, converting its screens to 64x64 grayscale.

    DATASET_DIR is the dataset's folder (holding data/main_data.hdf5 and data/metadata.json, e.g.
    ~/.minari/datasets/atari/pong/expert-v0) or its data/ folder; STORE is the new zarr store.
    JPEG-encoded observations are decoded first. The store records the conversion.

    Example: dreamer-pipeline import-minari-atari ~/.minari/datasets/atari/pong/expert-v0
    results/datasets/pong/minari-expert.zarr
    """
    import time

    from dreamer_pipeline.datasets.frames import to_store_frames
    from dreamer_pipeline.datasets.interop.hdf5 import HDF5Error, import_minari, read_minari_metadata
    from dreamer_pipeline.datasets.interop.minari_spec import MinariSpecError
    from dreamer_pipeline.datasets.store import ExperienceStore, StoreError

    from .minari_env import ForeignDatasetError, ale_identity, minari_protocol

    try:
        metadata = read_minari_metadata(source)
        identity = ale_identity(metadata, game)
        if identity is None:
            raise ForeignDatasetError(f"{source}: its env_spec names no ALE game; give --game")
        attrs = {"game": identity["game"], "ale_rom": identity["ale_rom"], "env": minari_protocol(identity["env_spec"])}
        started = time.perf_counter()
        [path] = import_minari(source, store, action_set=identity["action_set"], attrs=attrs,
                               convert=to_store_frames, progress=progress)
    except (HDF5Error, StoreError, MinariSpecError, ForeignDatasetError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    seconds = time.perf_counter() - started
    imported = ExperienceStore(path)
    click.echo(f"wrote {path}: {imported.num_episodes} episodes, {imported.num_steps} steps "
               f"({imported.num_steps / max(seconds, 1e-9):,.0f} steps/s); "
               f"conversion: {', '.join(imported.attrs['imported_from'].get('conversion', [])) or 'none'}")
