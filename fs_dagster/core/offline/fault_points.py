"""Named points in the commit protocol where a test can kill the writer, or make storage fail, on purpose.

Set ``FS_DAGSTER_KILL_AT=<point>`` or ``<point>:<n>`` (the n-th time the point is reached) and the writer
process SIGKILLs itself there (crash-safety tests). ``FS_DAGSTER_FAIL_AT`` (same syntax) raises
``OSError(ENOSPC)`` there instead, as a full disk would (the writer must clean up and name the file): every time,
or with ``:<n>`` the n-th time only. Unset, a point costs two dict lookups.
"""

from __future__ import annotations

import errno
import os
import signal

ENV_VAR = "FS_DAGSTER_KILL_AT"
FAIL_ENV_VAR = "FS_DAGSTER_FAIL_AT"
POINTS = (
    "after_rollback",
    "after_requested",
    "after_inflight",
    "after_partition_metadata",
    "after_data_file",
    "before_commit",
    "after_commit",
)
_hits: dict[tuple[str, str], int] = {}  # (environment value, point) -> times reached


def reached(point: str) -> None:
    """Marks a point of the protocol; kills this process or raises ENOSPC when the environment asks for it."""
    for variable in (ENV_VAR, FAIL_ENV_VAR):
        wanted = os.environ.get(variable)
        if not wanted or not _due(wanted, point):
            continue
        if variable == ENV_VAR:
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (injected at {point})")


def _due(wanted: str, point: str) -> bool:
    name, _, nth = wanted.partition(":")
    if name != point:
        return False
    if not nth:
        return True
    key = (wanted, point)
    _hits[key] = _hits.get(key, 0) + 1
    return _hits[key] == int(nth)  # the n-th time only: a test's later writes go through


def reset() -> None:
    """Forgets how often each point was reached (tests that inject faults in their own process)."""
    _hits.clear()
