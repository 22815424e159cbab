"""fs-dagster: a feature store inside Dagster.

Plain-Python core (``fs_dagster.core``: Hudi offline store, registry, statistics, models, serving) under a thin
Dagster layer (resources, IO manager, ``@feature_group_asset``, translator, pandera checks, training-dataset, model,
deployment and inference-log assets; drift and model-quality report assets, feature-monitoring checks, the drift
retraining sensor).

Names are imported lazily: ``import fs_dagster.core...`` (e.g. in a serving process or a registry worker) does not
pay for importing Dagster; ``from fs_dagster import feature_group_asset`` does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fs_dagster.version import __version__ as __version__

_EXPORTS: dict[str, str] = {
    "feature_group_asset": "fs_dagster.asset_decorator",
    "validate_with_pandera": "fs_dagster.checks",
    "CommitNotFoundError": "fs_dagster.core.errors",
    "CorruptFileError": "fs_dagster.core.errors",
    "DamagedTableError": "fs_dagster.core.errors",
    "FeatureStoreError": "fs_dagster.core.errors",
    "IncompatibleTableError": "fs_dagster.core.errors",
    "InvalidDataError": "fs_dagster.core.errors",
    "NotFoundError": "fs_dagster.core.errors",
    "PipelineError": "fs_dagster.core.errors",
    "SchemaChangeError": "fs_dagster.core.errors",
    "TableLockedError": "fs_dagster.core.errors",
    "WriteFailedError": "fs_dagster.core.errors",
    "FeatureGroup": "fs_dagster.core.feature_group",
    "TimeWindow": "fs_dagster.core.feature_group",
    "Feature": "fs_dagster.core.specs",
    "FeatureGroupSpec": "fs_dagster.core.specs",
    "FeatureStore": "fs_dagster.core.store",
    "FeatureStoreFailure": "fs_dagster.errors",
    "FeatureGroupIOManager": "fs_dagster.io_manager",
    "FeatureGroupCommit": "fs_dagster.materialization",
    "FeatureStoreResource": "fs_dagster.resource",
    "FeatureGroupTranslator": "fs_dagster.translator",
    "build_external_commit_sensor": "fs_dagster.sensors",
    "build_offline_integrity_checks": "fs_dagster.integrity_check",
    "build_online_consistency_checks": "fs_dagster.consistency_check",
    "build_landing_sensor": "fs_dagster.sensors",
    "LandingTrigger": "fs_dagster.sensors",
    "build_source_observation_sensor": "fs_dagster.source_observations",
    "SourceVersion": "fs_dagster.source_observations",
    "build_training_dataset_asset": "fs_dagster.training_dataset_asset",
    "build_model_asset": "fs_dagster.model_asset",
    "TrainedModel": "fs_dagster.model_asset",
    "ModelValidation": "fs_dagster.core.models.validation",
    "build_deployment_asset": "fs_dagster.deployment_asset",
    "SmokeTest": "fs_dagster.deployment_asset",
    "build_inference_log_asset": "fs_dagster.inference_log_asset",
    "build_labelled_inference_log_asset": "fs_dagster.inference_log_asset",
    "build_feature_view_asset": "fs_dagster.feature_view_asset",
    "feature_group_dagster_type": "fs_dagster.dataframe_type",
    "QualityRules": "fs_dagster.core.training.quality",
    "build_deployment_drift_asset": "fs_dagster.drift_assets",
    "build_feature_group_drift_asset": "fs_dagster.drift_assets",
    "build_model_quality_asset": "fs_dagster.quality_asset",
    "build_feature_monitoring_checks": "fs_dagster.feature_monitoring_checks",
    "build_drift_retraining_sensor": "fs_dagster.retraining_sensor",
    "MonitoringWindow": "fs_dagster.monitoring_windows",
    "DriftThresholds": "fs_dagster.core.monitoring.drift",
    "FeatureDriftRule": "fs_dagster.core.monitoring.drift",
    "QualityRule": "fs_dagster.core.monitoring.quality",
    "FeatureMonitoringRule": "fs_dagster.core.monitoring.feature_monitoring",
    "RandomSplit": "fs_dagster.core.training.splits",
    "TimeSplit": "fs_dagster.core.training.splits",
    "TrainingDataset": "fs_dagster.core.training.training_dataset",
    # SQLMesh pipelines (needs the extra: pip install fs-dagster[sqlmesh])
    "build_sqlmesh_assets": "fs_dagster.sqlmesh",
    "sqlmesh_assets": "fs_dagster.sqlmesh",
    "SQLMeshResource": "fs_dagster.sqlmesh",
    "SQLMeshTranslator": "fs_dagster.sqlmesh",
    "SQLMeshTranslatorSettings": "fs_dagster.sqlmesh",
}
__all__ = sorted(_EXPORTS)
_registered = False


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'fs_dagster' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    if not module_name.startswith("fs_dagster.core"):
        _register_library()
    value = getattr(module, name)
    globals()[name] = value
    return value


def _register_library() -> None:
    """Shows fs-dagster among the libraries in the Dagster UI (once, when the Dagster face is first used)."""
    global _registered
    if _registered:
        return
    _registered = True
    try:
        from dagster_shared.libraries import DagsterLibraryRegistry

        DagsterLibraryRegistry.register("fs-dagster", __version__, is_dagster_package=False)
    except ImportError:  # pragma: no cover - older dagster-shared
        pass


if TYPE_CHECKING:  # static analysers see the eager names
    from fs_dagster.asset_decorator import feature_group_asset as feature_group_asset
    from fs_dagster.checks import validate_with_pandera as validate_with_pandera
    from fs_dagster.core.errors import (
        CommitNotFoundError as CommitNotFoundError,
        CorruptFileError as CorruptFileError,
        DamagedTableError as DamagedTableError,
        FeatureStoreError as FeatureStoreError,
        IncompatibleTableError as IncompatibleTableError,
        InvalidDataError as InvalidDataError,
        NotFoundError as NotFoundError,
        PipelineError as PipelineError,
        SchemaChangeError as SchemaChangeError,
        TableLockedError as TableLockedError,
        WriteFailedError as WriteFailedError,
    )
    from fs_dagster.core.feature_group import FeatureGroup as FeatureGroup, TimeWindow as TimeWindow
    from fs_dagster.core.specs import Feature as Feature, FeatureGroupSpec as FeatureGroupSpec
    from fs_dagster.core.store import FeatureStore as FeatureStore
    from fs_dagster.errors import FeatureStoreFailure as FeatureStoreFailure
    from fs_dagster.io_manager import FeatureGroupIOManager as FeatureGroupIOManager
    from fs_dagster.materialization import FeatureGroupCommit as FeatureGroupCommit
    from fs_dagster.resource import FeatureStoreResource as FeatureStoreResource
    from fs_dagster.consistency_check import build_online_consistency_checks as build_online_consistency_checks
    from fs_dagster.integrity_check import build_offline_integrity_checks as build_offline_integrity_checks
    from fs_dagster.sensors import build_external_commit_sensor as build_external_commit_sensor
    from fs_dagster.source_observations import (
        SourceVersion as SourceVersion,
        build_source_observation_sensor as build_source_observation_sensor,
    )
    from fs_dagster.translator import FeatureGroupTranslator as FeatureGroupTranslator
    from fs_dagster.core.models.validation import ModelValidation as ModelValidation
    from fs_dagster.deployment_asset import SmokeTest as SmokeTest, build_deployment_asset as build_deployment_asset
    from fs_dagster.inference_log_asset import (
        build_inference_log_asset as build_inference_log_asset,
        build_labelled_inference_log_asset as build_labelled_inference_log_asset,
    )
    from fs_dagster.model_asset import TrainedModel as TrainedModel, build_model_asset as build_model_asset
    from fs_dagster.training_dataset_asset import build_training_dataset_asset as build_training_dataset_asset
    from fs_dagster.core.training.quality import QualityRules as QualityRules
    from fs_dagster.dataframe_type import feature_group_dagster_type as feature_group_dagster_type
    from fs_dagster.feature_view_asset import build_feature_view_asset as build_feature_view_asset
    from fs_dagster.core.monitoring.drift import (
        DriftThresholds as DriftThresholds,
        FeatureDriftRule as FeatureDriftRule,
    )
    from fs_dagster.core.monitoring.feature_monitoring import FeatureMonitoringRule as FeatureMonitoringRule
    from fs_dagster.core.monitoring.quality import QualityRule as QualityRule
    from fs_dagster.drift_assets import (
        build_deployment_drift_asset as build_deployment_drift_asset,
        build_feature_group_drift_asset as build_feature_group_drift_asset,
    )
    from fs_dagster.feature_monitoring_checks import build_feature_monitoring_checks as build_feature_monitoring_checks
    from fs_dagster.monitoring_windows import MonitoringWindow as MonitoringWindow
    from fs_dagster.quality_asset import build_model_quality_asset as build_model_quality_asset
    from fs_dagster.retraining_sensor import build_drift_retraining_sensor as build_drift_retraining_sensor
