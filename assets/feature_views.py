"""The reference feature view: a flight's schedule features, its origin's weather at the departure hour, its
aircraft, and its route's delays over the previous week; label ``is_delayed``."""

from __future__ import annotations

from dagster import AssetKey

from fs_dagster import FeatureStore
from fs_dagster.feature_view_asset import build_feature_view_asset

FLIGHT_DELAY_VIEW = "flight_delays"
FLIGHT_DELAY_VERSION = 1
TRANSFORMATIONS = {"distance": "standard_scaler", "carrier": "label_encoder"}


def register_flight_delay_view(store: FeatureStore):
    """Registers (or loads) the view; idempotent for the same definition."""
    flights = store.get_feature_group("flight_outcomes")
    weather = store.get_feature_group("weather_hourly")
    aircraft = store.get_feature_group("aircraft")
    routes = store.get_feature_group("route_delay_stats")
    query = (
        flights.select(["carrier", "distance", "sched_dep_hour", "day_of_week", "is_delayed"])
        .join(weather.select(["temp", "humid", "wind_speed", "precip", "visib"]), left_on=["origin", "time_hour"])
        .join(aircraft.select(["year_built", "seats", "engines"]), on=["tailnum"])
        .join(routes.select(["flights_7d", "mean_dep_delay_7d", "pct_arr_delayed_7d"]),
              left_on=["origin", "dest", "carrier", "day"])
    )
    return store.get_or_create_feature_view(
        FLIGHT_DELAY_VIEW,
        FLIGHT_DELAY_VERSION,
        query,
        labels=["is_delayed"],
        description="Will a flight arrive 15+ minutes late? Weather, aircraft and route features at departure.",
        transformation_functions=TRANSFORMATIONS,
    )


flight_delays = build_feature_view_asset(
    FLIGHT_DELAY_VIEW,
    FLIGHT_DELAY_VERSION,
    get_view=register_flight_delay_view,
    deps=[AssetKey("flight_outcomes"), AssetKey("weather_hourly"), AssetKey("aircraft"), AssetKey("route_delay_stats")],
    owners=["team:ml-platform"],
    tags=["domain=delay"],
    description="Feature view over the flight feature groups (registered in the feature store registry): a flight's "
    "schedule, its origin's weather at departure, its aircraft and its route's last week; label is_delayed.",
)
