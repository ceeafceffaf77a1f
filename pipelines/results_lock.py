"""One running workflow per results folder: the lock file `{results}/.workflow.lock`.

Snakemake's own lock lives in its working folder, so two `snakemake` processes started from two
working folders with the same `paths.results` ran the same jobs at once: one's failed job deleted
the other's finished marker, and metrics were logged twice. The Snakefile's `onstart` therefore
takes this lock before any job runs and releases it when the workflow ends (dry runs, `--lint` and
planning take nothing). It follows the writer lock of a store (`datasets/store_lock.py`):

- the file is opened with `O_NOFOLLOW` and must be a plain file with one link, so a planted
  symlink or hard link never makes us write into another file;
- the holder keeps a `flock` on it, which the kernel drops when the holder dies however it dies,
  and writes a record of who it is (host, pid, process start, command);
- a second workflow gets one `ResultsLockedError` naming the holder; the lock of a workflow that
  was killed is free again and is taken over with a `StaleResultsLockWarning`.

Where the file system has no `flock`, the record decides: a holder on this host that no longer
runs is taken over; a holder on another host must be removed by hand once it is known to be dead.
"""

from __future__ import annotations

import errno
import os
import socket
import warnings
from pathlib import Path
from typing import Any

from dreamer_pipeline.datasets.store_lock import (
    describe_holder, holder_alive, holder_record, lock_file_problem, read_record, try_flock, write_record,
)

LOCK_NAME = ".workflow.lock"
_ATTEMPTS = 5


class ResultsLockedError(RuntimeError):
    """Another workflow runs on this results folder, or its lock file cannot be used."""


class StaleResultsLockWarning(UserWarning):
    """The lock of a workflow that is gone was taken over."""


class ResultsLock:
    """The lock of the results folder `results`: `acquire()` / `release()`, or a context manager."""

    def __init__(self, results: str | os.PathLike):
        self.results = Path(results)
        self.path = self.results / LOCK_NAME
        self.record: dict[str, Any] | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "ResultsLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> "ResultsLock":
        if self._fd is not None:
            return self
        self.results.mkdir(parents=True, exist_ok=True)
        for _ in range(_ATTEMPTS):
            if self._try():
                return self
        raise ResultsLockedError(f"results folder {self.results}: could not take its lock {self.path} (it keeps changing)")

    def release(self) -> None:
        """Remove the lock file if it is still ours, then drop the flock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._names(fd) and (read_record(fd) or {}).get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
        except OSError:
            pass  # the folder went away: nothing left to release
        finally:
            os.close(fd)

    # -- internals ---------------------------------------------------------------------------------
    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise ResultsLockedError(f"results folder {self.results}: its lock {self.path} is a symbolic link; "
                                         "remove it (a lock file is never followed)") from None
            raise
        problem = lock_file_problem(self.path, fd)
        if problem is not None and problem != "vanished":  # vanished: `_try` sees it and starts over
            os.close(fd)
            raise ResultsLockedError(f"results folder {self.results}: its lock {self.path} {problem}; remove it "
                                     "(a lock file is only ever a plain file this code creates)")
        return fd

    def _names(self, fd: int) -> bool:
        """Whether the lock's path still names the file `fd` is open on."""
        try:
            return os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _try(self) -> bool:
        fd = self._open()
        try:
            flocked = try_flock(fd)
            record = read_record(fd)
            if flocked is False:
                raise ResultsLockedError(self._busy(record))
            if not self._names(fd):
                os.close(fd)
                return False  # released (and maybe re-created) while we looked: start over
            if record is not None:
                self._check_gone(record, flocked)
            new = holder_record()
            write_record(fd, new)
        except BaseException:
            if self._fd != fd:
                try:
                    os.close(fd)
                except OSError:
                    pass
            raise
        self._fd, self.record = fd, new
        return True

    def _busy(self, record: dict[str, Any] | None) -> str:
        return (f"results folder {self.results} is in use by another workflow ({describe_holder(record)}); one "
                "results folder has one running workflow: wait for it to end, or stop it")

    def _check_gone(self, record: dict[str, Any], flocked: bool | None) -> None:
        """Return if the previous holder is gone (warning that its lock is taken over), else raise."""
        if flocked is None:  # no flock here: only a holder on this host can be checked
            if record.get("host") != socket.gethostname():
                raise ResultsLockedError(self._busy(record) + f" (if it is dead, remove {self.path})")
            if holder_alive(record):
                raise ResultsLockedError(self._busy(record))
        warnings.warn(f"results folder {self.results}: taking over the lock of a workflow that is gone "
                      f"({describe_holder(record)})", StaleResultsLockWarning, stacklevel=4)
