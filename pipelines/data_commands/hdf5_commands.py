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
@click.option("--author", multiple=True, help="Minari's `author` (repeatable) [default: your user name].")
@click.option("--author-email", multiple=True, help="Minari's `author_email` (repeatable).")
@click.option("--code-permalink", default=None, metavar="URL",
              help="Minari's `code_permalink` [default: this checkout's git remote at its commit].")
@click.option("--progress/--no-progress", default=True, show_default=True)
def export_command(datasets, out_dir, dataset_id, compression, author, author_email, code_permalink, progress) -> None:
    """Export datasets to a lossless Minari (HDF5) dataset in OUT_DIR.

    DATASET is any number of stores, directories of stores or manifests (combined).

    Creates OUT_DIR/data/main_data.hdf5 (one episode_<i> group per episode: observations,
    actions, rewards, terminations, truncations) and OUT_DIR/data/metadata.json. Frames stay
    raw uint8 (never JPEG), and the stores' provenance is kept, so import-hdf5 restores them
    bit-exactly. Minari reads the result: put OUT_DIR at $MINARI_DATASETS_PATH/<dataset id>
    and call minari.load_dataset("<dataset id>"). Reward-free data is exported with NaN rewards.

    Example: dreamer-pipeline export-hdf5 results/datasets/pong/random50k.zarr exports/pong-random
    """
    from dreamer_pipeline.datasets.dataset import open_dataset
    from dreamer_pipeline.datasets.interop.hdf5 import export_minari

    data_dir = export_minari(open_dataset(*datasets), out_dir, dataset_id=dataset_id,
                             compression=compression, author=list(author) or [_user()],
                             author_email=list(author_email) or None,
                             code_permalink=code_permalink or default_permalink(), progress=progress)
    click.echo(f"wrote {data_dir / 'main_data.hdf5'} and {data_dir / 'metadata.json'}")


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def default_permalink() -> str:
    """This code's address: the git remote of the checkout at its commit, or the package version."""
    import subprocess
    from importlib.metadata import PackageNotFoundError, version
    from urllib.parse import urlsplit, urlunsplit

    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        remote, commit = git("config", "--get", "remote.origin.url"), git("rev-parse", "HEAD")
        if remote.startswith("git@"):
            remote = "https://" + remote[4:].replace(":", "/", 1)
        parts = urlsplit(remote)
        if parts.username or parts.password:  # never publish credentials kept in a remote URL
            parts = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
        return f"{urlunsplit(parts).removesuffix('.git')}/tree/{commit}"
    except (OSError, subprocess.SubprocessError):
        try:
            return f"dreamer-pipeline {version('dreamer-pipeline')}"
        except PackageNotFoundError:
            return "dreamer-pipeline"


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
    from dreamer_pipeline.datasets.interop.hdf5 import import_minari

    from .minari_env import foreign_ale_attrs

    extra = foreign_ale_attrs(source)  # a foreign ALE dataset: the game's real action set, from env_spec
    stores = import_minari(source, store, progress=progress, **extra)
    for path in stores:
        click.echo(f"wrote {path}")
