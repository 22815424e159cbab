"""One writer per table at a time, across processes: an advisory ``flock`` on a file under ``.hoodie/``.

The kernel drops the lock when its holder dies (even by SIGKILL), so a crashed writer never blocks the table;
the next writer then rolls back what the crashed one left pending.
"""

from __future__ import annotations

from pathlib import Path

from fs_dagster.core.errors import TableLockedError
from fs_dagster.core.file_lock import FileLock
from fs_dagster.core.offline.hudi_properties import HOODIE_DIR

LOCK_FILE = ".fs_dagster_write.lock"


class TableWriteLock(FileLock):
    """Waits up to ``timeout`` seconds for the table's write lock, then raises ``TableLockedError``.

    Example:
        with TableWriteLock(base_path, timeout=30):
            ...  # the only writer of this table now
    """

    def __init__(self, base_path: Path, timeout: float = 60.0, poll_interval: float = 0.05) -> None:
        super().__init__(Path(base_path) / HOODIE_DIR / LOCK_FILE, timeout, poll_interval)

    def locked_error(self, holder: str) -> Exception:
        return TableLockedError(
            f"table {self.path.parent.parent} is being written by another writer (pid {holder}); "
            f"waited {self.timeout:.0f}s for {self.path}"
        )
