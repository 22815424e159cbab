"""Asset check comparing the online store with the offline table for sampled keys (online-enabled groups), after
verifying the offline table's files (a corrupt file fails the check with severity ERROR)."""

from __future__ import annotations

from typing import Sequence

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    MetadataValue,
    asset_check,
)

from fs_dagster.core.online.consistency import check_consistency
from fs_dagster.core.specs import FeatureGroupSpec
from fs_dagster.integrity_check import integrity_metadata
from fs_dagster.metadata import markdown_table
from fs_dagster.translator import FeatureGroupTranslator

CHECK_NAME = "online_offline_consistency"


def build_online_consistency_checks(
    specs: Sequence[FeatureGroupSpec],
    *,
    sample_size: int = 200,
    seed: int = 0,
    resource_key: str = "feature_store",
    translator: FeatureGroupTranslator | None = None,
) -> list[AssetChecksDefinition]:
    """One check per online-enabled feature group: ``sample_size`` keys of the latest snapshot must be served
    online with identical values; missing keys and mismatching values are listed in the check's metadata (severity
    WARN: the next sync repairs them). The offline table is verified first (``FeatureGroup.verify``): a bad file
    fails the check with severity ERROR and is named in the metadata, since the values compared may be wrong.

    Example:
        checks = build_online_consistency_checks([WEATHER_HOURLY, AIRCRAFT], sample_size=500)
    """
    translator = translator or FeatureGroupTranslator()
    checks = []
    for spec in specs:
        if not spec.online_enabled:
            continue
        checks.append(_check_for(spec, translator, sample_size, seed, resource_key))
    return checks


def _check_for(
    spec: FeatureGroupSpec, translator: FeatureGroupTranslator, sample_size: int, seed: int, resource_key: str
) -> AssetChecksDefinition:
    asset_key = translator.get_asset_spec(spec).key

    @asset_check(
        asset=asset_key,
        name=CHECK_NAME,
        description=f"{sample_size} sampled keys: online values equal the latest offline snapshot",
        required_resource_keys={resource_key},
    )
    def _consistency(context) -> AssetCheckResult:  # no annotation: dagster inspects it
        store = getattr(context.resources, resource_key).get_store()
        fg = store.get_feature_group(spec.name, spec.version)
        fg.sync_registry()
        integrity = fg.verify()
        report = check_consistency(fg, sample_size=sample_size, seed=seed)
        rows = [
            {"key": str(m.key), "column": m.column, "offline": str(m.offline), "online": str(m.online)}
            for m in report.mismatches[:100]
        ]
        return AssetCheckResult(
            passed=report.consistent and integrity.ok,
            severity=AssetCheckSeverity.WARN if integrity.ok else AssetCheckSeverity.ERROR,
            description=None if integrity.ok else (
                f"offline table: {len(integrity.bad_files)} bad file(s), first: {integrity.bad_files[0].path}"
            ),
            metadata={
                "sampled_keys": report.sampled,
                "missing_online": report.missing_online,
                "mismatching_values": len(report.mismatches),
                "mismatches": MetadataValue.md(markdown_table(rows) if rows else "_none_"),
                **{f"offline_{k}": v for k, v in integrity_metadata(integrity).items()},
            },
        )

    return _consistency
