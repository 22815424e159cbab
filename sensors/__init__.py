"""Sensors and schedules of the reference project."""

from __future__ import annotations

from dagster import AutomationConditionSensorDefinition, DefaultSensorStatus

from assets.feature_groups import FEATURE_GROUP_SPECS
from assets.training_datasets import flight_delays_training_data
from fs_dagster.sensors import build_external_commit_sensor
from resources import RESOURCES
from sensors.landing import landed_months
from sensors.observations import raw_sources_observed
from sensors.schedules import daily_refresh

external_commits = build_external_commit_sensor(FEATURE_GROUP_SPECS)

# evaluates the training data's eager automation condition: a month the landing sensor ran (a new commit of a
# source feature group) refreshes the training dataset. On by itself in landing mode, like the landing sensor.
training_data_refresh = AutomationConditionSensorDefinition(
    "training_data_refresh",
    target=[flight_delays_training_data.key],
    default_status=(
        DefaultSensorStatus.RUNNING if RESOURCES["flights_source"].landing_dir else DefaultSensorStatus.STOPPED
    ),
    minimum_interval_seconds=30,
    description="Refreshes flight_delays_training_data when a feature group it reads commits (eager condition).",
)

SENSORS = [external_commits, landed_months, raw_sources_observed, training_data_refresh]
SCHEDULES = [daily_refresh]
