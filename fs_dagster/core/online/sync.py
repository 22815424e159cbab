"""Keeping the online store in step with the offline Hudi table of an online-enabled feature group.

Incremental by default: the last synced commit is recorded in Valkey next to the values (so a wiped or new server
has no marker and gets a full resync); rows written by later commits are read with a Hudi incremental query,
reduced to the latest row per online key, and written through the guarded set; keys deleted offline are deleted
online. A failed sync leaves the marker where it was, so the next sync repairs whatever was missed.

Time series (event time in the primary key, see :attr:`FeatureGroupSpec.online_key`) keep one online value per
entity, its latest row: rows are reduced to the latest per entity before they are written (a full sync too, file
by file; the guard settles entities across files). A deleted row may be the one an entity serves, so the entities
of deleted rows are settled again from the snapshot: each gets its latest remaining row, or is deleted if it has
none, unless a later commit wrote it meanwhile (see :meth:`OnlineStore.settle`). The sync marker lives under the
layout's key prefix, so a group whose online key changed (the schema id changes with it) gets a full resync.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from fs_dagster.core.offline.hudi_reader import HudiTableReader, _shared_database, quote_identifier
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
    return OnlineLayout.build(key_prefix, project, spec.name, spec.version, schema, spec.primary_key, spec.event_time,
                              spec.online_key)


def latest_per_key(rows: pa.Table, spec: FeatureGroupSpec) -> pa.Table:
    """One row per online key (:attr:`FeatureGroupSpec.online_key`: the primary key, or a time series' entity):
    largest event time, then latest commit (a key can live in several partitions)."""
    if rows.num_rows == 0:
        return rows
    key = list(spec.online_key)
    order = [(c, "ascending") for c in key]
    if spec.event_time:
        order.append((spec.event_time, "descending"))
    order.append((COMMIT_TIME, "descending"))
    rows = rows.sort_by(order)
    keys = rows.select(key)
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


def _settle_entities(
    spec: FeatureGroupSpec,
    reader: HudiTableReader,
    online: OnlineStore,
    layout: OnlineLayout,
    gone: pa.Table,
    rows: pa.Table,
    instant: str,
) -> tuple[int, int, pa.Table]:
    """Entities with deleted rows, settled again from the snapshot as of ``instant`` (the commit synced to): the
    deleted row may be the one an entity serves (then its latest remaining row must be served, or nothing), which
    the guard cannot do (it keeps the newer row). A time series' entity has a row per hour; a partitioned group's
    key lives in several partitions once its partition value changed. ``rows`` are the changed rows.

    Returns:
        (entities deleted online, entities whose value was replaced, ``rows`` without the settled entities: the
        snapshot they were settled from holds their changes already).
    """
    entity = list(spec.online_key)
    entities = gone.select(entity).group_by(entity).aggregate([])
    keys = layout.key_array(entities)
    survivors = latest_per_key(_snapshot_rows(reader, instant, entities, rows.schema), spec)
    data = survivors.drop_columns([COMMIT_TIME])
    deleted, replaced = online.settle(layout, keys, data, survivors[COMMIT_TIME], instant, spec.online_ttl_seconds)
    if rows.num_rows:
        rows = rows.filter(pc.invert(pc.is_in(layout.key_array(rows), value_set=keys)))
    return deleted, replaced, rows


def _snapshot_rows(reader: HudiTableReader, instant: str, entities: pa.Table, schema: pa.Schema) -> pa.Table:
    """The snapshot's rows (as of ``instant``; columns of ``schema``) of the entities in ``entities``."""
    relation = reader.snapshot_sql(instant)
    if relation is None:
        return schema.empty_table()
    name = f"__fs_entities_{uuid.uuid4().hex}"
    columns = ", ".join(quote_identifier(c) for c in schema.names)
    using = ", ".join(quote_identifier(c) for c in entities.column_names)
    connection = _shared_database().cursor()
    try:
        connection.execute("SET TimeZone='UTC'")
        connection.register(name, entities)
        found = connection.sql(f"SELECT {columns} FROM {relation} SEMI JOIN {quote_identifier(name)} "
                               f"USING ({using})").to_arrow_table()
    finally:
        connection.close()
    return found.cast(schema) if found.schema != schema else found


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
    deleted = settled = 0
    if incremental:
        rows = reader.read_changes(marker, latest, columns=[COMMIT_TIME, *data_columns], with_meta=False)
        gone = reader.deleted_keys(marker, latest, columns=list(spec.primary_key))
        if gone.num_rows and (spec.is_time_series or spec.partition_key):
            # the deleted row may be what the entity serves: settle it from the snapshot (a time series' latest
            # remaining hour; a key whose partition changed, its newest record in another partition)
            deleted, settled, rows = _settle_entities(spec, reader, online, layout, gone, rows, latest)
        elif gone.num_rows:
            still = latest_per_key(rows, spec)  # deleted, then written again within the synced commits
            gone_keys = set(layout.encode_keys(gone)) - set(layout.encode_keys(still))
            deleted = online.delete(sorted(gone_keys))
    else:
        # file by file, the next read while this one is written: keys are unique within a base file, so no
        # uniqueness pass is needed (a time series' file has many rows per entity: its latest is kept); a key in
        # several partitions (files) is settled by the guard (a batch with a key that exists goes to the guarded
        # script)
        offered = written = 0
        for part in reader.read_by_file(columns=[COMMIT_TIME, *data_columns], with_meta=False):
            offered += part.num_rows
            if spec.is_time_series:
                part = latest_per_key(part, spec)
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
        rows_offered=rows.num_rows + settled,
        keys_written=written + settled,
        keys_deleted=deleted,
        seconds=time.perf_counter() - started,
    )
