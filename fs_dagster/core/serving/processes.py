"""Local server processes: who a recorded pid really is, its process group, and stopping that group.

A pid alone is a weak handle: after the server died (a crash, ``kill -9``, a reboot) the kernel hands the number to
some other program. A recorded server is therefore identified by four facts taken when it started: its pid, the
boot it ran in (``/proc/sys/kernel/random/boot_id``), its start time in clock ticks since that boot (field 22 of
``/proc/<pid>/stat``) and a marker that its command line contains. A recorded process is "ours" only if all four
still hold; anything else is stale state and is never signalled.

The server runs in its own session (``start_new_session=True``), so its pid is also its process-group id and one
``killpg`` reaches the gunicorn master, its workers and seldon's helper processes alike.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Any

from fs_dagster.core.process_state import PROC as _PROC
from fs_dagster.core.process_state import alive, state_and_group
_started: dict[int, subprocess.Popen] = {}  # servers this process started: reaped when stopped (no zombies)


@dataclass(frozen=True)
class ProcessRecord:
    """What identifies a started server process beyond its pid."""

    pid: int
    start_ticks: int
    boot_id: str
    marker: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProcessRecord | None:
        if not data:
            return None
        try:
            return cls(int(data["pid"]), int(data["start_ticks"]), str(data["boot_id"]), str(data["marker"]))
        except (KeyError, TypeError, ValueError):  # a half-written or foreign record: treated as no process
            return None


def boot_id() -> str:
    """This boot's id (changes at every restart of the machine), or "" where /proc does not have it."""
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (None: no such process)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces: split after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])  # field 22 overall


def command_line(pid: int) -> list[str]:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def record_for(pid: int, marker: str) -> ProcessRecord:
    """The identity of a process just started (its start time read from /proc now)."""
    ticks = start_ticks(pid)
    return ProcessRecord(pid=pid, start_ticks=ticks if ticks is not None else -1, boot_id=boot_id(), marker=marker)


def is_ours(record: ProcessRecord | None) -> bool:
    """True only if the recorded process still runs: same boot, same start time, the marker in its command line.

    A pid reused by an unrelated program (after a crash or a reboot) fails at least one of these checks, so callers
    never signal it.
    """
    if record is None or not alive(record.pid):
        return False
    if record.boot_id != boot_id() or start_ticks(record.pid) != record.start_ticks:
        return False
    return record.marker in command_line(record.pid)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        state = state_and_group(int(entry.name))
        if state is not None and state[1] == pgid and state[0] != "Z":
            members.append(int(entry.name))
    return sorted(members)


def remember(process: subprocess.Popen) -> None:
    """Keeps the Popen of a server this process started, so stopping it also reaps it."""
    _started[process.pid] = process


def reap(pid: int) -> None:
    process = _started.pop(pid, None)
    if process is not None:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def exited(pid: int) -> int | None:
    """The exit code of a server this process started that has exited, else None."""
    process = _started.get(pid)
    return None if process is None else process.poll()


def terminate_group(pgid: int, timeout: float = 20.0) -> list[int]:
    """Stops the group led by ``pgid``: SIGTERM to the leader first (gunicorn's graceful shutdown: workers finish
    their requests while seldon's metrics manager still answers them), SIGTERM to the whole group after half of
    ``timeout``, SIGKILL to what is left after ``timeout``.

    Returns the pids that had to be killed. The caller has checked with :func:`is_ours` that the group is ours.
    """
    try:
        os.kill(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    start = time.monotonic()
    group_signalled = False
    while time.monotonic() - start < timeout:
        reap_if_exited(pgid)
        if not group_members(pgid):
            reap(pgid)
            return []
        if not group_signalled and (time.monotonic() - start > timeout / 2 or not alive(pgid)):
            try:
                os.killpg(pgid, signal.SIGTERM)  # helpers left behind by the leader
            except ProcessLookupError:
                pass
            group_signalled = True
        time.sleep(0.05)
    left = group_members(pgid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    reap(pgid)
    return left


def reap_if_exited(pid: int) -> None:
    process = _started.get(pid)
    if process is not None and process.poll() is not None:
        _started.pop(pid, None)
