"""Feature views as Dagster assets, and the column schema and column lineage of views and training datasets.

A feature view's columns come from feature-group columns: the UI shows each view (and training dataset) column
with its type and role (serving key, join key, event time, feature, label) in ``dagster/column_schema``, and where
it comes from in ``dagster/column_lineage`` (the feature group's asset and column), so a column can be followed
from the training data back to the feature group that computes it.

Example:
    flight_delays = build_feature_view_asset(
        "flight_delays", 1, get_view=register_flight_delay_view,
        deps=["flight_outcomes", "weather_hourly"], owners=["team:ml-platform"],
    )
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from dagster import (
    AssetKey,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableColumnConstraints,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
    asset,
)

from fs_dagster.core.errors import FeatureStoreError
from fs_dagster.core.feature_view import FeatureView
from fs_dagster.core.specs import check_name, check_version
from fs_dagster.core.store import FeatureStore
from fs_dagster.errors import as_failure
from fs_dagster.translator import FeatureGroupTranslator, dagster_tags, valid_owners

METADATA_FEATURE_VIEW = "fs_dagster/feature_view"


@dataclass(frozen=True)
class ColumnOrigin:
    """One column of a view's data: its role(s), type, and the feature-group column it comes from (if any)."""

    name: str
    roles: tuple[str, ...]
    type: str
    feature_group: str | None  # source group (name) and version; None for a request key
    version: int | None
    source: str | None


def view_columns(view: FeatureView, names: Sequence[str] | None = None) -> list[ColumnOrigin]:
    """The view's columns (``names``: a training dataset's stored column order; default: serving keys, then
    features and labels), each with its role, type (from the source table, else its declared type) and source.

    Key columns come from the root feature group (a request key the root lacks has no source); features and labels
    from the group the view selects them from.
    """
    groups = {(s.feature_group, s.version): view._store.get_feature_group(s.feature_group, s.version)
              for s in view.selections}
    root = groups[(view.query.root.feature_group, view.query.root.version)]
    types: dict[tuple[str, int], dict[str, str]] = {}
    for key, fg in groups.items():
        declared = {f.name: f.type for f in fg.spec.features if f.type}
        stored = {f.name: str(f.type) for f in fg.schema()} if fg.exists() else {}
        types[key] = {**declared, **stored}
    by_name = {c.name: c for c in view.columns}
    serving, joins = set(view.serving_keys), set(view.join_keys)
    event_time = root.spec.event_time
    root_key = (root.spec.name, root.spec.version)
    root_columns = {*types[root_key], *root.spec.primary_key, *([event_time] if event_time else [])}
    wanted = list(names) if names is not None else list(dict.fromkeys(
        [*view.serving_keys, *(c.name for c in view.columns)]))
    out = []
    for name in wanted:
        roles = []
        if name in serving:
            roles.append("serving key")
        elif name in joins:
            roles.append("join key")
        if name == event_time:
            roles.append("event time")
        column = by_name.get(name)
        if column is not None:
            roles.append("label" if column.label else "feature")
            group_key, source = (column.feature_group, column.version), column.source
        elif name in root_columns:
            group_key, source = root_key, name
        else:  # a request key: carried by requests and spines, not stored in a feature group
            group_key, source = None, None
        type_text = types[group_key].get(source, "") if group_key is not None and source is not None else ""
        out.append(ColumnOrigin(name, tuple(roles), type_text,
                                group_key[0] if group_key else None, group_key[1] if group_key else None, source))
    return out


def column_schema(columns: Sequence[ColumnOrigin], types: Mapping[str, str] | None = None) -> TableSchema:
    """``dagster/column_schema`` of view / training data columns (``types``: actual types, e.g. of a file)."""
    return TableSchema(columns=[
        TableColumn(
            name=c.name,
            type=(types or {}).get(c.name) or c.type or "unknown",
            description=f"[{', '.join(c.roles)}]" + (f" from {c.feature_group}.{c.source}" if c.source else
                                                     " (request key)"),
            constraints=TableColumnConstraints(nullable="serving key" not in c.roles),
        )
        for c in columns
    ])


def column_lineage(view: FeatureView, columns: Sequence[ColumnOrigin],
                   translator: FeatureGroupTranslator | None = None) -> TableColumnLineage:
    """``dagster/column_lineage``: each column's feature-group asset and column."""
    translator = translator or FeatureGroupTranslator()
    keys: dict[tuple[str, int], AssetKey] = {}
    for selection in view.selections:
        fg = view._store.get_feature_group(selection.feature_group, selection.version)
        keys[(selection.feature_group, selection.version)] = translator.get_asset_key(fg.spec)
    deps = {}
    for c in columns:
        if c.feature_group is None or c.source is None or c.version is None:
            continue
        deps[c.name] = [TableColumnDep(asset_key=keys[(c.feature_group, c.version)], column_name=c.source)]
    return TableColumnLineage(deps)


def feature_view_metadata(view: FeatureView, translator: FeatureGroupTranslator | None = None) -> dict[str, Any]:
    """What a feature view's materialization shows: its definition, columns with roles and types, lineage."""
    columns = view_columns(view)
    return {
        METADATA_FEATURE_VIEW: MetadataValue.json(view.spec_dict()),
        "dagster/column_schema": column_schema(columns),
        "dagster/column_lineage": column_lineage(view, columns, translator),
        "fs_dagster/serving_keys": ", ".join(view.serving_keys),
        "fs_dagster/labels": ", ".join(view.labels) or "none",
        "fs_dagster/features": len(view.feature_names),
        "fs_dagster/transformations": MetadataValue.json(view.transformation_functions),
    }


def build_feature_view_asset(
    feature_view: str,
    feature_view_version: int,
    *,
    get_view: Callable[[FeatureStore], FeatureView] | None = None,
    deps: Sequence[AssetKey | str] = (),
    key: AssetKey | str | None = None,
    group_name: str = "feature_views",
    owners: Sequence[str] = (),
    tags: Sequence[str] = (),
    code_version: str | None = None,
    description: str | None = None,
    automation_condition: AutomationCondition | None = None,
    resource_key: str = "feature_store",
    translator: FeatureGroupTranslator | None = None,
) -> Any:
    """An asset that registers (idempotently) a feature view and shows its columns and lineage.

    Args:
        get_view: registers or loads the view (e.g. ``store.get_or_create_feature_view(...)`` over a query);
            default ``store.get_feature_view(feature_view, feature_view_version)``.
        deps: the feature groups the view reads.
        owners: e-mail addresses or ``team:`` names; tags: ``key=value`` or ``key`` (see ``dagster_tags``).
        code_version: default ``v<feature_view_version>`` (a new view version is new code).
    """
    check_name("feature view", feature_view)
    check_version("feature view", feature_view, feature_view_version)
    asset_key = AssetKey.from_coercible(key) if key is not None else AssetKey([feature_view])

    @asset(
        key=asset_key,
        deps=[AssetKey.from_coercible(d) for d in deps],
        group_name=group_name,
        kinds={"duckdb", "valkey"},
        owners=valid_owners(owners),
        tags=dagster_tags(tags, f"feature view {feature_view}"),
        code_version=code_version or f"v{feature_view_version}",
        description=description or f"Feature view {feature_view} v{feature_view_version} (registered in the "
        "feature store registry): columns, roles and lineage back to its feature groups.",
        automation_condition=automation_condition,
        required_resource_keys={resource_key},
        metadata={METADATA_FEATURE_VIEW: f"{feature_view} v{feature_view_version}"},
    )
    def _feature_view(context) -> MaterializeResult:  # no annotation: dagster inspects it
        store = getattr(context.resources, resource_key).get_store()
        try:
            view = get_view(store) if get_view else store.get_feature_view(feature_view, feature_view_version)
        except FeatureStoreError as error:
            raise as_failure(error) from error
        return MaterializeResult(metadata=feature_view_metadata(view, translator))

    return _feature_view

