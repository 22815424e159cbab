"""Sensors and schedules of the reference project."""

from __future__ import annotations

from dagster import AssetCheckKey, AutomationConditionSensorDefinition, DefaultSensorStatus

from assets.feature_groups import FEATURE_GROUP_SPECS
from assets.models import departure_delay_model, flight_delay_api
from assets.monitoring import flight_delay_api_drift
from assets.training_datasets import departure_delay_training_data, flight_delays_training_data
from fs_dagster.drift_assets import DRIFT_CHECK
from fs_dagster.retraining_sensor import build_drift_retraining_sensor
from fs_dagster.sensors import build_external_commit_sensor
from resources import RESOURCES
from sensors.landing import IN_PROCESS, landed_months
from sensors.observations import raw_sources_observed
from sensors.schedules import daily_refresh, inference_log_flush, monitoring_reports

external_commits = build_external_commit_sensor(FEATURE_GROUP_SPECS)

# evaluates the training data's eager automation condition: a month the landing sensor ran (a new commit of a
# source feature group) refreshes the training dataset. On by itself in landing mode, like the landing sensor.
training_data_refresh = AutomationConditionSensorDefinition(
    "training_data_refresh",
    target=[flight_delays_training_data.key, departure_delay_training_data.key],
    default_status=(
        DefaultSensorStatus.RUNNING if RESOURCES["flights_source"].landing_dir else DefaultSensorStatus.STOPPED
    ),
    minimum_interval_seconds=30,
    description="Refreshes the flight_delays training data when a feature group they read commits (eager condition).",
)

# retrains the model on new training data and redeploys each new version that passed its blocking checks. Off by
# default (it starts and switches a local server): turn it on in the UI (Automation) for the full loop.
model_retraining = AutomationConditionSensorDefinition(
    "model_retraining",
    target=[departure_delay_model.key, flight_delay_api.key],
    default_status=DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Retrains departure_delay on new training data; redeploys flight_delay_api after a validated version.",
)

# the monitoring loop: an ERROR of flight_delay_api's drift check retrains on the latest commits (the served months
# included) and redeploys only a version that passed the model's blocking validation checks. Off by default.
drift_retraining = build_drift_retraining_sensor(
    AssetCheckKey(flight_delay_api_drift.key, DRIFT_CHECK),
    targets=[departure_delay_training_data, departure_delay_model, flight_delay_api],
    name="drift_retraining",
    run_config=IN_PROCESS,
    default_status=DefaultSensorStatus.STOPPED,
)

SENSORS = [external_commits, landed_months, raw_sources_observed, training_data_refresh, model_retraining,
           drift_retraining]
SCHEDULES = [daily_refresh, inference_log_flush, monitoring_reports]
