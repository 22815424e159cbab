"""Periodic runs of the reference project: every day, recompute the aircraft group and the newest month; every five
minutes, flush the deployment's inference log and join the outcomes that arrived; every hour, the drift and
quality reports of the deployment (whose drift ERROR the ``drift_retraining`` sensor turns into a retraining).

Upserts make a refresh safe to repeat (same keys are updated, never duplicated); it picks up corrections to the
planes table and late rows of the newest month. The newest month is the newest one fully landed in landing mode,
the last month of the data in package mode.
"""

from __future__ import annotations

from dagster import DefaultScheduleStatus, RunRequest, ScheduleDefinition, ScheduleEvaluationContext, schedule

from assets.feature_groups import aircraft, flight_outcomes, route_delay_stats, weather_hourly
from assets.models import delay_predictions_labelled, flight_delay_api_inference_log
from assets.monitoring import flight_delay_api_drift, flight_delay_api_quality
from sensors.landing import IN_PROCESS  # small runs: one process beats a subprocess per step

MONTHLY_GROUPS = [weather_hourly.key, flight_outcomes.key, route_delay_stats.key]


@schedule(
    name="daily_refresh",
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    target=[aircraft.key, *MONTHLY_GROUPS],
    required_resource_keys={"flights_source"},
    default_status=DefaultScheduleStatus.STOPPED,
    description="Daily: refresh the aircraft feature group and the newest monthly partition of the others.",
)
def daily_refresh(context: ScheduleEvaluationContext) -> list[RunRequest]:
    """Example: in landing mode with 2013-01 .. 2013-03 landed -> a run of ``aircraft`` and a run of the monthly
    groups for partition ``2013-03-01``."""
    # run keys tell the tick's two runs apart (Dagster scopes a schedule's run keys to the tick's time)
    requests = [RunRequest(run_key="aircraft", asset_selection=[aircraft.key], run_config=IN_PROCESS)]
    month = context.resources.flights_source.newest_month()
    if month is None:
        context.log.info("no month has fully landed yet: refreshing aircraft only")
        return requests
    partition = f"{month}-01"  # the data months are exactly the MONTHLY partitions
    requests.append(
        RunRequest(run_key=f"monthly-{partition}", partition_key=partition, asset_selection=MONTHLY_GROUPS,
                   run_config=IN_PROCESS)
    )
    return requests


# stopped by default, like daily_refresh: there is a log to flush once flight_delay_api has served requests
inference_log_flush = ScheduleDefinition(
    name="inference_log_flush",
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    target=[flight_delay_api_inference_log.key, delay_predictions_labelled.key],
    default_status=DefaultScheduleStatus.STOPPED,
    run_config=IN_PROCESS,
    description="Every 5 minutes: flush flight_delay_api's inference log into Hudi and join the outcomes that arrived.",
)

# stopped by default: each run writes two Evidently pages (~4 MB each) under the store root. One process per run:
# Evidently is imported once for both reports.
monitoring_reports = ScheduleDefinition(
    name="monitoring_reports",
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    target=[flight_delay_api_inference_log.key, delay_predictions_labelled.key, flight_delay_api_drift.key,
            flight_delay_api_quality.key],
    default_status=DefaultScheduleStatus.STOPPED,
    run_config=IN_PROCESS,
    description="Hourly: flush flight_delay_api's inference log, join outcomes, and report its input drift and model "
    "quality (Evidently) with their checks.",
)
