"""One writer per table at a time, across processes: an advisory ``flock`` on a file under ``.hoodie/``.

The kernel drops the lock when its holder dies (even by SIGKILL), so a crashed writer never blocks the table;
the next writer then rolls back what the crashed one left pending.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from fs_dagster.core.errors import TableLockedError
from fs_dagster.core.offline.hudi_properties import HOODIE_DIR

LOCK_FILE = ".fs_dagster_write.lock"


class TableWriteLock:
    """Waits up to ``timeout`` seconds for the table's write lock, then raises ``TableLockedError``.

    Example:
        with TableWriteLock(base_path, timeout=30):
            ...  # the only writer of this table now
    """

    def __init__(self, base_path: Path, timeout: float = 60.0, poll_interval: float = 0.05) -> None:
        self.path = Path(base_path) / HOODIE_DIR / LOCK_FILE
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._fd: int | None = None

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
                    raise TableLockedError(
                        f"table {self.path.parent.parent} is being written by another writer (pid {holder}); "
                        f"waited {self.timeout:.0f}s for {self.path}"
                    ) from None
                time.sleep(self.poll_interval)
        try:  # the holder's pid only makes a TableLockedError more helpful: a full disk must not fail the write
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

    def __enter__(self) -> TableWriteLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
