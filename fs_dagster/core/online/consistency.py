"""Online/offline consistency: sampled keys of the latest Hudi snapshot compared with what Valkey serves.

Values are compared as the offline table holds them (Arrow values, not pandas, which would turn nulls of a float
column into NaN): a null must be served as None and a NaN as NaN (NaN equals NaN here), so a store that turned one
into the other is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from fs_dagster.core.online.sync import COMMIT_TIME, latest_per_key

if TYPE_CHECKING:
    from fs_dagster.core.feature_group import FeatureGroup


@dataclass(frozen=True)
class Mismatch:
    key: tuple[Any, ...]
    column: str
    offline: Any
    online: Any


@dataclass(frozen=True)
class ConsistencyReport:
    sampled: int
    missing_online: int
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return self.missing_online == 0 and not self.mismatches


def same_value(a: Any, b: Any) -> bool:
    """Whether an offline value and an online value are the same feature value: None only equals None, NaN
    equals NaN (and nothing else), floats compare by value (-0.0 == 0.0), naive datetimes are UTC."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        try:
            x, y = float(a), float(b)
        except (TypeError, ValueError):
            return False
        if math.isnan(x) or math.isnan(y):
            return math.isnan(x) and math.isnan(y)
        return x == y or math.isclose(x, y, rel_tol=1e-12, abs_tol=0.0)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return _utc(a) == _utc(b)
    return a == b


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def check_consistency(fg: FeatureGroup, sample_size: int = 100, seed: int = 0) -> ConsistencyReport:
    """Samples up to ``sample_size`` rows of the latest snapshot and compares every column with the online row.

    A time series (:attr:`FeatureGroupSpec.online_key` is its entity) is sampled among its latest rows per entity,
    the rows the online store serves."""
    snapshot = _latest_per_entity(fg) if fg.spec.is_time_series else fg.read(dataframe_type="arrow")
    if snapshot.num_rows == 0:
        return ConsistencyReport(0, 0)
    n = snapshot.num_rows
    # (the rows pandas' DataFrame.sample picked before the comparison moved to Arrow values: same sample per seed)
    positions = pd.Series(range(n)).sample(n=min(sample_size, n), random_state=seed).to_numpy()
    records = snapshot.take(positions).to_pylist()
    keys = [tuple(record[c] for c in fg.spec.online_key) for record in records]
    online_rows = fg.get_online(keys)
    missing = 0
    mismatches: list[Mismatch] = []
    for key, offline, online in zip(keys, records, online_rows):
        if online is None:
            missing += 1
            continue
        for column, value in offline.items():
            online_value = online.get(column)
            if not same_value(value, online_value):
                mismatches.append(Mismatch(key, column, value, online_value))
    return ConsistencyReport(len(keys), missing, mismatches)


def _latest_per_entity(fg: FeatureGroup) -> pa.Table:
    """The latest snapshot's latest row per entity of a time series (as the online sync chooses it)."""
    reader = fg._reader()
    rows = reader.read(columns=[COMMIT_TIME, *reader.schema().names])
    return latest_per_key(rows, fg.spec).drop_columns([COMMIT_TIME])
