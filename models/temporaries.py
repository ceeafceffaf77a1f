"""Temporary files of atomic writes: named after their writer's process, so a leftover is recognisable.

An atomic write goes to a temporary file beside its target, then `os.replace`s it. A writer killed
in between leaves the temporary file behind (`.{name}.pid{P}.{random}.tmp`). The next writer of
the same target removes every such file whose process P no longer runs (temporary files named
before the pid was part of the name: once idle for 10 minutes). Torch-free, so that every package
may use it (checkpoints here, `pipelines.atomic` for the other outputs).
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once, at import: the umask cannot be read without setting it
_LEGACY_IDLE_SECONDS = 600.0


def file_mode() -> int:
    """The mode a new file gets under the process's umask (mkstemp's files are 0600)."""
    return 0o666 & ~_UMASK


def temporary_prefix(path: str | os.PathLike) -> str:
    return f".{Path(path).name}.pid{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _stale(tmp: Path, target_name: str) -> bool:
    middle = tmp.name[len(target_name) + 2:]  # after ".{name}."
    pid = middle[3:].split(".", 1)[0] if middle.startswith("pid") else ""
    if pid.isdigit():
        return int(pid) != os.getpid() and not _alive(int(pid))
    try:
        return time.time() - tmp.lstat().st_mtime > _LEGACY_IDLE_SECONDS
    except FileNotFoundError:
        return False


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files killed writers of `path` left beside it; returns them."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if _stale(tmp, path.name) and (tmp.is_symlink() or tmp.is_file()):
            tmp.unlink(missing_ok=True)  # a link is removed, never followed
            removed.append(tmp)
    return removed
