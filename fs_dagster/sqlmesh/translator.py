"""``SQLMeshTranslator``: how SQLMesh models become Dagster asset specs, check specs and partitions.

Defaults: asset key ``[schema, table]`` (no catalog); feature-group models ``[feature group name]``, as Python
feature groups are keyed; the model's parents as deps (external tables included); ``code_version`` = the model's
SQLMesh fingerprint (``data_hash``); description, owner, tags, column schema (types, descriptions, key roles) and
column lineage from the model; one blocking check per blocking audit (non-blocking audits warn).
Incremental-by-time models are time-partitioned by their interval unit (or by the settings' partitions).

Customize one method, starting from the default spec:

Example:
    class MyTranslator(SQLMeshTranslator):
        def get_asset_spec(self, model, project):
            spec = super().get_asset_spec(model, project)
            if model.name == "raw.flights":            # an external table that is an asset of its own
                return spec.replace_attributes(key=AssetKey(["nycflights13", "flights"]))
            return spec.merge_attributes(tags={"team": "delays"})
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timezone
from typing import Any, Mapping, Optional

from dagster import (
    AssetCheckSpec,
    AssetKey,
    AssetSpec,
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    MonthlyPartitionsDefinition,
    PartitionsDefinition,
    TableColumn,
    TableColumnConstraints,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
    TimeWindowPartitionsDefinition,
    WeeklyPartitionsDefinition,
)

from fs_dagster.core.errors import PipelineError
from fs_dagster.core.specs import FeatureGroupSpec
from fs_dagster.core.sqlmesh.feature_groups import FEATURE_GROUP_TAG, ONLINE_TAG, feature_group_spec
from fs_dagster.core.sqlmesh.models import AuditInfo, ModelInfo
from fs_dagster.translator import FeatureGroupTranslator

MODEL_METADATA_KEY = "fs_dagster/sqlmesh_model"  # the model's fqn, how a run finds the model behind an asset
KIND_METADATA_KEY = "fs_dagster/sqlmesh_kind"
TAG_PREFIX = "sqlmesh.tag/"
_PARTITIONS_BY_UNIT = {
    "hour": HourlyPartitionsDefinition,
    "day": DailyPartitionsDefinition,
    "week": WeeklyPartitionsDefinition,
    "month": MonthlyPartitionsDefinition,
}


@dataclass(frozen=True)
class SQLMeshTranslatorSettings:
    """Switches of the default translation.

    Args:
        time_partitions_def: the partitions of every incremental-by-time model (e.g. the project's monthly
            partitions); default: one per model from its interval unit and start.
        enable_audit_checks: audits as asset checks.
        feature_group_tag / online_tag: the tags marking feature groups and online ones.
        group_name: every asset's group (default: the model's schema).
    """

    time_partitions_def: Optional[TimeWindowPartitionsDefinition] = None
    enable_audit_checks: bool = True
    feature_group_tag: str = FEATURE_GROUP_TAG
    online_tag: str = ONLINE_TAG
    group_name: Optional[str] = None


class SQLMeshTranslator:
    """Turns :class:`ModelInfo` into Dagster specs (see the module docstring for the defaults)."""

    def __init__(self, settings: SQLMeshTranslatorSettings | None = None) -> None:
        self.settings = settings or SQLMeshTranslatorSettings()
        self._specs: dict[str, tuple[ModelInfo, AssetSpec]] = {}

    def get_feature_group_spec(self, model: ModelInfo) -> FeatureGroupSpec | None:
        """The feature group the model defines (tags, grain, time column, ``fs_*`` properties), or None."""
        return feature_group_spec(model, tag=self.settings.feature_group_tag, online_tag=self.settings.online_tag)

    def get_partitions_def(self, model: ModelInfo) -> PartitionsDefinition | None:
        """Time partitions for incremental-by-time models (None for other kinds and external tables).

        Raises:
            PipelineError: the model has no start, or its intervals do not fit in the partitions.
        """
        if model.external or not model.time_partitioned:
            return None
        unit = model.interval_unit or "day"
        chosen = self.settings.time_partitions_def
        if chosen is None:
            cls = _PARTITIONS_BY_UNIT.get(unit)
            if cls is None:
                raise PipelineError(f"SQLMesh model {model.name}: no Dagster partitions for interval unit {unit!r}; "
                                    "set SQLMeshTranslatorSettings(time_partitions_def=...)")
            if model.start is None:
                raise PipelineError(f"SQLMesh model {model.name} has no start: give it one (MODEL ... start "
                                    "'2024-01-01') or a default in model_defaults, so it can be partitioned")
            fmt = "%Y-%m-%d-%H:%M" if unit == "hour" else "%Y-%m-%d"
            kwargs: dict[str, Any] = {"start_date": model.start.strftime(fmt)}
            if model.end is not None:
                kwargs["end_date"] = model.end.strftime(fmt)
            return cls(**kwargs)
        window = chosen.get_first_partition_window()
        for _ in range(3):  # every partition must hold whole intervals: its bounds on the unit's boundaries
            if window is None:
                break
            if not (_aligned(window.start, unit) and _aligned(window.end, unit)):
                raise PipelineError(
                    f"SQLMesh model {model.name} computes {unit} intervals, which do not fit in the partition "
                    f"{window.start.isoformat()} .. {window.end.isoformat()}: use partitions at least as coarse "
                    "as its interval unit"
                )
            window = chosen.get_next_partition_window(window.end)
        return chosen

    def get_asset_spec(self, model: ModelInfo, project: Mapping[str, ModelInfo]) -> AssetSpec:
        """The asset of a model (or of an external table). ``project`` holds every model by fqn (for deps)."""
        cached = self._specs.get(model.fqn)
        if cached is not None and cached[0] is model:  # (a project loaded again has new ModelInfo objects)
            return cached[1]
        group = self.get_feature_group_spec(model)
        deps = [self.get_asset_spec(project[p], project).key for p in model.parents if p in project]
        metadata: dict[str, Any] = {
            MODEL_METADATA_KEY: model.fqn,
            KIND_METADATA_KEY: model.kind,
            "dagster/table_name": model.name,
        }
        if model.columns:
            metadata["dagster/column_schema"] = column_schema(model, group)
        lineage = column_lineage(model, {fqn: self.get_asset_spec(project[fqn], project).key
                                         for fqn in model.parents if fqn in project})
        if lineage is not None:
            metadata["dagster/column_lineage"] = lineage
        kinds = {"sqlmesh", "duckdb"}
        key = AssetKey(list(model.parts))
        if group is not None:  # what FeatureGroupTranslator records, so the IO manager and checks find the group
            group_spec = FeatureGroupTranslator().get_asset_spec(group)
            metadata.update(group_spec.metadata)
            kinds |= set(group_spec.kinds)
            key = group_spec.key
        description = model.description or (
            f"External table {model.name}, read by SQLMesh models" if model.external
            else f"SQLMesh model {model.name} ({model.kind})"
        )
        spec = AssetSpec(
            key=key,
            deps=deps,
            description=description,
            group_name=self.settings.group_name or (model.parts[0] if len(model.parts) > 1 else "sqlmesh"),
            kinds=kinds if not model.external else {"duckdb"},
            owners=[model.owner] if model.owner and ("@" in model.owner or model.owner.startswith("team:")) else [],
            tags={TAG_PREFIX + t: "" for t in model.tags if _valid_tag(t)},
            code_version=model.data_hash,
            metadata=metadata,
            partitions_def=None if model.external else self.get_partitions_def(model),
        )
        self._specs[model.fqn] = (model, spec)
        return spec

    def get_asset_check_spec(self, audit: AuditInfo, model: ModelInfo, asset_key: AssetKey) -> AssetCheckSpec | None:
        """The check of one audit: blocking when the audit is (a failure then writes nothing)."""
        if not self.settings.enable_audit_checks:
            return None
        return AssetCheckSpec(
            name=audit.check_name,
            asset=asset_key,
            blocking=audit.blocking,
            description=audit.description + (": a failure stops the model and writes nothing" if audit.blocking else ""),
            metadata={"fs_dagster/sqlmesh_audit": audit.name, "fs_dagster/sqlmesh_audit_arguments": audit.arguments},
        )


def column_schema(model: ModelInfo, group: FeatureGroupSpec | None) -> TableSchema:
    """``dagster/column_schema`` from the model's columns, descriptions and (for feature groups) key roles."""
    columns = []
    for name, sql_type in model.columns:
        roles = []
        if name in model.grain:
            roles.append("primary key" if group is not None else "grain")
        if group is not None and name == group.event_time:
            roles.append("event time")
        if name == model.time_column and (group is None or name != group.event_time):
            roles.append("time column")
        description = model.column_descriptions.get(name, "")
        if roles:
            description = f"[{', '.join(roles)}] {description}".strip()
        columns.append(TableColumn(name=name, type=sql_type, description=description or None,
                                   constraints=TableColumnConstraints(nullable=name not in model.grain)))
    return TableSchema(columns=columns)


def column_lineage(model: ModelInfo, parent_keys: Mapping[str, AssetKey]) -> TableColumnLineage | None:
    """``dagster/column_lineage``: each column's source columns in the parents' assets."""
    deps_by_column = {}
    for column, sources in model.column_lineage.items():
        deps = [TableColumnDep(asset_key=parent_keys[p], column_name=c) for p, c in sources if p in parent_keys]
        if deps:
            deps_by_column[column] = deps
    return TableColumnLineage(deps_by_column=deps_by_column) if deps_by_column else None


def _valid_tag(tag: str) -> bool:
    return bool(tag) and len(tag) + len(TAG_PREFIX) <= 63 and all(c.isalnum() or c in "-_." for c in tag)


def _aligned(moment: Any, unit: str) -> bool:
    """Whether ``moment`` (UTC) starts a SQLMesh interval of ``unit``."""
    moment = moment.astimezone(timezone.utc)
    minute_step = {"five_minute": 5, "quarter_hour": 15, "half_hour": 30}.get(unit)
    if minute_step is not None:
        return moment.second == 0 and moment.microsecond == 0 and moment.minute % minute_step == 0
    hour_aligned = moment.minute == 0 and moment.second == 0 and moment.microsecond == 0
    if unit == "hour":
        return hour_aligned
    day_aligned = hour_aligned and moment.hour == 0
    if unit == "day":
        return day_aligned
    if unit == "month":
        return day_aligned and moment.day == 1
    if unit == "year":
        return day_aligned and moment.day == 1 and moment.month == 1
    return False
