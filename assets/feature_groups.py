"""The reference project's feature groups, as Dagster assets (Hudi offline tables; online-enabled ones also
go to Valkey once the online store is configured)."""

from __future__ import annotations

import pandas as pd
from dagster import AssetDep, AssetExecutionContext, TimeWindowPartitionMapping

from assets import features, schemas
from assets.partitions import MONTHLY
from assets.sources import SOURCE_FLIGHTS, SOURCE_PLANES, SOURCE_WEATHER
from fs_dagster import Feature, FeatureGroupSpec, feature_group_asset
from fs_dagster.beta_apis import accepting_beta
from fs_dagster.materialization import partition_window

SOURCE = {"flights_source"}
# a month of route statistics reads the last week of the month before: both months' raw flights are its inputs
with accepting_beta("allow_nonexistent_upstream_partitions"):  # January has no month before
    FLIGHTS_OF_MONTH_AND_MONTH_BEFORE = AssetDep(
        SOURCE_FLIGHTS,
        partition_mapping=TimeWindowPartitionMapping(start_offset=-1, allow_nonexistent_upstream_partitions=True),
    )

WEATHER_HOURLY = FeatureGroupSpec(
    name="weather_hourly",
    primary_key=("origin", "time_hour"),
    event_time="time_hour",
    partition_key=("origin",),
    online_enabled=True,
    description="Hourly weather observed at each NYC origin airport.",
    tags=("domain=weather", "entity=airport"),
    owner="team:ml-platform",
    features=(
        Feature("temp", description="Temperature (F)"),
        Feature("dewp", description="Dew point (F)"),
        Feature("humid", description="Relative humidity (%)"),
        Feature("wind_dir", description="Wind direction (degrees)"),
        Feature("wind_speed", description="Wind speed (mph)"),
        Feature("wind_gust", description="Wind gust speed (mph)"),
        Feature("precip", description="Precipitation (inches)"),
        Feature("pressure", description="Sea level pressure (millibars)"),
        Feature("visib", description="Visibility (miles)"),
    ),
)

AIRCRAFT = FeatureGroupSpec(
    name="aircraft",
    primary_key=("tailnum",),
    event_time="valid_from",
    online_enabled=True,
    description="Aircraft features per tail number from the FAA registry.",
    tags=("domain=aircraft", "entity=tailnum"),
    owner="team:ml-platform",
    features=(
        Feature("year_built", description="Year the aircraft was manufactured"),
        Feature("aircraft_type", description="Fixed wing multi/single engine, rotorcraft"),
        Feature("seats", description="Number of seats"),
        Feature("engines", description="Number of engines"),
        Feature("engine", description="Engine type (turbo-fan, turbo-jet, ...)"),
    ),
)

ROUTE_DELAY_STATS = FeatureGroupSpec(
    name="route_delay_stats",
    primary_key=("origin", "dest", "carrier", "day"),
    event_time="day",
    partition_key=("origin",),
    online_enabled=True,
    description="Rolling 7-day delay statistics per route and carrier, known at the start of each UTC day.",
    tags=("domain=delay", "entity=route", "window=7d"),
    owner="team:ml-platform",
    features=(
        Feature("flights_7d", description="Flights on the route in the previous 7 days"),
        Feature("mean_dep_delay_7d", description="Mean departure delay (min), previous 7 days"),
        Feature("mean_arr_delay_7d", description="Mean arrival delay (min), previous 7 days"),
        Feature("pct_arr_delayed_7d", description="Share of flights arriving 15+ min late, previous 7 days"),
        Feature("pct_cancelled_7d", description="Share of flights cancelled, previous 7 days"),
    ),
)

FLIGHT_OUTCOMES = FeatureGroupSpec(
    name="flight_outcomes",
    primary_key=("flight_id",),
    event_time="sched_dep_ts",
    partition_key=("origin",),
    online_enabled=True,
    description="One row per scheduled flight with its outcome; is_delayed and dep_delayed are labels to predict.",
    tags=("domain=delay", "entity=flight", "label"),
    owner="team:ml-platform",
    features=(
        Feature("is_delayed", description="Label: arrived 15+ minutes late, or cancelled"),
        Feature("dep_delayed", description="Label: departed 15 or more minutes late, or cancelled"),
        Feature("dep_delay", description="Departure delay (minutes)"),
        Feature("arr_delay", description="Arrival delay (minutes)"),
        Feature("cancelled", description="The flight did not depart"),
        Feature("time_hour", description="Scheduled departure hour (UTC): joins weather_hourly"),
        Feature("day", description="Scheduled departure day (UTC): joins route_delay_stats"),
    ),
)


@feature_group_asset(
    WEATHER_HOURLY, schema=schemas.WeatherHourly, partitions_def=MONTHLY, deps=[SOURCE_WEATHER],
    required_resource_keys=SOURCE,
)
def weather_hourly(context: AssetExecutionContext) -> pd.DataFrame:
    window = partition_window(context)
    return features.weather_features(context.resources.flights_source.weather(window.start, window.end))


@feature_group_asset(AIRCRAFT, schema=schemas.Aircraft, deps=[SOURCE_PLANES], required_resource_keys=SOURCE)
def aircraft(context: AssetExecutionContext) -> pd.DataFrame:
    return features.aircraft_features(context.resources.flights_source.planes())


@feature_group_asset(
    ROUTE_DELAY_STATS, schema=schemas.RouteDelayStats, partitions_def=MONTHLY, deps=[FLIGHTS_OF_MONTH_AND_MONTH_BEFORE],
    required_resource_keys=SOURCE,
)
def route_delay_stats(context: AssetExecutionContext) -> pd.DataFrame:
    window = partition_window(context)
    flights = context.resources.flights_source.flights(window.start - features.ROUTE_LOOKBACK, window.end)
    return features.route_delay_stats(flights, window.start, window.end)


@feature_group_asset(
    FLIGHT_OUTCOMES, schema=schemas.FlightOutcomes, partitions_def=MONTHLY, deps=[SOURCE_FLIGHTS],
    required_resource_keys=SOURCE,
)
def flight_outcomes(context: AssetExecutionContext) -> pd.DataFrame:
    window = partition_window(context)
    return features.flight_outcomes(context.resources.flights_source.flights(window.start, window.end))


FEATURE_GROUP_ASSETS = [weather_hourly, aircraft, route_delay_stats, flight_outcomes]
FEATURE_GROUP_SPECS = [WEATHER_HOURLY, AIRCRAFT, ROUTE_DELAY_STATS, FLIGHT_OUTCOMES]
