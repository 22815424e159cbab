"""Writing a feature group from a Dagster step: partition window, commit, and the metadata that describes it.

Shared by :func:`feature_group_asset` (which returns the commit as the asset's data version) and
:class:`FeatureGroupIOManager` (for plain ``@asset`` functions that return a DataFrame).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pandas as pd
import pyarrow as pa
from dagster import TimeWindowPartitionsDefinition

from fs_dagster.core.commit_windows import combined_version
from fs_dagster.core.errors import FeatureStoreError
from fs_dagster.core.feature_group import FeatureGroup, RegistrySyncError, TimeWindow
from fs_dagster.core.monitoring.statistics import summarize
from fs_dagster.core.offline.hudi_writer import CommitResult
from fs_dagster.core.online.online_store import OnlineStoreUnavailable
from fs_dagster.core.specs import FeatureGroupSpec
from fs_dagster.core.store import FeatureStore
from fs_dagster.errors import FeatureStoreFailure, as_failure
from fs_dagster.metadata import commit_metadata, partition_metadata, preview, statistics_table


@dataclass(frozen=True)
class FeatureGroupCommit:
    """What a feature-group asset outputs once its data is committed (the IO manager has nothing left to write)."""

    feature_group: str
    version: int
    instant: str | None  # the new commit; None when nothing was committed (empty batch)
    data_version: str  # what the asset's data version becomes (see ``commit_feature_group``); "" for an empty table
    result: CommitResult
    online_error: str | None = None  # the online store could not be updated (the offline commit stands)
    # the registry did not record the commit, or its statistics failed (the offline commit stands)
    registry_error: str | None = None
    # the Dagster type check of the frame, run before the write (see fs_dagster.dataframe_type)
    type_check: Any = field(default=None, compare=False, repr=False)

    def failure(self) -> FeatureStoreFailure | None:
        """The step failure for what went wrong after the commit (None: nothing did): the commit is kept and
        materialized, but the run must not report success while the registry or the online store lag behind."""
        problems = [p for p in (self.registry_error, self.online_error and f"online sync failed: {self.online_error}")
                    if p]
        if not problems:
            return None
        return FeatureStoreFailure(
            description=f"feature group {self.feature_group}: commit {self.instant} written offline (kept), but "
            + "; ".join(problems),
            metadata={"fs_dagster/commit": self.instant or ""},
        )


@dataclass(frozen=True)
class CommitMetadata:
    """The metadata of one write: ``table`` for the output (the commit, table-wide numbers), and for a
    time-partitioned run ``partitions``: each partition's own figures, which Dagster puts on that partition's
    materialization over the output's (``add_asset_metadata(..., partition_key=...)``)."""

    table: dict[str, Any]
    partitions: dict[str, dict[str, Any]] = field(default_factory=dict)


def partition_window(context: Any) -> TimeWindow | None:
    """The event-time window of a time-partitioned run (one partition or a single-run backfill range)."""
    assets_def = getattr(context, "assets_def", None)
    partitions_def = assets_def.partitions_def if assets_def is not None else None
    if not isinstance(partitions_def, TimeWindowPartitionsDefinition):
        return None
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    window = context.partition_time_window
    return TimeWindow(start=window.start, end=window.end)


def partition_windows(partitions_def: Any, partition_keys: Sequence[str]) -> dict[str, TimeWindow]:
    """Each time partition's event-time window (empty for other partitions definitions)."""
    if not isinstance(partitions_def, TimeWindowPartitionsDefinition):
        return {}
    out = {}
    for key in partition_keys:
        window = partitions_def.time_window_for_partition_key(key)
        out[key] = TimeWindow(start=window.start, end=window.end)
    return out


def commit_feature_group(
    store: FeatureStore,
    spec: FeatureGroupSpec,
    data: Any,
    window: TimeWindow | None,
    partitions: Mapping[str, TimeWindow] | None = None,
) -> tuple[FeatureGroupCommit, CommitMetadata]:
    """Upserts ``data`` into the feature group and returns the commit with its materialization metadata.

    Args:
        window: the run's event-time window (rows outside it are refused).
        partitions: the time partitions the run writes and their windows (a single-run backfill has many); each
            gets its own figures, and the data version becomes the content version of their windows.

    Data version: for a time-partitioned run, the content version of the run's window (``<newest commit among
    its rows>/<rows>``, see :mod:`fs_dagster.core.commit_windows`): a commit leaving the window's rows alone leaves
    it unchanged. Otherwise the new commit, or when nothing was committed the table's latest commit.

    Raises:
        FeatureStoreFailure: the store refused the data (message names the column/value); nothing was written.
    """
    if not isinstance(data, (pd.DataFrame, pa.Table)):
        raise as_failure(
            FeatureStoreError(f"feature group {spec.name}: expected a pandas DataFrame or Arrow table, got {type(data).__name__}")
        )
    registry_error: RegistrySyncError | None = None
    try:
        # the asset's spec is the definition: changed settings (online_enabled...) are applied and reported
        fg: FeatureGroup = store.create_feature_group(spec)
        result = fg.insert(data, window=window, sync_online=False)
    except RegistrySyncError as error:  # committed: materialized below, then the step fails (FeatureGroupCommit)
        result, registry_error = error.result, error
    except FeatureStoreError as error:
        raise as_failure(error, feature_group=spec.key) from error
    # online just turned on (or its TTL changed): every key, not only this commit's, must be (re)written
    full = fg.spec.online_enabled and any(f in fg.definition_changes for f in ("online_enabled", "online_ttl_seconds"))
    online_error = _sync_online(fg, full) if fg.spec.online_enabled and (result.instant or (full and fg.exists())) else None
    latest = result.instant or fg.latest_commit()
    frame = data if isinstance(data, pd.DataFrame) else data.to_pandas()
    by_window = bool(partitions) and spec.event_time is not None
    metadata: dict[str, Any] = {}
    if fg.exists():
        metadata = commit_metadata(
            fg.spec,
            result,
            table_path=str(fg.path),
            project=store.project,
            schema=fg.schema(),
            row_count=fg.count(),
            latest_instant=latest,
            per_partition=by_window,
        )
        stats = fg.statistics() if fg.spec.statistics_enabled and not by_window and not registry_error else None
        if stats:
            metadata["fs_dagster/statistics"] = statistics_table(summarize(stats))
        if registry_error is not None:
            metadata["fs_dagster/registry_sync"] = f"failed: {registry_error}"
    if not by_window:
        metadata["fs_dagster/preview"] = preview(frame)
    if fg.spec.online_enabled:
        metadata.update(_online_metadata(fg, online_error))
    if fg.definition_changes:
        metadata["fs_dagster/definition_changes"] = "; ".join(
            f"{field}: {old!r} -> {new!r}" for field, (old, new) in fg.definition_changes.items()
        )
    data_version = latest or ""
    per_partition: dict[str, dict[str, Any]] = {}
    if by_window:
        assert partitions is not None and spec.event_time is not None
        keys = list(partitions)
        figures = fg.window_figures([partitions[k] for k in keys], instant=result.instant, batch=data,
                                    statistics=fg.spec.statistics_enabled and not registry_error)
        times = pd.to_datetime(frame[spec.event_time], utc=True)
        per_partition = {
            key: partition_metadata(f, frame, (times >= f.start) & (times < f.end)) for key, f in zip(keys, figures)
        }
        data_version = combined_version(figures)
    commit = FeatureGroupCommit(spec.name, spec.version, result.instant, data_version, result, online_error,
                                None if registry_error is None else str(registry_error))
    return commit, CommitMetadata(metadata, per_partition)


def _sync_online(fg: FeatureGroup, full: bool = False) -> str | None:
    """Syncs the new commit to Valkey; an unreachable store is reported (the commit stays) instead of raised."""
    try:
        fg.sync_online(full=full)
        return None
    except OnlineStoreUnavailable as error:
        return str(error)


def _online_metadata(fg: FeatureGroup, error: str | None) -> dict[str, Any]:
    sync = fg.last_online_sync
    if error is not None or sync is None:
        return {"fs_dagster/online_sync": f"failed: {error}; the next materialization or sync_online() repairs it"}
    return {
        "fs_dagster/online_sync": "full" if sync.full else "incremental",
        "fs_dagster/online_rows_synced": sync.rows_offered,
        "fs_dagster/online_keys_written": sync.keys_written,
        "fs_dagster/online_keys_deleted": sync.keys_deleted,
        "fs_dagster/online_sync_ms": round(sync.seconds * 1000, 2),
    }
