"""Dagster definitions of the reference project (``workspace.yaml`` loads this module)."""

from __future__ import annotations

from dagster import Definitions

from assets.feature_groups import FEATURE_GROUP_ASSETS, FEATURE_GROUP_SPECS
from assets.feature_views import flight_delays, flight_delays_v2
from assets.models import MODEL_ASSETS
from assets.monitoring import FEATURE_MONITORING_CHECKS, MONITORING_ASSETS
from assets.sources import SOURCE_ASSETS
from assets.sqlmesh_features import SQLMESH_ASSETS, SQLMESH_FEATURE_GROUP_SPECS
from assets.training_datasets import departure_delay_training_data, flight_delays_training_data
from fs_dagster.consistency_check import build_online_consistency_checks
from fs_dagster.integrity_check import build_offline_integrity_checks
from resources import RESOURCES
from sensors import SCHEDULES, SENSORS

defs = Definitions(
    assets=[*SOURCE_ASSETS, *FEATURE_GROUP_ASSETS, *SQLMESH_ASSETS, flight_delays, flight_delays_training_data,
            flight_delays_v2, departure_delay_training_data, *MODEL_ASSETS, *MONITORING_ASSETS],
    asset_checks=[
        *build_online_consistency_checks([*FEATURE_GROUP_SPECS, *SQLMESH_FEATURE_GROUP_SPECS], sample_size=200),
        *build_offline_integrity_checks([*FEATURE_GROUP_SPECS, *SQLMESH_FEATURE_GROUP_SPECS]),
        *FEATURE_MONITORING_CHECKS,
    ],
    resources=RESOURCES,
    sensors=SENSORS,
    schedules=SCHEDULES,
)
