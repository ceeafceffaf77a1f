"""Every file the project writes that matters goes through here: atomically (a temporary sibling,
then a rename, so a reader sees the old or the new file, never a torn one) and durably (fsync of
the file and of its folder, so the new name and its data both survive a power loss).

- `atomic_write(path, write)` (and `atomic_write_text` / `atomic_write_json` / `write_if_changed`):
  one file: checkpoints, evaluation results, markers, videos, the online stage's exchange files.
- `replace_files(files, last)`: several files, with one file (a store's commit record) strictly last.
- `staged_directory(final)`: a whole folder that must appear at once (an import, an export).

No write goes through a link we did not make: temporaries are created new (`O_EXCL`, and
`O_NOFOLLOW` where we open them), and a rename replaces a link at the target instead of following
it. Temporaries a killed writer left are recognised by name and removed by the next writer.

Why the order in `replace_files`: a rename makes a new file visible at once, but after a power loss the file system may keep
the rename and lose the data, or lose the directory entry. `replace_files` writes every file to a
temporary sibling, fsyncs it, renames it over its target, fsyncs every directory whose entries
changed, and only then renames the commit record into place (and fsyncs its directory). When it
returns, everything is on stable storage, and a crash at any point before leaves the previous
commit record, which names only data that was already durable.

fsync costs about 5 ms per call on this project's ext4 disk, and a commit replaces about a dozen
files; fsyncs of one round are issued concurrently from a small thread pool, which the file
system's journal batches (measured: 27 ms instead of 82 ms for 8 files and 6 directories), so a
commit costs three rounds. `fsync=False` keeps the order but skips the syncs (tests, benchmarks).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

_pool: ThreadPoolExecutor | None = None
_POOL_THREADS = 8
OWNER_SUFFIX = ".owner"  # `.{name}.staging-<id>.owner`: the process that builds `.{name}.staging-<id>`


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def temporary_name(path: Path) -> Path:
    """A sibling temporary name; `*.partial` files are removed when a writer resumes a store."""
    return path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")


def make_directories(directory: Path) -> list[Path]:
    """`mkdir -p`; returns the parents whose entries changed (to fsync)."""
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    changed = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        changed.append(folder.parent)
    return changed


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or a directory by path (read-only descriptors suffice on POSIX). Writes nothing,
    so it may follow a link: a run's folder may be a link to another disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_all(paths: Iterable[str | os.PathLike]) -> None:
    """fsync every path, concurrently (one journal commit for all on ext4/xfs)."""
    global _pool
    unique = list(dict.fromkeys(str(p) for p in paths))
    if len(unique) <= 1:
        for path in unique:
            fsync_path(path)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(_POOL_THREADS, thread_name_prefix="fsync")
    for future in [_pool.submit(fsync_path, path) for path in unique]:
        future.result()  # re-raises the first OSError (e.g. EIO) in the caller


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def write_new_file(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Create `path` (it must not exist: never through a planted link) holding `data`.

    A failed write (disk full, quota, file size limit) removes the half-written file and raises
    the OSError with the file's name, so the command line prints it in one line.
    """
    fd = os.open(path, _CREATE_FLAGS, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException as error:
        os.close(fd)
        Path(path).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise
    os.close(fd)


def _write_temporary(path: Path, data: bytes) -> Path:
    temporary = temporary_name(path)
    write_new_file(temporary, data)
    return temporary


def replace_files(
    files: Sequence[tuple[Path, bytes]],
    last: tuple[Path, bytes] | None = None,
    *,
    fsync: bool = True,
    changed_directories: Iterable[Path] = (),
) -> None:
    """Replace `files` (path, bytes), then `last`, atomically; durable on return when `fsync`.

    `changed_directories` are extra directories whose entries changed since the last call (e.g.
    folders the caller created) and must be durable before `last` is replaced.
    """
    temporaries: list[tuple[Path, Path]] = []
    last_temporary = None
    try:
        for path, data in files:
            temporaries.append((_write_temporary(path, data), path))
        last_temporary = _write_temporary(last[0], last[1]) if last is not None else None
        if fsync:
            fsync_all([t for t, _ in temporaries] + ([last_temporary] if last_temporary else []))
        directories = set(changed_directories)
        for temporary, path in temporaries:
            os.replace(temporary, path)
            directories.add(path.parent)
        if fsync and directories:
            fsync_all(directories)
    except BaseException:
        for temporary, _ in temporaries:
            temporary.unlink(missing_ok=True)
        if last_temporary is not None:
            last_temporary.unlink(missing_ok=True)
        raise
    if last is not None:
        os.replace(last_temporary, last[0])
        if fsync:
            fsync_path(last[0].parent)


# ---- one file, atomically and durably ----

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
    """`.{name}.pid{P}.`: an `atomic_write` temporary names its writer's process, so the next writer
    of the same file can tell a leftover of a killed writer from a live one."""
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
    try:  # named before the pid was part of the name: stale once idle for 10 minutes
        return time.time() - tmp.lstat().st_mtime > _LEGACY_IDLE_SECONDS
    except FileNotFoundError:
        return False


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files killed writers of `path` left beside it; returns them."""
    path = Path(path)
    removed = []
    escaped = glob.escape(path.name)
    for pattern in (f".{escaped}.*.tmp", f".{escaped}.*.tmp.*"):
        for tmp in path.parent.glob(pattern):
            if _stale(tmp, path.name) and (tmp.is_symlink() or tmp.is_file()):
                tmp.unlink(missing_ok=True)  # a link is removed, never followed
                removed.append(tmp)
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, fsync: bool = True,
                 suffix: str = "") -> Path:
    """Call `write(tmp)` on a new temporary sibling of `path`, then rename it to `path`.

    With `fsync` (the default) the temporary is fsynced before the rename and the folder after it
    (and any folder created for it), so on return `path` holds the new content on stable storage.
    `fsync=False` only for files that are rewritten many times a second and that nothing needs
    after a crash. `suffix` ends the temporary's name (a writer that picks its format by the
    extension, e.g. ".mp4"). A `write` that raises leaves `path` unchanged and no temporary behind;
    temporaries of killed writers of `path` are removed first. The file's mode follows the umask."""
    path = Path(path)
    created = make_directories(path.parent)
    remove_stale_temporaries(path)
    handle, tmp_name = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp" + suffix, dir=path.parent)
    os.close(handle)  # created new (O_EXCL): never a planted link
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if fsync:
            fsync_path(tmp)
        os.chmod(tmp, file_mode())  # mkstemp creates 0600; results are shared (group, cluster)
        os.replace(tmp, path)  # replaces a link at `path`, never follows it
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_all([path.parent, *created])
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = True) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text), fsync=fsync)


def atomic_write_json(path: str | os.PathLike, data: Any, *, fsync: bool = True) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n", fsync=fsync)


def write_if_changed(path: str | os.PathLike, text: str) -> bool:
    """Atomically write `text` unless the file already holds it (keeps its mtime for Snakemake)."""
    path = Path(path)
    if path.is_file() and not path.is_symlink() and path.read_text() == text:
        return False
    atomic_write_text(path, text)
    return True


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, hex (checkpoint provenance and stage inputs)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


# ---- a whole folder ----

@contextmanager
def staged_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a hidden sibling name; rename it to `final` once the block ends.

    For outputs that must appear whole or not at all (an import, an export): a run killed midway
    leaves only the hidden `.{name}.staging-<id>` folder, which directory searches skip and which
    blocks no rerun; an exception removes it, and the next run for the same `final` on this host
    removes the folders of runs that no longer run (their owner file names the process). The files
    inside must be durable (fsynced) before the block ends; the rename is fsynced here. `final`
    must not exist (an empty folder is replaced).
    """
    from .store_lock import holder_alive, holder_record

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.staging-"
    for owner_file in final.parent.glob(glob_escape(prefix) + "*" + OWNER_SUFFIX):
        try:
            owner = json.loads(owner_file.read_text())
        except (OSError, ValueError):
            continue  # not ours to judge
        if isinstance(owner, dict) and owner.get("host") == socket.gethostname() and not holder_alive(owner):
            shutil.rmtree(owner_file.with_name(owner_file.name.removesuffix(OWNER_SUFFIX)), ignore_errors=True)
            owner_file.unlink(missing_ok=True)
    staging = final.parent / f"{prefix}{uuid.uuid4().hex[:12]}"
    owner_file = staging.with_name(staging.name + OWNER_SUFFIX)  # beside it: the folder holds only the output
    write_new_file(owner_file, json.dumps(holder_record()).encode())
    try:
        staging.mkdir()
        yield staging
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        owner_file.unlink(missing_ok=True)
    fsync_path(final.parent)
