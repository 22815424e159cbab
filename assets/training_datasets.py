"""The reference project's training data: the ``flight_delays`` view split at random 80/20, refreshed
automatically (when the automation sensor is on) whenever a source feature group commits."""

from __future__ import annotations

from dagster import AssetKey, AutomationCondition

from assets.feature_views import FLIGHT_DELAY_VERSION, FLIGHT_DELAY_VIEW, register_flight_delay_view
from fs_dagster import RandomSplit, build_training_dataset_asset

FLIGHT_DELAY_SPLIT = RandomSplit({"train": 0.8, "test": 0.2}, seed=13)

flight_delays_training_data = build_training_dataset_asset(
    FLIGHT_DELAY_VIEW,
    FLIGHT_DELAY_VERSION,
    deps=[AssetKey(FLIGHT_DELAY_VIEW), AssetKey("flight_outcomes"), AssetKey("weather_hourly"),
          AssetKey("aircraft"), AssetKey("route_delay_stats")],
    split=FLIGHT_DELAY_SPLIT,
    get_view=register_flight_delay_view,
    automation_condition=AutomationCondition.eager(),
    owners=["team:ml-platform"],
    tags=["domain=delay"],
)
