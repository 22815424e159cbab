"""Which SQLMesh models are feature groups, and their :class:`FeatureGroupSpec`.

A model is a feature group when it carries the tag ``feature_group``. Everything else comes from the MODEL block,
each setting where SQLMesh already has a place for it::

    MODEL (
      name flight_features.route_delays,
      kind INCREMENTAL_BY_TIME_RANGE (time_column hour),   -- event time = the time column
      grain (origin, dest, hour),                          -- primary key
      tags (feature_group, online),                        -- a feature group; "online": synced to Valkey
      owner 'team:ml-platform',
      description 'Departure delays per route ...',        -- the group's description
      virtual_properties (fs_partition_key = ['origin'])   -- fs_* settings (below)
    );
    SELECT origin, -- Origin airport              (column comments: feature descriptions)
    ...

``fs_*`` virtual properties (all optional): ``fs_name`` (default: the model's table name), ``fs_version``
(default 1), ``fs_event_time`` (default: the time column; needed for other kinds to have one),
``fs_partition_key`` (a column or list), ``fs_online_ttl_seconds``, ``fs_statistics`` (default true). They are
metadata for SQLMesh (virtual properties are outside the model's fingerprint) and DuckDB ignores them on views.
"""

from __future__ import annotations

from typing import Any

from fs_dagster.core.errors import InvalidDataError, PipelineError
from fs_dagster.core.specs import Feature, FeatureGroupSpec
from fs_dagster.core.sqlmesh.models import ModelInfo

FEATURE_GROUP_TAG = "feature_group"
ONLINE_TAG = "online"
PROPERTY_PREFIX = "fs_"
PROPERTIES = {
    "fs_name": str,
    "fs_version": int,
    "fs_event_time": str,
    "fs_partition_key": (str, list),
    "fs_online_ttl_seconds": int,
    "fs_statistics": bool,
}


def is_feature_group(model: ModelInfo, tag: str = FEATURE_GROUP_TAG) -> bool:
    """Whether the model is marked as a feature group (its tags hold ``tag``)."""
    return tag in model.tags


def feature_group_spec(
    model: ModelInfo, *, tag: str = FEATURE_GROUP_TAG, online_tag: str = ONLINE_TAG
) -> FeatureGroupSpec | None:
    """The feature group a model defines, or None when it is not marked as one.

    Raises:
        PipelineError: naming the model (and its file) and the setting at fault: no grain, an unknown or
            mistyped ``fs_*`` property, a key/event-time/partition column the model does not output, an invalid
            name.
    """
    settings = {k: v for k, v in model.properties.items() if k.startswith(PROPERTY_PREFIX)}
    if not is_feature_group(model, tag):
        if settings:
            raise _error(model, f"has feature-group properties ({', '.join(sorted(settings))}) but not the tag "
                                f"{tag!r}; add it to the model's tags to make it a feature group")
        return None
    for key, value in settings.items():
        expected = PROPERTIES.get(key)
        if expected is None:
            raise _error(model, f"unknown property {key}; feature-group properties are {', '.join(PROPERTIES)}")
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise _error(model, f"property {key} = {value!r} should be {_type_text(expected)}")
    if not model.grain:
        raise _error(model, "has no grain: declare its primary key, e.g. grain (origin, dest, hour)")
    partition_key = settings.get("fs_partition_key", [])
    partition_key = [partition_key] if isinstance(partition_key, str) else list(partition_key)
    event_time = settings.get("fs_event_time", model.time_column)
    known = set(model.column_names)
    for role, columns in (("grain", model.grain), ("fs_partition_key", partition_key),
                          ("fs_event_time", [event_time] if event_time else [])):
        missing = [c for c in columns if known and c not in known]
        if missing:
            raise _error(model, f"{role} names column(s) {', '.join(missing)} that the model does not output "
                                f"(columns: {', '.join(model.column_names)})")
    tags = tuple(t for t in model.tags if t not in (tag, online_tag))
    try:
        return FeatureGroupSpec(
            name=settings.get("fs_name", model.parts[-1]),
            version=settings.get("fs_version", 1),
            primary_key=tuple(model.grain),
            event_time=event_time,
            partition_key=tuple(partition_key),
            online_enabled=online_tag in model.tags,
            online_ttl_seconds=settings.get("fs_online_ttl_seconds"),
            description=model.description,
            features=tuple(Feature(name, description=text) for name, text in model.column_descriptions.items()),
            tags=tags,
            owner=model.owner,
            statistics_enabled=settings.get("fs_statistics", True),
        )
    except InvalidDataError as error:
        raise _error(model, str(error)) from error


def _error(model: ModelInfo, text: str) -> PipelineError:
    where = f" ({model.path})" if model.path else ""
    return PipelineError(f"SQLMesh model {model.name}{where}: {text}")


def _type_text(expected: Any) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}
    if isinstance(expected, tuple):
        return " or ".join(names[e] for e in expected)
    return names[expected]
