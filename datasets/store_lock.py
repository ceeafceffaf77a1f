"""One writer per store, enforced: an exclusive lock file inside the store, `writer.lock`.

`StoreWriter.open` takes it before it looks at the store, so every writer (collectors, prefill,
imports, online collectors) holds it for as long as it may write; readers never take it.

- The file is created with `O_EXCL` (atomic, also on NFS) and records who holds it: host, pid,
  the process's start time (kernel ticks since boot, so a reused pid is not mistaken for the
  holder), the boot id, the wall-clock start and the command line.
- The holder also keeps a `flock` on it where the file system supports it. The kernel drops a
  flock when its process dies, however it dies, so a free flock on a lock file whose holder
  record names this host means the holder is gone.
- A second writer gets one `StoreLockedError` naming the holder. A holder on this host that no
  longer runs is taken over with a `StaleLockWarning`. A holder on another host cannot be checked
  from here: taking its lock needs `break_lock=True` (`--break-lock`), after making sure it is dead.
  A record naming a live process on this host is taken with `break_lock` only where the free flock
  proves that process does not hold the lock (a reused pid); without flock it is refused, saying so.
- The lock file is never opened through a link: anyone who can write into a shared datasets
  folder could otherwise plant `writer.lock` as a symbolic or hard link to a file of their choice,
  which the next writer would truncate. It is opened with `O_NOFOLLOW` (and `O_CREAT | O_EXCL`
  when created) and `O_NONBLOCK` (a planted FIFO never blocks), and before a byte is written the
  opened file must be a regular file with one link, the very entry `store/writer.lock` (same device
  and inode as its `lstat`). Anything else is one `StoreError` naming the store and the lock file.

Releasing removes the file (only if it is still ours). A writer that is killed leaves the file
behind; the next writer on the same host takes it over.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import socket
import stat
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from .store_error import StoreError

try:
    import fcntl
except ImportError:  # not POSIX: the O_EXCL file and the holder record still apply
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "writer.lock"
_YOUNG_SECONDS = 10.0  # an empty lock file this young belongs to a writer that is starting up
_ATTEMPTS = 5
_MAX_RECORD_BYTES = 1 << 16


class StoreLockedError(StoreError):
    """Another writer holds the store's lock."""


class StaleLockWarning(UserWarning):
    """A lock of a writer that is gone was taken over."""


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _process_start(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (Linux), or None where /proc has no answer."""
    try:
        line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(line.rsplit(")", 1)[1].split()[19])  # field 22; the command name may hold spaces
    except (IndexError, ValueError):
        return None


def holder_record() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "process_start": _process_start(pid),
        "boot_id": _boot_id(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:300],
    }


def describe_holder(record: dict[str, Any] | None) -> str:
    if not record:
        return "a writer that is starting up (its lock file is still empty)"
    return (f"host {record.get('host')!r}, pid {record.get('pid')}, since {record.get('started')}"
            + (f", running {record['command']!r}" if record.get("command") else ""))


def holder_alive(record: dict[str, Any]) -> bool:
    """Whether the holder, a process on this host, still runs (pid, boot and start time agree)."""
    boot = _boot_id()
    if record.get("boot_id") and boot and record["boot_id"] != boot:
        return False  # the machine rebooted since
    try:
        pid = int(record.get("pid"))
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    started = record.get("process_start")
    now = _process_start(pid)
    return started is None or now is None or int(started) == now


_OPEN_FLAGS = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _open_lock(store: Path, path: Path, create: bool) -> int:
    """Open the lock file without following a link, and check it is a plain file of the store.

    Raises FileExistsError (create: it exists), FileNotFoundError (it vanished), or one
    `StoreError` for a link, a hard link or anything but a regular file.
    """
    flags = _OPEN_FLAGS | (os.O_CREAT | os.O_EXCL if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP or (error.errno == errno.EEXIST and path.is_symlink()):
            raise _foreign_lock(store, path, "is a symbolic link") from None
        if error.errno in (errno.ENXIO, errno.EISDIR, errno.ENODEV):
            raise _foreign_lock(store, path, "is not a regular file") from None
        raise
    try:
        problem = lock_file_problem(path, fd)
    except BaseException:
        os.close(fd)
        raise
    if problem == "vanished":
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "the lock file was removed while it was opened", str(path))
    if problem is not None:
        os.close(fd)
        raise _foreign_lock(store, path, problem)
    return fd


# try_flock, read_record, write_record and lock_file_problem serve every lock file of the project
# (also pipelines/results_lock.py): one way to hold, check and describe a lock.

def lock_file_problem(path: Path, fd: int) -> str | None:
    """What makes the opened `fd` unfit to be `path`'s lock file (None: fit; "vanished": gone)."""
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode):
        return "is not a regular file"
    if opened.st_nlink > 1:
        return (f"has {opened.st_nlink} hard links, not the one link of a lock file (another name for the same "
                "file exists, maybe outside this folder)")
    try:
        entry = os.lstat(path)
    except FileNotFoundError:
        return "vanished"
    if (entry.st_dev, entry.st_ino) != (opened.st_dev, opened.st_ino):
        return "was replaced while it was opened"
    return None


def _foreign_lock(store: Path, path: Path, problem: str) -> StoreError:
    return StoreError(store, f"its writer lock {path} {problem}; refusing to open it (a lock file is only ever a "
                             "plain file this code creates). Check who put it there, then remove it")


def try_flock(fd: int) -> bool | None:
    """True: we hold the flock now. False: another process holds it. None: no flock here."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        return None  # ENOLCK, EOPNOTSUPP, EINVAL: the file system has no flock


def read_record(fd: int) -> dict[str, Any] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while len(data) <= _MAX_RECORD_BYTES and (chunk := os.read(fd, 65536)):
        data += chunk
    if len(data) > _MAX_RECORD_BYTES:
        return None  # not a record we wrote (a few hundred bytes)
    try:
        record = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def write_record(fd: int, record: dict[str, Any]) -> None:
    data = (json.dumps(record, indent=1) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


class StoreLock:
    """The write lock of the store at `store`: `acquire()` / `release()`, or a context manager."""

    def __init__(self, store: str | os.PathLike, *, break_lock: bool = False):
        self.store = Path(store)
        self.path = self.store / LOCK_NAME
        self.break_lock = break_lock
        self.record: dict[str, Any] | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "StoreLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> "StoreLock":
        if self._fd is not None:
            return self
        self.store.mkdir(parents=True, exist_ok=True)
        for _ in range(_ATTEMPTS):
            if self._create() or self._take_over():
                return self
        raise StoreLockedError(self.store, f"could not take the writer lock {self.path} (it keeps changing)")

    def release(self) -> None:
        """Remove the lock file if it is still ours, then drop the flock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._is_ours(fd):
                self.path.unlink(missing_ok=True)
        except OSError:
            pass  # the store was removed or moved away with its lock: nothing left to release
        finally:
            os.close(fd)

    def moved(self, new_store: str | os.PathLike) -> None:
        """The store directory was renamed (with this lock inside) to `new_store`."""
        self.store = Path(new_store)
        self.path = self.store / LOCK_NAME

    # -- internals ---------------------------------------------------------------------------------
    def _create(self) -> bool:
        try:
            fd = _open_lock(self.store, self.path, create=True)
        except (FileExistsError, FileNotFoundError):
            return False
        try_flock(fd)
        record = holder_record()
        try:
            write_record(fd, record)
        except BaseException:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        self._fd, self.record = fd, record
        return True

    def _take_over(self) -> bool:
        """The lock file exists: raise if its holder may be alive, else make it ours."""
        try:
            fd = _open_lock(self.store, self.path, create=False)
        except FileNotFoundError:
            return False  # released meanwhile: try to create it again
        try:
            flock = try_flock(fd)
            record = read_record(fd)
            if flock is False:
                raise StoreLockedError(self.store, f"is being written by another writer ({describe_holder(record)})")
            if not self._same_file(fd):
                os.close(fd)
                return False  # released (and maybe re-created) while we looked: start over
            self._check_stale(fd, record, flock)
            new = holder_record()
            write_record(fd, new)
        except BaseException:
            if self._fd != fd:
                os.close(fd)
            raise
        self._fd, self.record = fd, new
        return True

    def _check_stale(self, fd: int, record: dict[str, Any] | None, flock: bool | None) -> None:
        """Return if the holder is certainly gone (or break_lock is set); warn when taking over.

        `flock` True means we now hold the file's flock, so no live process holds it."""
        here = socket.gethostname()
        if record is None:
            age = time.time() - os.fstat(fd).st_mtime
            if age < _YOUNG_SECONDS and not self.break_lock:
                raise StoreLockedError(self.store, f"is being written by another writer ({describe_holder(None)})")
            reason = f"its lock file {self.path} holds no holder record (a writer killed while starting)"
        elif record.get("host") == here:
            if holder_alive(record):
                if not self.break_lock:
                    raise StoreLockedError(
                        self.store, f"is being written by another writer ({describe_holder(record)}); "
                        "one store has one writer: wait for it, or stop it")
                if flock is not True:  # nothing proves the live process is not writing
                    raise StoreLockedError(
                        self.store, f"is locked by pid {record.get('pid')} on this host, which is alive "
                        f"({describe_holder(record)}); --break-lock only takes the lock of a writer that cannot "
                        "be checked from here (another host) or holds no flock on it: stop that process first")
                reason = (f"--break-lock was given, and pid {record.get('pid')} named by the lock, though alive, "
                          "holds no lock on the file (a reused pid)")
            else:
                reason = f"its writer ({describe_holder(record)}) is no longer running"
        elif self.break_lock:
            reason = f"--break-lock was given for the writer on another host ({describe_holder(record)})"
        else:
            raise StoreLockedError(
                self.store, f"is locked by a writer on another host ({describe_holder(record)}). If that "
                f"writer is dead, rerun with --break-lock (break_lock=True) to take its lock {self.path}")
        warnings.warn(f"experience store {self.store}: taking over the writer lock: {reason}",
                      StaleLockWarning, stacklevel=4)

    def _same_file(self, fd: int) -> bool:
        try:
            entry, opened = os.lstat(self.path), os.fstat(fd)
        except FileNotFoundError:
            return False
        return (entry.st_dev, entry.st_ino) == (opened.st_dev, opened.st_ino)

    def _is_ours(self, fd: int) -> bool:
        if not self._same_file(fd):
            return False
        record = read_record(fd)
        return record is not None and self.record is not None and record.get("pid") == self.record.get("pid") \
            and record.get("started") == self.record.get("started") and record.get("host") == self.record.get("host")
