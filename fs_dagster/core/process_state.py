"""Whether a process runs, and its state and process group, from signals and ``/proc``: one answer for the embedded
Valkey server and for local deployments' processes."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def state_and_group(pid: int) -> tuple[str, int] | None:
    """The process's state letter (``R``, ``S``, ``Z`` ...) and process group id, or None if ``/proc`` does not say
    (gone, or another system)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # (after the command name, which may hold spaces)
    return fields[0], int(fields[2])


def alive(pid: int) -> bool:
    """True if ``pid`` runs: it takes signals and is not a zombie (dead, not yet reaped). A process that takes
    signals but whose ``/proc`` entry cannot be read (hidden, another system) counts as running: a caller waiting
    for it to end must not stop waiting early."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = state_and_group(pid)
    return state is None or state[0] != "Z"
