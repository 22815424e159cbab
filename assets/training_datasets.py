"""The reference project's training data: the ``flight_delays`` views split at random 80/20, refreshed
automatically (when the automation sensor is on) whenever a source feature group commits.

The split is random (a hash of seed and row number), not by time: any subset of months (one month in the tests,
a landed prefix of 2013 in landing mode) gets both parts. A model is compared with the deployed one on the same
test rows, so the comparison is fair either way; a time split (train on early months, test on later ones) would
estimate future performance more honestly and is one ``TimeSplit`` away once a full year is always there.
"""

from __future__ import annotations

from dagster import AssetKey, AutomationCondition

from assets.feature_views import (
    DEPARTURE_DELAY_VERSION,
    FLIGHT_DELAY_VERSION,
    FLIGHT_DELAY_VIEW,
    VIEW_DEPS,
    flight_delays_v2,
    register_departure_delay_view,
    register_flight_delay_view,
)
from fs_dagster import RandomSplit, build_training_dataset_asset

FLIGHT_DELAY_SPLIT = RandomSplit({"train": 0.8, "test": 0.2}, seed=13)

flight_delays_training_data = build_training_dataset_asset(
    FLIGHT_DELAY_VIEW,
    FLIGHT_DELAY_VERSION,
    deps=[AssetKey(FLIGHT_DELAY_VIEW), *VIEW_DEPS],
    split=FLIGHT_DELAY_SPLIT,
    get_view=register_flight_delay_view,
    automation_condition=AutomationCondition.eager(),
    owners=["team:ml-platform"],
    tags=["domain=delay"],
)

departure_delay_training_data = build_training_dataset_asset(
    FLIGHT_DELAY_VIEW,
    DEPARTURE_DELAY_VERSION,
    key=f"{FLIGHT_DELAY_VIEW}_v{DEPARTURE_DELAY_VERSION}_training_data",
    deps=[flight_delays_v2.key, *VIEW_DEPS],
    split=FLIGHT_DELAY_SPLIT,
    get_view=register_departure_delay_view,
    automation_condition=AutomationCondition.eager(),
)
