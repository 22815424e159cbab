"""The time ranges monitoring assets read: a window of a deployment's inference log (by request time) or of a
feature group (by event time), resolved when the asset runs.

- ``MonitoringWindow.last(days=7)``: the last week before the anchor. For an inference log the anchor is the run's
  time (the requests of the last week); for a feature group it is its newest event time (the last week of data,
  whatever the wall clock says: historical data and late feeds work the same).
- ``MonitoringWindow.since_deployed()``: since the deployment started serving its current model version (inference
  logs only; the default of :func:`~fs_dagster.drift_assets.build_deployment_drift_asset`).
- ``MonitoringWindow.between(start, end)``: fixed bounds (either may be None: open).
- ``MonitoringWindow.everything()``: no bounds.

A time-partitioned monitoring asset (``partitions_def=DailyPartitionsDefinition(...)``) reads its partition's
window instead, and Dagster shows one materialization (and one check result) per partition.

Example:
    build_deployment_drift_asset("delays_api", window=MonitoringWindow.last(hours=24))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from fs_dagster.core.errors import InvalidDataError

WindowKind = Literal["last", "between", "since_deployed", "everything"]


@dataclass(frozen=True)
class ResolvedWindow:
    """``[start, end)`` in UTC (None: open on that side), and how it was chosen (for metadata and reports)."""

    start: datetime | None
    end: datetime | None
    text: str

    def to_dict(self) -> dict[str, str | None]:
        return {"start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None, "window": self.text}


def _utc(value: datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidDataError(f"monitoring window: {what} must be a datetime, got {value!r}")
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


@dataclass(frozen=True)
class MonitoringWindow:
    """Which rows a monitoring asset reads (see module doc); build one with the class methods."""

    kind: WindowKind
    length: timedelta | None = None
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("last", "between", "since_deployed", "everything"):
            raise InvalidDataError(f"monitoring window: unknown kind {self.kind!r}")
        if self.kind == "last" and (self.length is None or self.length <= timedelta(0)):
            raise InvalidDataError(f"monitoring window: last(...) needs a positive length, got {self.length!r}")
        if self.kind == "between":
            start, end = _utc(self.start, "start"), _utc(self.end, "end")
            if start is not None and end is not None and start >= end:
                raise InvalidDataError(f"monitoring window: start {start.isoformat()} is not before end "
                                       f"{end.isoformat()}")

    @classmethod
    def last(cls, *, days: float = 0, hours: float = 0, minutes: float = 0) -> MonitoringWindow:
        """The last ``days + hours + minutes`` before the anchor (see module doc)."""
        return cls("last", length=timedelta(days=days, hours=hours, minutes=minutes))

    @classmethod
    def between(cls, start: datetime | None, end: datetime | None) -> MonitoringWindow:
        """``[start, end)``; naive datetimes are UTC."""
        return cls("between", start=_utc(start, "start"), end=_utc(end, "end"))

    @classmethod
    def since_deployed(cls) -> MonitoringWindow:
        """Since the deployment began serving its current model version (inference logs only)."""
        return cls("since_deployed")

    @classmethod
    def everything(cls) -> MonitoringWindow:
        return cls("everything")

    def resolve(self, anchor: datetime, deployed_at: datetime | None = None) -> ResolvedWindow:
        """The bounds at ``anchor`` (the run's time, or a feature group's newest event time).

        Raises:
            InvalidDataError: ``since_deployed`` without a deployment time.
        """
        anchor = _utc(anchor, "anchor")  # type: ignore[assignment]
        if self.kind == "last":
            assert self.length is not None
            return ResolvedWindow(anchor - self.length, anchor, f"last {_duration(self.length)}")
        if self.kind == "between":
            return ResolvedWindow(self.start, self.end, "between")
        if self.kind == "since_deployed":
            if deployed_at is None:
                raise InvalidDataError("monitoring window since_deployed() is for a deployment's inference log")
            return ResolvedWindow(_utc(deployed_at, "deployed_at"), None, "since deployed")
        return ResolvedWindow(None, None, "everything")

    def describe(self) -> str:
        if self.kind == "last":
            return f"the last {_duration(self.length)}"  # type: ignore[arg-type]
        if self.kind == "between":
            return (f"[{self.start.isoformat() if self.start else '-inf'}, "
                    f"{self.end.isoformat() if self.end else 'now'})")
        return {"since_deployed": "since the served version was deployed", "everything": "all rows"}[self.kind]


def _duration(length: timedelta) -> str:
    seconds = int(length.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return str(length)


def partition_window(context: object) -> ResolvedWindow | None:
    """The run's time-partition window (one partition or a range), or None for an unpartitioned run."""
    from fs_dagster.materialization import partition_window as event_time_window

    window = event_time_window(context)
    if window is None:
        return None
    key = context.partition_key if getattr(context, "has_partition_key", False) else None  # type: ignore[attr-defined]
    return ResolvedWindow(_utc(window.start, "start"), _utc(window.end, "end"),
                          f"partition {key}" if key else "partition range")
