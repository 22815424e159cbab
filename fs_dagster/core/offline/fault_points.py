"""Named points in the commit protocol where a test can kill the writer on purpose (crash-safety tests).

Set ``FS_DAGSTER_KILL_AT=<point>`` or ``<point>:<n>`` (the n-th time the point is reached) and the writer
process SIGKILLs itself there. Unset, a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "FS_DAGSTER_KILL_AT"
POINTS = (
    "after_rollback",
    "after_requested",
    "after_inflight",
    "after_partition_metadata",
    "after_data_file",
    "before_commit",
    "after_commit",
)
_hits: dict[str, int] = {}


def reached(point: str) -> None:
    """Marks a point of the protocol; kills this process when the environment asks for it."""
    wanted = os.environ.get(ENV_VAR)
    if not wanted:
        return
    name, _, nth = wanted.partition(":")
    if name != point:
        return
    _hits[point] = _hits.get(point, 0) + 1
    if _hits[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
