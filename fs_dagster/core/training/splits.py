"""How a training dataset's rows are divided into splits: at random with a seed, or by event-time ranges.

Both assignments are pure functions of the rows in their (deterministic) order, so a training dataset rebuilt
from the same pinned commits gets every row into the same split.

Example:
    RandomSplit({"train": 0.8, "test": 0.2}, seed=42)
    TimeSplit({"train": (None, datetime(2013, 10, 1, tzinfo=UTC)), "test": (datetime(2013, 10, 1, tzinfo=UTC), None)})
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fs_dagster.core.errors import InvalidDataError
from fs_dagster.core.specs import check_name

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_MICROSECOND = timedelta(microseconds=1)


def _check_names(names: list[str]) -> None:
    if not names:
        raise InvalidDataError("a split needs at least one named part, e.g. {'train': 0.8, 'test': 0.2}")
    for name in names:
        check_name("split", name)


def _uniform(n: int, seed: int) -> np.ndarray:
    """``n`` floats in [0, 1), the i-th a hash (SplitMix64) of ``(seed, i)``: the same on every platform and every
    numpy version (a seeded numpy generator promises no stream stability across releases)."""
    with np.errstate(over="ignore"):
        x = np.arange(n, dtype=np.uint64) + np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


@dataclass(frozen=True)
class RandomSplit:
    """Rows go to each part with the given probabilities (fractions summing to 1), decided by ``seed``.

    Args:
        fractions: part name -> fraction in (0, 1], e.g. ``{"train": 0.8, "test": 0.2}``; they must sum to 1.
        seed: an integer; the same seed puts the same rows (in the dataset's deterministic order) into the same
            parts on every rebuild and platform.
    """

    fractions: Mapping[str, float]
    seed: int = 0

    def __post_init__(self) -> None:
        names = list(self.fractions)
        _check_names(names)
        bad = {k: v for k, v in self.fractions.items() if not (isinstance(v, (int, float)) and 0 < v <= 1)}
        if bad:
            raise InvalidDataError(f"split fractions must be in (0, 1]: {bad}")
        total = math.fsum(self.fractions.values())
        if abs(total - 1.0) > 1e-9:
            raise InvalidDataError(f"split fractions must sum to 1, got {total} for {dict(self.fractions)}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise InvalidDataError(f"split seed must be an integer, got {self.seed!r}")

    @property
    def names(self) -> list[str]:
        return list(self.fractions)

    def assign(self, n: int, event_times: pa.Array | None = None) -> np.ndarray:
        """Part index of each of ``n`` rows (in the rows' order)."""
        bounds = np.cumsum(list(self.fractions.values()))[:-1]
        return np.searchsorted(bounds, _uniform(n, self.seed), side="right").astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "random", "fractions": dict(self.fractions), "seed": self.seed}


def _utc(value: datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidDataError(f"time split {what}: expected a datetime or None, got {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class TimeSplit:
    """Rows go to the part whose half-open event-time range ``[start, end)`` holds their event time (None: open
    end); rows in no range are left out. Ranges may not overlap.

    Args:
        ranges: part name (lower case, e.g. ``"train"``) -> ``(start, end)``: ``datetime`` bounds (naive = UTC,
            aware ones compared as instants) or ``None`` for an open end; ``start`` must be before ``end``. The
            time compared is the training row's event time: the root feature group's (or the spine's) event time.

    Raises:
        InvalidDataError: no part, a bad name, a bound that is not a datetime, an empty or reversed range, or two
            overlapping ranges (naming them).

    Example:
        .. code-block:: python

            cut = datetime(2013, 10, 1, tzinfo=timezone.utc)
            TimeSplit({"train": (None, cut), "test": (cut, None)})  # before October / from October on
            TimeSplit({"train": (jan, jul), "validation": (jul, oct), "test": (oct, None)})
    """

    ranges: Mapping[str, tuple[datetime | None, datetime | None]]
    _bounds: list[tuple[datetime | None, datetime | None]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_names(list(self.ranges))
        bounds = []
        for name, pair in self.ranges.items():
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise InvalidDataError(f"time split {name!r}: expected (start, end), got {pair!r}")
            start, end = _utc(pair[0], f"{name!r} start"), _utc(pair[1], f"{name!r} end")
            if start is not None and end is not None and start >= end:
                raise InvalidDataError(f"time split {name!r}: start {start} is not before end {end}")
            bounds.append((start, end))
        low = datetime.min.replace(tzinfo=timezone.utc)
        high = datetime.max.replace(tzinfo=timezone.utc)
        ordered = sorted(zip(self.ranges, bounds), key=lambda item: item[1][0] or low)
        for (a, (_, a_end)), (b, (b_start, _)) in zip(ordered, ordered[1:]):
            if (a_end or high) > (b_start or low):
                raise InvalidDataError(f"time splits {a!r} and {b!r} overlap")
        object.__setattr__(self, "_bounds", bounds)

    @property
    def names(self) -> list[str]:
        return list(self.ranges)

    def assign(self, n: int, event_times: pa.Array | None = None) -> np.ndarray:
        """Part index of each row by its event time; -1 for rows in no range (or without an event time)."""
        if event_times is None:
            raise InvalidDataError("a time split needs the rows' event times")
        micros = pc.cast(pc.cast(event_times, pa.timestamp("us", tz="UTC")), pa.int64())
        values = micros.to_numpy(zero_copy_only=False)
        valid = ~np.asarray(pc.is_null(micros).to_numpy(zero_copy_only=False), dtype=bool)
        out = np.full(n, -1, dtype=np.int64)
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        for index, (start, end) in enumerate(self._bounds):
            inside = valid.copy()
            if start is not None:
                inside &= values >= (start - epoch) // _MICROSECOND
            if end is not None:
                inside &= values < (end - epoch) // _MICROSECOND
            out[inside] = index
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "time",
            "ranges": {name: [None if b is None else b.isoformat() for b in pair]
                       for name, pair in zip(self.ranges, self._bounds)},
        }


Split = RandomSplit | TimeSplit


def split_from_dict(data: dict[str, Any] | None) -> Split | None:
    """The split a training dataset recorded (``to_dict``)."""
    if data is None:
        return None
    if data["kind"] == "random":
        return RandomSplit(dict(data["fractions"]), int(data["seed"]))
    if data["kind"] == "time":
        return TimeSplit({
            name: tuple(None if b is None else datetime.fromisoformat(b) for b in pair)
            for name, pair in data["ranges"].items()
        })
    raise InvalidDataError(f"unknown split kind {data['kind']!r}")
