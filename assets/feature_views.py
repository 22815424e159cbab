"""The reference feature views over the flight feature groups: a flight's schedule features, its origin's weather at
the departure hour, its aircraft, and its route's delays over the previous week.

- ``flight_delays`` v1: label ``is_delayed`` (arrived more than 15 minutes late, or cancelled).
- ``flight_delays`` v2: the same features, label ``dep_delayed`` (departed 15+ minutes late, or cancelled): what
  the reference model predicts. Views are immutable, so v1 stays as it was; new features (e.g. the SQLMesh feature
  groups) go into a new version built the same way (see :func:`departure_delay_query`).

Online, both are served by entity: ``flight_id, origin, tailnum, dest, carrier`` (the flight's own row, its
origin's latest weather, its aircraft, its route's latest statistics).
"""

from __future__ import annotations

from dagster import AssetKey

from fs_dagster import FeatureStore
from fs_dagster.feature_view_asset import build_feature_view_asset

FLIGHT_DELAY_VIEW = "flight_delays"
FLIGHT_DELAY_VERSION = 1
DEPARTURE_DELAY_VERSION = 2
DEPARTURE_DELAY_LABEL = "dep_delayed"
TRANSFORMATIONS = {"distance": "standard_scaler", "carrier": "label_encoder"}
SCHEDULE_FEATURES = ["carrier", "distance", "sched_dep_hour", "day_of_week"]
VIEW_DEPS = [AssetKey("flight_outcomes"), AssetKey("weather_hourly"), AssetKey("aircraft"),
             AssetKey("route_delay_stats")]


def _flight_query(store: FeatureStore, label: str):
    flights = store.get_feature_group("flight_outcomes")
    weather = store.get_feature_group("weather_hourly")
    aircraft = store.get_feature_group("aircraft")
    routes = store.get_feature_group("route_delay_stats")
    return (
        flights.select([*SCHEDULE_FEATURES, label])
        .join(weather.select(["temp", "humid", "wind_speed", "precip", "visib"]), left_on=["origin", "time_hour"])
        .join(aircraft.select(["year_built", "seats", "engines"]), on=["tailnum"])
        .join(routes.select(["flights_7d", "mean_dep_delay_7d", "pct_arr_delayed_7d"]),
              left_on=["origin", "dest", "carrier", "day"])
    )


def register_flight_delay_view(store: FeatureStore):
    """Registers (or loads) v1; idempotent for the same definition."""
    return store.get_or_create_feature_view(
        FLIGHT_DELAY_VIEW,
        FLIGHT_DELAY_VERSION,
        _flight_query(store, "is_delayed"),
        labels=["is_delayed"],
        description="Will a flight arrive 15+ minutes late? Weather, aircraft and route features at departure.",
        transformation_functions=TRANSFORMATIONS,
    )


def departure_delay_query(store: FeatureStore):
    """The query of v2: v1's features, label ``dep_delayed``."""
    return _flight_query(store, DEPARTURE_DELAY_LABEL)


def register_departure_delay_view(store: FeatureStore):
    """Registers (or loads) v2; idempotent for the same definition."""
    return store.get_or_create_feature_view(
        FLIGHT_DELAY_VIEW,
        DEPARTURE_DELAY_VERSION,
        departure_delay_query(store),
        labels=[DEPARTURE_DELAY_LABEL],
        description="Will a flight depart 15+ minutes late (or be cancelled)? Schedule, weather, aircraft and route "
        "features known at departure.",
        transformation_functions=TRANSFORMATIONS,
    )


flight_delays = build_feature_view_asset(
    FLIGHT_DELAY_VIEW,
    FLIGHT_DELAY_VERSION,
    get_view=register_flight_delay_view,
    deps=VIEW_DEPS,
    owners=["team:ml-platform"],
    tags=["domain=delay"],
    description="Feature view over the flight feature groups (registered in the feature store registry): a flight's "
    "schedule, its origin's weather at departure, its aircraft and its route's last week; label is_delayed.",
)

flight_delays_v2 = build_feature_view_asset(
    FLIGHT_DELAY_VIEW,
    DEPARTURE_DELAY_VERSION,
    get_view=register_departure_delay_view,
    key=f"{FLIGHT_DELAY_VIEW}_v{DEPARTURE_DELAY_VERSION}",
    deps=VIEW_DEPS,
    owners=["team:ml-platform"],
    tags=["domain=delay"],
    description="Version 2 of the flight_delays view: the same features, label dep_delayed (departed 15+ minutes "
    "late, or cancelled).",
)
