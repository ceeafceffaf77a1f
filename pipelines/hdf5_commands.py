"""`dreamer-pipeline export-hdf5` / `import-hdf5`: datasets to and from Minari's HDF5 layout (lossless)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export-hdf5", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("datasets", nargs=-1, required=True, metavar="DATASET...", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--dataset-id", default=None, metavar="ID",
              help="Minari dataset id, e.g. dreamer-pipeline/pong/random-v0 (default: derived from game and name).")
@click.option("--compression", type=click.Choice(["gzip", "lzf"]), default="gzip", show_default=True,
              help="Lossless HDF5 filter for the frames: gzip is readable everywhere, lzf is faster (h5py only).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def export_command(datasets, out_dir, dataset_id, compression, progress) -> None:
    """Export datasets to a lossless Minari (HDF5) dataset in OUT_DIR.

    DATASET is any number of stores, directories of stores or manifests (combined).

    Creates OUT_DIR/data/main_data.hdf5 (one episode_<i> group per episode: observations,
    actions, rewards, terminations, truncations) and OUT_DIR/data/metadata.json. Frames stay
    raw uint8 (never JPEG), and the stores' provenance is kept, so import-hdf5 restores them
    bit-exactly. Minari reads the result: put OUT_DIR at $MINARI_DATASETS_PATH/<dataset id>
    and call minari.load_dataset("<dataset id>"). Reward-free data is exported with NaN rewards.

    Example: dreamer-pipeline export-hdf5 results/datasets/pong/random50k.zarr exports/pong-random
    """
    from dreamer_pipeline.datasets.dataset import DatasetError, open_dataset
    from dreamer_pipeline.datasets.hdf5 import HDF5Error, export_minari

    try:
        data_dir = export_minari(open_dataset(*datasets), out_dir, dataset_id=dataset_id,
                                 compression=compression, progress=progress)
    except (DatasetError, HDF5Error) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"wrote {data_dir / 'main_data.hdf5'} and {data_dir / 'metadata.json'}")


@click.command("import-hdf5", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", metavar="HDF5_OR_DIR", type=click.Path(path_type=Path))
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--progress/--no-progress", default=True, show_default=True)
def import_command(source, store, progress) -> None:
    """Import a Minari (HDF5) dataset into a new zarr experience store.

    Reads HDF5_OR_DIR and writes the new store STORE.

    HDF5_OR_DIR is a main_data.hdf5 file, its data/ directory, or the directory holding data/.
    An export of one store becomes STORE with its original attributes; an export of several stores
    becomes STORE/<original name> for each. A foreign Minari dataset needs 64x64 uint8 frames
    (raw or JPEG-encoded) and a Discrete action space in its metadata.json; an ALE env_spec there
    tells which action set its indices mean. Larger or colour Atari screens: import-minari-atari.

    Example: dreamer-pipeline import-hdf5 exports/pong-random results/datasets/pong/imported.zarr
    """
    from dreamer_pipeline.datasets.hdf5 import HDF5Error, import_minari
    from dreamer_pipeline.datasets.minari_spec import MinariSpecError
    from dreamer_pipeline.datasets.store import StoreError

    from .minari_env import ForeignDatasetError, foreign_ale_attrs

    try:
        extra = foreign_ale_attrs(source)  # a foreign ALE dataset: the game's real action set, from env_spec
        stores = import_minari(source, store, progress=progress, **extra)
    except (HDF5Error, StoreError, MinariSpecError, ForeignDatasetError) as error:
        raise click.ClickException(str(error)) from None
    for path in stores:
        click.echo(f"wrote {path}")
