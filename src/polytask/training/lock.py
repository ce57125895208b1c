"""One run per directory: an advisory lock (``fcntl.flock``) on ``run.lock`` in the run directory,
held for the run's life.

The operating system releases the lock when its process ends, however it ends, so the lock file
that a killed run leaves behind does not block the next one. A run that created its directory and
wrote nothing else into it removes the directory when it lets go (a run that failed before its
first file leaves nothing behind). Where ``fcntl`` is missing (Windows) runs are not locked.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .checkpoint import CheckpointError, writing

LOCK_FILE = "run.lock"


class RunLockedError(CheckpointError):
    """Another live process trains in this run directory."""


class RunLock:
    """The lock of ``run_dir`` (created if missing): ``with RunLock(run_dir): ...``, or
    :meth:`acquire` / :meth:`release`. The lock file holds the holder's PID."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: Optional[int] = None
        self._created_dir = False

    def acquire(self) -> None:
        """Take the lock now or raise :class:`RunLockedError` naming the holder's PID."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX
            return
        created = not self.run_dir.exists()
        while True:
            with writing(self.run_dir, "the run directory"):
                self.run_dir.mkdir(parents=True, exist_ok=True)
            with writing(self.path, "the run's lock file"):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise RunLockedError(f"{self.run_dir} is in use by process {holder} (lock {self.path}); "
                                     "wait for that run to end or choose another output_dir") from None
            if self._is_the_lock_file(fd):
                break
            os.close(fd)          # its holder removed it (and the empty directory) as we opened it
        self._created_dir = created
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        """Let the lock go. The file stays (its PID is stale from now on), unless this run created
        the directory and wrote nothing else: then both go, while the lock is still held."""
        if self._fd is None:
            return
        if self._created_dir:
            try:
                if [p.name for p in self.run_dir.iterdir()] == [LOCK_FILE]:
                    self.path.unlink()
                    self.run_dir.rmdir()
            except OSError:               # removed or changed under us: leave it as it is
                pass
        os.close(self._fd)                # closing the descriptor releases the flock
        self._fd = None

    def _is_the_lock_file(self, fd: int) -> bool:
        try:
            opened, named = os.fstat(fd), os.stat(self.path)
        except FileNotFoundError:
            return False
        return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
