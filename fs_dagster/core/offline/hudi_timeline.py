"""The writer's view of ``.hoodie/``: instant times, completed and pending instants, and rollback of pending ones.

Readers use hudi-rs for the timeline; the writer lists the folder itself because it must also see pending
(requested/inflight) instants, which hudi-rs hides.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fs_dagster.core.offline.hudi_properties import HOODIE_DIR

INSTANT_FORMAT = "%Y%m%d%H%M%S"
_INSTANT_FILE = re.compile(r"^(\d{17})\.(commit|commit\.requested|inflight|replacecommit.*|deltacommit.*|rollback.*|clean.*)$")
PARTITION_METADATA = ".hoodie_partition_metadata"
# write_atomically's temp files (``.<name>.tmp-<pid>``): under the write lock, any one found is a dead writer's
_STALE_TEMP = re.compile(r"^\..+\.tmp-\d+$")


def instant_to_datetime(instant: str) -> datetime:
    """``yyyyMMddHHmmssSSS`` (UTC) -> aware datetime."""
    base = datetime.strptime(instant[:14], INSTANT_FORMAT).replace(tzinfo=timezone.utc)
    return base + timedelta(milliseconds=int(instant[14:17] or 0))


def datetime_to_instant(moment: datetime) -> str:
    """Aware (or UTC-naive) datetime -> ``yyyyMMddHHmmssSSS``; sub-millisecond parts are dropped."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime(INSTANT_FORMAT) + f"{moment.microsecond // 1000:03d}"


@dataclass(frozen=True)
class TimelineState:
    completed: list[str]
    pending: list[str]

    @property
    def latest(self) -> str | None:
        return self.completed[-1] if self.completed else None

    def newest_any(self) -> str | None:
        every = self.completed + self.pending
        return max(every) if every else None


def scan(base_path: Path) -> TimelineState:
    """Lists commit instants: completed (a ``.commit`` file) and pending (requested/inflight without it)."""
    completed: set[str] = set()
    started: set[str] = set()
    for name in os.listdir(base_path / HOODIE_DIR):
        match = _INSTANT_FILE.match(name)
        if not match:
            continue
        instant, kind = match.groups()
        if kind == "commit":
            completed.add(instant)
        elif kind in ("commit.requested", "inflight"):
            started.add(instant)
    return TimelineState(completed=sorted(completed), pending=sorted(started - completed))


def next_instant(state: TimelineState, now: datetime | None = None) -> str:
    """A new instant: the current UTC time in milliseconds, pushed past every instant already on the timeline."""
    candidate = datetime_to_instant(now or datetime.now(timezone.utc))
    newest = state.newest_any()
    if newest is not None and candidate <= newest:
        candidate = datetime_to_instant(instant_to_datetime(newest) + timedelta(milliseconds=1))
    return candidate


def read_commit_metadata(base_path: Path, instant: str) -> dict[str, Any]:
    with open(base_path / HOODIE_DIR / f"{instant}.commit", encoding="utf-8") as handle:
        return json.load(handle)


def rollback_pending(base_path: Path, state: TimelineState) -> list[str]:
    """Removes everything pending instants wrote: data files, then the inflight, then the requested file.

    Order matters: were this interrupted, the instant stays pending and the next writer finishes the job.
    Returns the rolled-back instants.
    """
    if not state.pending:
        return []
    pending = set(state.pending)
    for dirpath, dirnames, filenames in os.walk(base_path):
        if HOODIE_DIR in dirnames:
            dirnames.remove(HOODIE_DIR)
        for name in filenames:
            if name.endswith(".parquet"):
                instant = name.rsplit("_", 1)[-1].split(".", 1)[0]
                if instant in pending:
                    os.remove(os.path.join(dirpath, name))
            elif _STALE_TEMP.match(name):  # e.g. a partition metadata file the writer was killed writing
                os.remove(os.path.join(dirpath, name))
        _remove_partition_if_only_created_by(Path(dirpath), filenames, pending, base_path)
    for name in os.listdir(base_path / HOODIE_DIR):
        if _STALE_TEMP.match(name):  # e.g. the <instant>.commit being published when the writer was killed
            os.remove(base_path / HOODIE_DIR / name)
    for instant in sorted(pending):
        for suffix in (".inflight", ".commit.requested"):
            try:
                os.remove(base_path / HOODIE_DIR / f"{instant}{suffix}")
            except FileNotFoundError:
                pass
    return sorted(pending)


def _remove_partition_if_only_created_by(folder: Path, filenames: list[str], pending: set[str], base: Path) -> None:
    """A partition folder created by a rolled-back instant (only its metadata file left) is removed too."""
    if folder == base:
        return
    if PARTITION_METADATA not in filenames:
        # killed while writing the metadata file of a new partition: its temp file (removed) was all there was
        if any(n.startswith(f".{PARTITION_METADATA}.tmp-") for n in filenames) and not os.listdir(folder):
            _remove_empty_folders(folder, base)
        return
    if any(name.endswith(".parquet") for name in os.listdir(folder)):
        return
    text = (folder / PARTITION_METADATA).read_text(encoding="utf-8", errors="replace")
    created = re.search(r"commitTime=(\d{17})", text)
    if created and created.group(1) in pending:
        os.remove(folder / PARTITION_METADATA)
        _remove_empty_folders(folder, base)


def _remove_empty_folders(folder: Path, base: Path) -> None:
    while folder != base:  # leaf first, then parents left empty (multi-level partitions)
        try:
            folder.rmdir()
        except OSError:
            return  # not empty: holds another partition
        folder = folder.parent
