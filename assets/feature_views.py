"""The reference feature view: a flight's schedule features, its origin's weather at the departure hour, its
aircraft, and its route's delays over the previous week; label ``is_delayed``."""

from __future__ import annotations

from dagster import AssetKey, MaterializeResult, MetadataValue, asset

from fs_dagster import FeatureStore

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


@asset(
    key=AssetKey([FLIGHT_DELAY_VIEW]),
    deps=[AssetKey("flight_outcomes"), AssetKey("weather_hourly"), AssetKey("aircraft"),
          AssetKey("route_delay_stats")],
    group_name="feature_views",
    kinds={"duckdb", "valkey"},
    description="Feature view over the flight feature groups (registered in the feature store registry).",
    required_resource_keys={"feature_store"},
)
def flight_delays(context) -> MaterializeResult:  # no annotation: dagster inspects it
    view = register_flight_delay_view(context.resources.feature_store.get_store())
    return MaterializeResult(
        metadata={
            "fs_dagster/feature_view": f"{view.name} v{view.version}",
            "features": MetadataValue.md(", ".join(view.feature_names)),
            "labels": ", ".join(view.labels),
            "serving_keys": ", ".join(view.serving_keys),
            "transformations": MetadataValue.json(view.transformation_functions),
        }
    )
