"""The files in a local deployment's home folder (``<root>/<project>/deployments/<name>/``) that the launching
process and the serving workers share.

- ``current.json``: which model version workers load (and the last good one to fall back to). Replaced atomically
  (``os.replace``), so a worker forked during a switch reads either the old or the new pointer, never half of one.
- ``loads.jsonl``: one line per ``load()`` in a worker (pid, version, ok/error, fallback). The switcher waits on it
  for the new workers to be ready; appends of one short line are atomic, so concurrent workers never interleave.
- ``server.log``: the server's stdout and stderr.
- ``lock``: serialises start/stop/switch of the deployment across processes (``flock``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fs_dagster.core.file_lock import FileLock

POINTER = "current.json"
LOADS = "loads.jsonl"
SERVER_LOG = "server.log"
LOCK = "lock"


@dataclass(frozen=True)
class Target:
    """A model version to serve, with the feature view to serve it with (None: the model's own)."""

    model_name: str
    model_version: int
    feature_view: tuple[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["feature_view"] = list(self.feature_view) if self.feature_view else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        view = data.get("feature_view")
        return cls(str(data["model_name"]), int(data["model_version"]),
                   (str(view[0]), int(view[1])) if view else None)

    def __str__(self) -> str:
        return f"{self.model_name} v{self.model_version}"


@dataclass(frozen=True)
class Pointer:
    current: Target
    last_good: Target | None = None


def write_pointer(home: Path, pointer: Pointer) -> None:
    data = {"current": pointer.current.to_dict(),
            "last_good": pointer.last_good.to_dict() if pointer.last_good else None}
    tmp = home / f".{POINTER}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, home / POINTER)


def read_pointer(home: Path) -> Pointer | None:
    try:
        data = json.loads((home / POINTER).read_text())
        return Pointer(Target.from_dict(data["current"]),
                       Target.from_dict(data["last_good"]) if data.get("last_good") else None)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_load(home: Path, target: Target | None, ok: bool, error: str = "", fallback_from: Target | None = None,
                ) -> None:
    line = {"pid": os.getpid(), "ppid": os.getppid(), "at": time.time(), "ok": ok,
            "model_name": target.model_name if target else None,
            "model_version": target.model_version if target else None,
            "error": error[:2000], "fallback_from": fallback_from.to_dict() if fallback_from else None}
    data = (json.dumps(line) + "\n").encode()
    fd = os.open(home / LOADS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_loads(home: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Load records written after byte ``offset``, and the offset after them."""
    try:
        with open(home / LOADS, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return [], offset
    complete = data[: data.rfind(b"\n") + 1]
    records = []
    for line in complete.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records, offset + len(complete)


def loads_size(home: Path) -> int:
    try:
        return (home / LOADS).stat().st_size
    except OSError:
        return 0


def locked(home: Path) -> FileLock:
    """The deployment's lock (``with locked(home): ...``), waited for as long as its holder works: a start or a
    rolling switch takes seconds, and giving up would leave the caller's change undone."""
    home.mkdir(parents=True, exist_ok=True)
    return FileLock(home / LOCK, timeout=math.inf)


def log_tail(home: Path, offset: int = 0, limit: int = 3000) -> str:
    try:
        with open(home / SERVER_LOG, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")[-limit:]
    except OSError:
        return "(no log)"
