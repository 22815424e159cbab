"""Online/offline consistency: sampled keys of the latest Hudi snapshot compared with what Valkey serves."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

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


def _same(a: Any, b: Any) -> bool:
    if _null(a) and _null(b):
        return True
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
        except (TypeError, ValueError):
            return False
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a == b
    return a == b


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def check_consistency(fg: FeatureGroup, sample_size: int = 100, seed: int = 0) -> ConsistencyReport:
    """Samples up to ``sample_size`` rows of the latest snapshot and compares every column with the online row."""
    snapshot = fg.read(dataframe_type="arrow")
    if snapshot.num_rows == 0:
        return ConsistencyReport(0, 0)
    frame = snapshot.to_pandas()
    sample = frame.sample(n=min(sample_size, len(frame)), random_state=seed)
    keys = [tuple(row) for row in sample[list(fg.spec.primary_key)].itertuples(index=False)]
    online_rows = fg.get_online(keys)
    records = sample.to_dict("records")
    missing = 0
    mismatches: list[Mismatch] = []
    for key, offline, online in zip(keys, records, online_rows):
        if online is None:
            missing += 1
            continue
        for column, value in offline.items():
            online_value = online.get(column)
            offline_value = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
            if hasattr(offline_value, "item") and not isinstance(offline_value, (str, bytes)):
                offline_value = offline_value.item()
            if not _same(offline_value, online_value):
                mismatches.append(Mismatch(key, column, offline_value, online_value))
    return ConsistencyReport(len(keys), missing, mismatches)
