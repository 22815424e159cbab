"""Sensors of the plugin: commits written outside Dagster (Python API, notebooks, Spark) become visible.

A feature group written by ``fs.get_feature_group(...).insert(df)`` outside a Dagster run changes the data
that downstream assets read; the sensor reports such commits as materializations of the feature-group asset
(with the commit instant as data version), so downstream assets show as stale and lineage stays complete.
"""

from __future__ import annotations

import json
from typing import Sequence

from dagster import (
    AssetKey,
    AssetMaterialization,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from fs_dagster.core.errors import FeatureStoreError
from fs_dagster.core.specs import FeatureGroupSpec
from fs_dagster.translator import FeatureGroupTranslator

DATA_VERSION_TAG = "dagster/data_version"


def build_external_commit_sensor(
    specs: Sequence[FeatureGroupSpec],
    *,
    name: str = "feature_group_external_commits",
    resource_key: str = "feature_store",
    translator: FeatureGroupTranslator | None = None,
    minimum_interval_seconds: int = 60,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> SensorDefinition:
    """A sensor reporting Hudi commits of ``specs`` that no Dagster materialization recorded.

    The cursor holds the last instant seen per feature group, so each commit is reported once.

    Example:
        sensors = [build_external_commit_sensor([WEATHER_HOURLY, AIRCRAFT])]
    """
    translator = translator or FeatureGroupTranslator()
    keys = {spec.key: translator.get_asset_spec(spec).key for spec in specs}

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        required_resource_keys={resource_key},
        description="Reports feature-group commits written outside Dagster as materializations.",
    )
    def _external_commits(context: SensorEvaluationContext) -> SensorResult:
        store = getattr(context.resources, resource_key).get_store()
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        events = []
        for spec in specs:
            try:
                fg = store.get_feature_group(spec.name, spec.version)
                commits = fg.commit_details()
            except FeatureStoreError:
                continue  # not registered or no data yet
            seen = cursor.get(spec.key, "")
            recorded = _recorded_commits(context, keys[spec.key])
            for commit in reversed(commits):  # oldest first
                if commit.instant <= seen:
                    continue
                if commit.instant not in recorded:
                    events.append(
                        AssetMaterialization(
                            asset_key=keys[spec.key],
                            description=f"commit {commit.instant} written outside Dagster",
                            metadata={
                                "fs_dagster/commit": commit.instant,
                                "fs_dagster/operation": commit.operation,
                                "fs_dagster/rows_inserted": commit.rows_inserted,
                                "fs_dagster/rows_updated": commit.rows_updated,
                                "fs_dagster/rows_deleted": commit.rows_deleted,
                                "fs_dagster/external": True,
                            },
                            tags={DATA_VERSION_TAG: commit.instant},
                        )
                    )
                seen = commit.instant
            if seen:
                cursor[spec.key] = seen
        return SensorResult(asset_events=events, cursor=json.dumps(cursor, sort_keys=True))

    return _external_commits


def _recorded_commits(context: SensorEvaluationContext, asset_key: AssetKey, limit: int = 50) -> set[str]:
    """Commit instants that recent materializations of the asset already carry."""
    records = context.instance.fetch_materializations(asset_key, limit=limit).records
    out = set()
    for record in records:
        materialization = record.asset_materialization
        if materialization is None:
            continue
        value = materialization.metadata.get("fs_dagster/commit")
        text = getattr(value, "value", value)
        if isinstance(text, str):
            out.add(text)
        version = (materialization.tags or {}).get(DATA_VERSION_TAG)
        if version:
            out.add(version)
    return out
