"""An advisory ``flock`` on a file, across processes, with a bounded wait.

The kernel drops the lock when its holder dies (even by SIGKILL), so a crashed holder never blocks the next one.
The holder writes its pid into the file so that a timeout can say who holds the lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Self


class FileLock:
    """Waits up to ``timeout`` seconds for an exclusive lock on ``path`` (created if missing), then raises the
    error :meth:`locked_error` builds.

    Example:
        with FileLock(Path("/data/project.lock"), timeout=30):
            ...  # the only holder now
    """

    def __init__(self, path: Path, timeout: float = 60.0, poll_interval: float = 0.05) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._fd: int | None = None

    def locked_error(self, holder: str) -> Exception:
        """The error raised after waiting ``timeout`` seconds; ``holder`` is the holder's pid (or "unknown")."""
        return TimeoutError(f"{self.path} is locked by pid {holder}; waited {self.timeout:.0f}s")

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise self.locked_error(holder) from None
                time.sleep(self.poll_interval)
        try:  # the holder's pid only makes a timeout more helpful: a full disk must not fail the caller
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:
            pass
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
