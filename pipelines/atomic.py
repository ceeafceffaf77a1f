"""Atomic file outputs: write to a temporary file beside the target, then `os.replace` it.

Snakemake takes an existing output file as done. A stage killed while writing must therefore never
leave a half-written file under the final name: every declared output is written through these
helpers (checkpoints go through `models.checkpoint`, which does the same).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml

from dreamer_pipeline.datasets.durable import fsync_path
from dreamer_pipeline.models.temporaries import file_mode, remove_stale_temporaries, temporary_prefix


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)`, fsync it, rename it to `path` (same directory, same filesystem), and
    fsync the directory, so the new name survives a power loss too. Temporary files a killed writer
    of `path` left are removed first (`models.temporaries`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    handle, tmp_name = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as file:
            os.fsync(file.fileno())
        os.chmod(tmp, file_mode())  # mkstemp creates 0600; results are shared (group, cluster)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def atomic_write_yaml(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def write_if_changed(path: str | os.PathLike, text: str) -> bool:
    """Atomically write `text` unless the file already holds it (keeps its mtime for Snakemake)."""
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return False
    atomic_write_text(path, text)
    return True
