"""Keeping the online store in step with the offline Hudi table of an online-enabled feature group.

Incremental by default: the last synced commit is recorded in Valkey next to the values (so a wiped or new server
has no marker and gets a full resync); rows written by later commits are read with a Hudi incremental query,
reduced to the latest row per primary key, and written through the guarded set; keys deleted offline are deleted
online. A failed sync leaves the marker where it was, so the next sync repairs whatever was missed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from fs_dagster.core.offline.hudi_reader import HudiTableReader
from fs_dagster.core.online.codec import OnlineLayout
from fs_dagster.core.online.online_store import OnlineStore
from fs_dagster.core.specs import FeatureGroupSpec

COMMIT_TIME = "_hoodie_commit_time"


@dataclass(frozen=True)
class OnlineSyncResult:
    """What one sync did: rows offered, keys written (newer than stored), keys deleted, and how long it took."""

    from_instant: str | None
    to_instant: str | None
    full: bool
    rows_offered: int
    keys_written: int
    keys_deleted: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows_offered / self.seconds if self.seconds > 0 else 0.0


def online_layout(spec: FeatureGroupSpec, schema: pa.Schema, project: str, key_prefix: str) -> OnlineLayout:
    return OnlineLayout.build(key_prefix, project, spec.name, spec.version, schema, spec.primary_key, spec.event_time)


def latest_per_key(rows: pa.Table, spec: FeatureGroupSpec) -> pa.Table:
    """One row per primary key: largest event time, then latest commit (a key can live in several partitions)."""
    if rows.num_rows == 0:
        return rows
    order = [(c, "ascending") for c in spec.primary_key]
    if spec.event_time:
        order.append((spec.event_time, "descending"))
    order.append((COMMIT_TIME, "descending"))
    rows = rows.sort_by(order)
    keys = rows.select(list(spec.primary_key))
    n = rows.num_rows
    if n == 1:
        return rows
    first = None
    for column in keys.columns:  # a row starts a new key when any key column differs from the previous row
        differs = pc.not_equal(column.slice(1), column.slice(0, n - 1))
        first = differs if first is None else pc.or_(first, differs)
    keep = pa.concat_arrays([pa.array([True]), first.combine_chunks()])
    return rows.filter(keep)


def _unique_keys(rows: pa.Table, layout: OnlineLayout) -> pa.Array | None:
    """The rows' keys if every row has its own key (the common case: then :func:`latest_per_key` has nothing to
    drop and its sort is skipped, and the write reuses the keys), else None. Rows with null keys take the sort
    (which drops them)."""
    if any(rows[c].null_count for c in layout.key_columns):
        return None
    keys = layout.key_array(rows)
    if rows.num_rows < 2 or len(pc.unique(keys)) == rows.num_rows:  # (unique: half the time of count_distinct)
        return keys
    return None


def _resettle_deleted(
    spec: FeatureGroupSpec,
    reader: HudiTableReader,
    online: OnlineStore,
    layout: OnlineLayout,
    gone: pa.Table,
    rows: pa.Table,
    data_columns: list[str],
) -> tuple[int, int, pa.Table]:
    """Keys deleted in some partition of a partitioned group: a key whose partition value changed lives in several
    partitions offline, and what it serves is its newest record among them. So each such key is settled again from
    the latest snapshot: deleted online, then its newest surviving record (if any) written. The guard alone cannot
    do it: the deleted record may be newer than the survivor, and a survivor need not be among the changed rows.

    Returns:
        (keys deleted for good, keys re-written from a surviving record, ``rows`` without the settled keys).
    """
    affected = pa.array(sorted(set(layout.encode_keys(gone))), pa.large_binary())
    survivors = latest_per_key(
        reader.read_records(pc.unique(gone["_hoodie_record_key"]), [COMMIT_TIME, *data_columns]), spec
    )
    online.delete(affected.to_pylist())
    rewritten = 0
    if survivors.num_rows:
        rewritten = online.write(layout, survivors.drop_columns([COMMIT_TIME]), survivors[COMMIT_TIME],
                                 spec.online_ttl_seconds, unique_keys=True)
    if rows.num_rows:  # their changed rows are in the snapshot the survivors came from: settled already
        rows = rows.filter(pc.invert(pc.is_in(layout.key_array(rows), value_set=affected)))
    return len(affected) - survivors.num_rows, rewritten, rows


def sync_feature_group(
    spec: FeatureGroupSpec,
    reader: HudiTableReader,
    online: OnlineStore,
    project: str,
    *,
    full: bool = False,
) -> OnlineSyncResult:
    """Brings the online store up to the table's latest commit (see module doc). Raises OnlineStoreUnavailable."""
    started = time.perf_counter()
    latest = reader.latest_instant()
    schema = reader.schema()
    layout = online_layout(spec, schema, project, online.config.key_prefix)
    marker = online.get_marker(layout.sync_marker_key)
    if latest is None or (marker == latest and not full):
        return OnlineSyncResult(marker, latest, False, 0, 0, 0, time.perf_counter() - started)
    incremental = marker is not None and not full and marker < latest
    data_columns = list(schema.names)
    deleted = resettled = 0
    if incremental:
        rows = reader.read_changes(marker, latest, columns=[COMMIT_TIME, *data_columns], with_meta=False)
        gone = reader.deleted_keys(marker, latest, columns=list(spec.primary_key))
        if gone.num_rows and spec.partition_key:
            deleted, resettled, rows = _resettle_deleted(spec, reader, online, layout, gone, rows, data_columns)
        elif gone.num_rows:
            still = latest_per_key(rows, spec)  # deleted, then written again within the synced commits
            gone_keys = set(layout.encode_keys(gone)) - set(layout.encode_keys(still))
            deleted = online.delete(sorted(gone_keys))
    else:
        # file by file, the next read while this one is written: keys are unique within a base file, so no
        # uniqueness pass is needed; a key in several partitions (files) is settled by the guard (a batch with a
        # key that exists goes to the guarded script)
        offered = written = 0
        for part in reader.read_by_file(columns=[COMMIT_TIME, *data_columns], with_meta=False):
            offered += part.num_rows
            written += online.write(layout, part.drop_columns([COMMIT_TIME]), part[COMMIT_TIME],
                                    spec.online_ttl_seconds, unique_keys=True)
        online.set_marker(layout.sync_marker_key, latest)
        return OnlineSyncResult(None, latest, True, offered, written, 0, time.perf_counter() - started)
    keys = _unique_keys(rows, layout)
    if keys is None:
        rows = latest_per_key(rows, spec)
    written = online.write(layout, rows.drop_columns([COMMIT_TIME]), rows[COMMIT_TIME], spec.online_ttl_seconds,
                           unique_keys=True, key_array=keys)  # (unique now)
    online.set_marker(layout.sync_marker_key, latest)
    return OnlineSyncResult(
        from_instant=marker if incremental else None,
        to_instant=latest,
        full=not incremental,
        rows_offered=rows.num_rows + resettled,
        keys_written=written + resettled,
        keys_deleted=deleted,
        seconds=time.perf_counter() - started,
    )
