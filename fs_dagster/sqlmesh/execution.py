"""One Dagster step of SQLMesh assets: run the selected models, then turn each outcome into Dagster events.

For each selected model (parents first):

- its audits become check results (a failed blocking audit is an ERROR, with the failing-row count, the audit
  query and a sample of the failing rows; a non-blocking one a WARN);
- a model that was computed and passed its blocking audits is materialized: a feature-group model's rows of the
  run's range are read back from SQLMesh's table and committed exactly as a Python feature group's
  (:func:`fs_dagster.materialization.commit_feature_group`: pandera if a schema is given, statistics, online sync,
  per-partition figures, data version); other models report their row count and SQLMesh's table;
- a failed or skipped model writes nothing; the step fails after every success was reported, naming them all.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Iterator, Mapping, Optional

import pyarrow as pa
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    TimeWindowPartitionsDefinition,
)

from fs_dagster.checks import validate_with_pandera
from fs_dagster.core.errors import FeatureStoreError
from fs_dagster.core.feature_group import TimeWindow
from fs_dagster.core.sqlmesh.project import AuditOutcome, ModelOutcome, RunReport
from fs_dagster.errors import FeatureStoreFailure, as_failure
from fs_dagster.materialization import commit_feature_group, partition_windows
from fs_dagster.resource import FeatureStoreResource
from fs_dagster.translator import PANDERA_CHECK_NAME, spec_from_metadata
from fs_dagster.sqlmesh.translator import MODEL_METADATA_KEY

# pandera schemas given to @sqlmesh_assets / build_sqlmesh_assets, by a token in the op's tags (schemas are Python
# objects, tags are text): the definitions module is imported in every process that runs the step, so the factory
# has registered them there too, and each definition finds its own even when one project is built twice
SCHEMAS_TAG = "fs_dagster/sqlmesh_schemas"
_SCHEMAS: dict[str, Mapping[str, Any]] = {}


def register_schemas(schemas: Optional[Mapping[str, Any]]) -> dict[str, str]:
    """The op tags that let a step find ``schemas`` (none when there are none)."""
    if not schemas:
        return {}
    token = uuid.uuid4().hex
    _SCHEMAS[token] = dict(schemas)
    return {SCHEMAS_TAG: token}


def execute(context: Any, resource: Any, feature_store: Optional[FeatureStoreResource],
            schemas: Optional[Mapping[str, Any]]) -> Iterator[Any]:
    """Runs the selected models of the step and yields MaterializeResults and AssetCheckResults."""
    assets_def = context.assets_def
    specs = {spec.key: spec for spec in assets_def.specs}
    selected = [key for key in specs if key in context.selected_asset_keys]
    fqns = {key: _value(specs[key].metadata[MODEL_METADATA_KEY]) for key in selected}
    groups = {key: spec_from_metadata(dict(specs[key].metadata)) for key in selected}
    if schemas is None:
        schemas = _SCHEMAS.get(str((context.op_def.tags or {}).get(SCHEMAS_TAG)), {})
    window, partitions = _window(context, assets_def.partitions_def)
    if any(groups.values()) and feature_store is None:
        feature_store = getattr(context.resources, "feature_store", None)
        if feature_store is None:
            raise FeatureStoreFailure(
                description="SQLMesh feature-group models need a feature store: set SQLMeshResource(feature_store="
                "...) or give the run a 'feature_store' resource"
            )
    project = resource.get_project()
    environment = resource.environment
    start, end = (window.start, window.end) if window else (None, None)
    rows: dict[AssetKey, pa.Table] = {}
    counts: dict[AssetKey, int] = {}
    tables: dict[AssetKey, str] = {}
    with project.session() as session:
        try:
            report = session.run(list(fqns.values()), start=start, end=end, environment=environment,
                                 restate=resource.restate, apply_changes=resource.apply_changes)
        except FeatureStoreError as error:
            raise as_failure(error) from error
        for key in selected:
            outcome = report.outcomes.get(fqns[key])
            if outcome is None or not outcome.ok:
                continue
            tables[key] = session.table_name(fqns[key], environment)
            if groups[key] is not None:
                rows[key] = session.fetch(fqns[key], start=start, end=end, environment=environment)
            else:
                counts[key] = session.count(fqns[key], start=start, end=end, environment=environment)
    context.log.info(_summary(report, project.load_seconds))
    failures: list[str] = []
    checks = set(context.selected_asset_check_keys)
    for key in selected:
        outcome = report.outcomes[fqns[key]]
        audit_results = [_audit_result(key, a, outcome.name) for a in outcome.audits]
        audit_results = [r for r in audit_results if _check_key(r) in checks]
        if not outcome.ok:
            yield from audit_results
            failures.append(f"{outcome.name}: {outcome.error or _blocking_text(outcome)}")
            continue
        base = _sqlmesh_metadata(outcome, report, tables[key], specs[key].metadata)
        group = groups[key]
        if group is None:
            yield MaterializeResult(asset_key=key, metadata={**base, "dagster/row_count": counts[key]})
            yield from audit_results
            continue
        data: Any = rows[key]
        schema = schemas.get(group.name, schemas.get(outcome.name)) if schemas else None
        validation = None
        if schema is not None:
            validation = validate_with_pandera(data.to_pandas(), schema, key, PANDERA_CHECK_NAME)
            if validation.blocks_write:
                yield from audit_results
                if _check_key(validation.result) in checks:
                    yield validation.result
                failures.append(f"{outcome.name}: pandera schema failed ({validation.result.description}); "
                                "nothing was written")
                continue
            data = validation.data
        commit, metadata = commit_feature_group(
            feature_store.get_store(), group, data, window, partitions  # type: ignore[union-attr]
        )
        for partition_key, partition_md in metadata.partitions.items():
            context.add_asset_metadata(partition_md, asset_key=key, partition_key=partition_key)
        yield MaterializeResult(
            asset_key=key,
            metadata={**base, **metadata.table},
            data_version=DataVersion(commit.data_version or "empty"),
        )
        yield from audit_results
        if validation is not None and _check_key(validation.result) in checks:
            yield validation.result
        failure = commit.failure()  # written offline; a registry, statistics or online gap must be seen
        if failure is not None:
            failures.append(f"{outcome.name}: {failure.description}")
    if failures:
        raise FeatureStoreFailure(
            description=f"SQLMesh: {len(failures)} of {len(selected)} model(s) not materialized: " + "; ".join(failures),
            metadata={"failed_models": MetadataValue.md("\n".join(f"- {f}" for f in failures))},
        )


def _window(context: Any, partitions_def: Any) -> tuple[TimeWindow | None, dict[str, TimeWindow]]:
    """The run's event-time window and its partitions' windows (none for unpartitioned assets)."""
    if not isinstance(partitions_def, TimeWindowPartitionsDefinition):
        return None, {}
    if not (context.has_partition_key or context.has_partition_key_range):
        return None, {}
    window = context.partition_time_window
    return TimeWindow(window.start, window.end), partition_windows(partitions_def, list(context.partition_keys))


def _audit_result(key: AssetKey, outcome: AuditOutcome, model: str) -> AssetCheckResult:
    audit = outcome.audit
    metadata: dict[str, Any] = {
        "num_failures": outcome.failing_rows or 0,
        "audit": f"{audit.name}({audit.arguments})",
    }
    if outcome.skipped:
        description = f"SQLMesh audit {audit.name} on {model} was skipped"
    elif outcome.passed:
        description = f"SQLMesh audit {audit.name} on {model} passed"
    else:
        description = f"SQLMesh audit {audit.name} on {model}: {outcome.failing_rows} row(s) failed"
        if outcome.query:
            metadata["audit_query"] = MetadataValue.md(f"```sql\n{outcome.query}\n```")
        if outcome.sample is not None:
            metadata["failing_rows"] = _table(outcome.sample)
    return AssetCheckResult(
        asset_key=key,
        check_name=audit.check_name,
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR if audit.blocking else AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


def _table(sample: pa.Table) -> MetadataValue:
    schema = TableSchema(columns=[TableColumn(f.name, str(f.type)) for f in sample.schema])
    records = [TableRecord({k: _plain(v) for k, v in row.items()}) for row in sample.to_pylist()]
    return MetadataValue.table(records=records, schema=schema)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _sqlmesh_metadata(outcome: ModelOutcome, report: RunReport, table: str,
                      definition: Mapping[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "fs_dagster/sqlmesh_environment": report.environment,
        "fs_dagster/sqlmesh_status": outcome.status,
        "fs_dagster/sqlmesh_table": table,
        "fs_dagster/sqlmesh_seconds": round(outcome.seconds, 3),
        "fs_dagster/sqlmesh_intervals": ", ".join(f"[{a.isoformat()}, {b.isoformat()})"
                                                   for a, b in outcome.intervals) or "none computed",
    }
    if report.also_evaluated:
        metadata["fs_dagster/sqlmesh_also_computed"] = ", ".join(report.also_evaluated)
    lineage = definition.get("dagster/column_lineage")
    if lineage is not None:
        metadata["dagster/column_lineage"] = lineage
    return metadata


def _blocking_text(outcome: ModelOutcome) -> str:
    failed = [f"{a.audit.name} ({a.failing_rows} rows)" for a in outcome.audits if a.blocks]
    return "blocking audit(s) failed: " + ", ".join(failed) + "; nothing was written"


def _summary(report: RunReport, load_seconds: float | None) -> str:
    parts = [f"{o.name}: {o.status}" + (f" ({o.error})" if o.error else "") for o in report.outcomes.values()]
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items())
    load = f"context load {load_seconds:.2f}s, " if load_seconds is not None else ""
    return f"SQLMesh environment {report.environment!r}: " + "; ".join(parts) + f" ({load}{timing})"


def _check_key(result: AssetCheckResult) -> AssetCheckKey:
    return AssetCheckKey(result.asset_key, result.check_name)


def _value(raw: Any) -> Any:
    return getattr(raw, "value", raw)

