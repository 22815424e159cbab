"""A feature view's offline data: its feature groups, read as of pinned commits, joined point-in-time correctly.

The spine is the view's root feature group (its rows, optionally within an event-time window) or a table of
entity keys + event times given by the caller. Every other feature group is joined on the view's join keys
as of the spine row's event time (see :mod:`.point_in_time`). A join key that is the joined group's own event
time (weather keyed by ``(origin, time_hour)``) is not matched exactly: it is the time dimension of the as-of
join, so a row gets the latest weather at or before its event time. Online serving looks the same row up by
the exact key the request carries, which is the same row whenever the request's key is that latest time.

Example:
    pinned = pin_commits(view)                      # {"weather_hourly:1": "20240101...", ...}
    table = read_view_data(view, pinned)            # keys, event time, features, labels
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from fs_dagster.core.errors import InvalidDataError
from fs_dagster.core.offline.hudi_reader import _shared_database, quote_identifier, sql_string
from fs_dagster.core.training.point_in_time import PointInTimeSource, point_in_time_join

if TYPE_CHECKING:
    from fs_dagster.core.feature_group import FeatureGroup
    from fs_dagster.core.feature_view import FeatureView

AsOf = str | datetime | None


def pin_commits(view: FeatureView, as_of: AsOf | dict[str, AsOf] = None) -> dict[str, str]:
    """The commit instant each of the view's feature groups is read at: the latest, the last one at or before
    ``as_of`` (a time or instant for all groups), or per group (``{"weather_hourly:1": instant}``).

    Raises:
        InvalidDataError: a feature group has no commit yet (nothing to train on), naming it.
    """
    pinned: dict[str, str] = {}
    for fg in _unique_groups(view):
        wanted = as_of.get(fg.spec.key) if isinstance(as_of, dict) else as_of
        instant = fg._reader().resolve_as_of(wanted) if wanted is not None else fg.latest_commit()
        if instant is None:
            raise InvalidDataError(
                f"feature view {view.name}: feature group {fg.spec.key} has no commit yet; write it first"
            )
        pinned[fg.spec.key] = instant
    if isinstance(as_of, dict):
        unknown = sorted(set(as_of) - set(pinned))
        if unknown:
            raise InvalidDataError(f"feature view {view.name}: as_of names unknown feature groups {unknown}; "
                                   f"its groups are {sorted(pinned)}")
    return pinned


def _unique_groups(view: FeatureView) -> list[FeatureGroup]:
    seen: dict[str, FeatureGroup] = {}
    for fg in view._groups:
        seen.setdefault(fg.spec.key, fg)
    return list(seen.values())


def event_time_column(view: FeatureView, spine: pa.Table | None = None, spine_event_time: str | None = None) -> str:
    """The spine's event-time column: the root group's event time, or the one named for a caller's spine."""
    root = view._groups[0].spec
    name = spine_event_time or root.event_time
    if name is None:
        raise InvalidDataError(
            f"feature view {view.name}: its root feature group {root.key} has no event time, so there is no "
            "point in time to join at; give a spine with an event-time column (spine_event_time=...)"
        )
    if spine is not None and name not in spine.column_names:
        raise InvalidDataError(f"feature view {view.name}: the spine has no event-time column {name!r}; "
                               f"it has {spine.column_names}")
    return name


def prepare_spine(view: FeatureView, spine: Any, spine_event_time: str | None = None) -> pa.Table:
    """A caller's spine (pandas or Arrow) as Arrow, with the join keys and the event time checked and typed.

    Columns without a type of their own (all-null, or any column of an empty spine: pandas types an empty column
    as it likes) take the root feature group's type (the event time: its type, else UTC microseconds), so an empty
    spine gives an empty result rather than a type error.

    Raises:
        InvalidDataError: not a table, a join key or the event time missing, naming the column.
    """
    if isinstance(spine, pa.Table):
        table = spine
    elif isinstance(spine, pd.DataFrame):
        try:
            table = pa.Table.from_pandas(spine, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidDataError(f"feature view {view.name}: the spine cannot be converted to Arrow: {exc}") from exc
    else:
        raise InvalidDataError(f"feature view {view.name}: the spine must be a pandas DataFrame or an Arrow table, "
                               f"got {type(spine).__name__}")
    time_column = event_time_column(view, table, spine_event_time)
    keys = key_columns(view)
    missing = [k for k in keys if k not in table.column_names]
    if missing:
        raise InvalidDataError(f"feature view {view.name}: the spine lacks serving key(s) {missing}; "
                               f"it needs {keys} and {time_column!r}")
    root = view._groups[0]
    root_schema = root.schema() if root.exists() else pa.schema([])
    for name in dict.fromkeys([*keys, time_column]):
        if table.schema.field(name).type != pa.null() and table.num_rows:
            continue
        if root_schema.get_field_index(name) >= 0 and (name != time_column or name == root.spec.event_time):
            wanted = root_schema.field(name).type
        elif name == time_column:
            wanted = pa.timestamp("us", tz="UTC")
        else:
            raise InvalidDataError(f"feature view {view.name}: spine column {name!r} has no values to tell its type")
        index = table.schema.get_field_index(name)
        values = table[name].cast(wanted) if table.num_rows else pa.chunked_array([], wanted)
        table = table.set_column(index, pa.field(name, wanted), values)
    return table


def key_columns(view: FeatureView) -> list[str]:
    """Columns that identify a row of the view's data: the root's primary key and every join's columns (the
    serving keys, plus join columns that are a joined time series' event time: the as-of dimension here)."""
    return list(view.join_keys)


def output_columns(view: FeatureView, event_time: str, labels: bool = True) -> list[str]:
    """Stored column order: join keys, event time, then features (and labels) in the view's order; a column
    that plays two parts (a feature that is also a key, an event time that is also a join key) is stored once."""
    names = list(dict.fromkeys([*key_columns(view), event_time]))
    for column in view.columns:
        if (labels or not column.label) and column.name not in names:
            names.append(column.name)
    return names


def read_view_data(
    view: FeatureView,
    pinned: dict[str, str],
    *,
    spine: pa.Table | None = None,
    spine_event_time: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    labels: bool = True,
) -> pa.Table:
    """Keys, event time, features (and labels) of every spine row, point-in-time joined (see module doc).

    Args:
        pinned: commit instant per feature group key (from :func:`pin_commits`).
        spine: entity keys + event times; None = the root feature group's rows as of its pinned commit.
        start, end: keep spine rows with ``start <= event time < end`` (root spine only).
        labels: include the label columns.
    """
    groups = view._groups
    root = groups[0]
    if spine is not None:
        spine = prepare_spine(view, spine, spine_event_time)
    time_column = event_time_column(view, spine, spine_event_time)
    keys = key_columns(view)
    root_columns = [c for c in view.columns if c.group_index == 0 and (labels or not c.label)]
    sources: list[PointInTimeSource] = []
    connection = _shared_database().cursor()
    connection.execute("SET TimeZone='UTC'")
    try:
        if spine is None:
            relation = _relation(root, pinned)
            wanted = list(dict.fromkeys([*keys, time_column, *(c.source for c in root_columns)]))
            missing = [c for c in wanted if c not in root.schema().names]
            if missing:
                raise InvalidDataError(f"feature view {view.name}: root feature group {root.spec.key} lacks {missing}")
            conditions = []
            if start is not None:
                conditions.append(f"{quote_identifier(time_column)} >= {_timestamp(start)}")
            if end is not None:
                conditions.append(f"{quote_identifier(time_column)} < {_timestamp(end)}")
            spine_input: Any = relation if not conditions else (
                f"(SELECT * FROM {relation} WHERE {' AND '.join(conditions)})"
            )
            spine_columns = wanted
        else:
            if start is not None or end is not None:
                raise InvalidDataError("start/end filter the root feature group's rows; filter your spine instead")
            spine_input = spine.select(list(dict.fromkeys([*keys, time_column])))
            spine_columns = list(spine_input.column_names)
            # (a root feature that is also a join key, like a join's carrier, comes with the spine already)
            from_root = [c for c in root_columns if c.name not in spine_columns]
            sources.append(_source(view, root, 0, pinned, from_root, list(root.spec.primary_key),
                                   list(root.spec.primary_key), None))
        for index, join in enumerate(view.query.joins, start=1):
            fg = groups[index]
            columns = [c for c in view.columns if c.group_index == index and (labels or not c.label)]
            sources.append(_source(view, fg, index, pinned, columns, list(join.left_on), list(join.right_on),
                                   join.lookback, join.lookback_inclusive))
        joined = point_in_time_join(connection, spine_input, time_column, sources, spine_columns=spine_columns)
    finally:
        connection.close()
    # (root features keep their names in the view: the root is never prefixed)
    return joined.select(output_columns(view, time_column, labels))


def _relation(fg: FeatureGroup, pinned: dict[str, str]) -> str:
    instant = pinned[fg.spec.key]
    relation = fg._reader().snapshot_sql(instant)
    if relation is None:
        raise InvalidDataError(f"feature group {fg.spec.key} has no rows as of commit {instant}")
    return relation


def _source(view: FeatureView, fg: FeatureGroup, index: int, pinned: dict[str, str], columns: list[Any],
            left_on: list[str], right_on: list[str], lookback: timedelta | None,
            lookback_inclusive: bool = False) -> PointInTimeSource:
    event_time = fg.spec.event_time
    # the joined group's own event time is the as-of dimension, not an exact match (see module doc)
    pairs = tuple((left, right) for left, right in zip(left_on, right_on) if right != event_time)
    return PointInTimeSource(
        name=fg.spec.key,
        relation=_relation(fg, pinned),
        on=pairs,
        event_time=event_time,
        columns=tuple((c.source, c.name) for c in columns),
        lookback=lookback,
        lookback_inclusive=lookback_inclusive,
        # keys + event time cover the primary key (a view joins on the whole key): no two rows can tie
        unique=set(fg.spec.primary_key) <= set(right_on) | {event_time},
    )


def _timestamp(value: datetime) -> str:
    if not isinstance(value, datetime):
        raise InvalidDataError(f"expected a datetime, got {value!r}")
    text = value.isoformat() if value.tzinfo else value.isoformat() + "+00:00"
    return f"{sql_string(text)}::TIMESTAMPTZ"
