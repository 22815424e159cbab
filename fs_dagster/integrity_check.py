"""Asset check of a feature group's offline table: every live base file present, the size and row count its commit
recorded, every page matching its checksum (``FeatureGroup.verify``). Snapshot reads (DuckDB) do not verify page
checksums, so this check is how damage at rest is found before a training dataset or a model is built on it."""

from __future__ import annotations

from typing import Any, Sequence

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset_check,
)

from fs_dagster.core.offline.hudi_verify import VerifyReport
from fs_dagster.core.specs import FeatureGroupSpec
from fs_dagster.translator import FeatureGroupTranslator

CHECK_NAME = "offline_integrity"
MAX_LISTED = 100


def build_offline_integrity_checks(
    specs: Sequence[FeatureGroupSpec],
    *,
    resource_key: str = "feature_store",
    translator: FeatureGroupTranslator | None = None,
) -> list[AssetChecksDefinition]:
    """One check per feature group: fails with severity ERROR naming each bad live base file. Not blocking: it
    reads the whole table, so run it on a schedule or after materializations (it is part of the asset's checks).

    Example:
        defs = Definitions(assets=[...], asset_checks=build_offline_integrity_checks(FEATURE_GROUP_SPECS))
    """
    translator = translator or FeatureGroupTranslator()
    return [_check_for(spec, translator, resource_key) for spec in specs]


def _check_for(spec: FeatureGroupSpec, translator: FeatureGroupTranslator, resource_key: str) -> AssetChecksDefinition:
    @asset_check(
        asset=translator.get_asset_spec(spec).key,
        name=CHECK_NAME,
        description="Every live file of the latest commit is present, of the recorded size and row count, and "
        "every page matches its checksum",
        required_resource_keys={resource_key},
    )
    def _integrity(context) -> AssetCheckResult:  # no annotation: dagster inspects it
        store = getattr(context.resources, resource_key).get_store()
        report = store.get_feature_group(spec.name, spec.version).verify()
        return AssetCheckResult(
            passed=report.ok,
            severity=AssetCheckSeverity.ERROR,
            description=None if report.ok else f"{len(report.bad_files)} bad file(s), first: {report.bad_files[0].path}",
            metadata=integrity_metadata(report),
        )

    return _integrity


def integrity_metadata(report: VerifyReport) -> dict[str, Any]:
    """What a verification found, as check metadata (also used by the online/offline consistency check)."""
    records = [TableRecord({"file": b.path, "reason": b.reason}) for b in report.bad_files[:MAX_LISTED]]
    return {
        "commit": report.instant or "",
        "files_checked": report.files_checked,
        "bytes_checked": report.bytes_checked,
        "rows_checked": report.rows_checked,
        "bad_files": len(report.bad_files),
        # a table, not shortened Markdown: the whole file name is what an operator needs
        "bad_file_list": MetadataValue.table(
            records=records, schema=TableSchema(columns=[TableColumn("file", "string"), TableColumn("reason", "string")])
        ),
        "files_without_checksums": len(report.files_without_checksums),
    }
