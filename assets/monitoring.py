"""Monitoring of the reference project: what ``flight_delay_api`` sees and how well it does, and what the feature
groups receive, with Evidently reports and asset checks; a drift ERROR retrains and redeploys (``drift_retraining``,
in :mod:`sensors`).

- ``flight_delay_api_drift``: the inputs the deployment answered since its current model version was deployed
  (the inference log, raw units) against that version's training split. A temperature shift of half a training
  standard deviation or more (normed Wasserstein distance >= 0.5: another season than the model knows) is an
  ERROR, like half of the 15 features drifting; any other drifted feature warns. Measured: a model trained on
  January-February and serving July and August flights drifts in 8 of 15 features, temperature at 4.9.
- ``weather_hourly_drift``: monthly, each month's weather against the month before (no model involved). The
  season moves the weather every month (August against July: 6 of 9 features), so drift here only warns: it
  informs, while the deployment's own drift is what retrains.
- ``flight_delay_api_quality``: the served version's accuracy, precision, recall, F1 and ROC AUC on the predictions
  whose real departure delay arrived (``delay_predictions_labelled``) against its training holdout.
- Feature monitoring checks on ``weather_hourly`` and ``route_delay_stats``: each commit's statistics against the
  previous commit's.
"""

from __future__ import annotations

from assets.feature_groups import FEATURE_GROUP_SPECS, weather_hourly
from assets.models import DEPLOYMENT, delay_predictions_labelled, flight_delay_api_inference_log
from assets.partitions import MONTHLY
from fs_dagster import (
    DriftThresholds,
    FeatureDriftRule,
    FeatureMonitoringRule,
    build_deployment_drift_asset,
    build_feature_group_drift_asset,
    build_feature_monitoring_checks,
    build_model_quality_asset,
)

DRIFT_THRESHOLDS = DriftThresholds(
    features={"temp": FeatureDriftRule(threshold=0.5, severity="ERROR")},
    default=FeatureDriftRule(severity="WARN"),
    error_share=0.5,
)

flight_delay_api_drift = build_deployment_drift_asset(
    DEPLOYMENT, inference_log_asset=flight_delay_api_inference_log, thresholds=DRIFT_THRESHOLDS,
)

weather_hourly_drift = build_feature_group_drift_asset(
    weather_hourly, compare="windows", partitions_def=MONTHLY, thresholds=DriftThresholds(error_share=None),
)

flight_delay_api_quality = build_model_quality_asset(DEPLOYMENT, delay_predictions_labelled)

FEATURE_MONITORING_RULES = {
    "weather_hourly": [
        FeatureMonitoringRule("temp", "mean", max_change=10.0),  # F: a season's change in one commit
        FeatureMonitoringRule("temp", "histogram_distance", max_change=0.3),
        FeatureMonitoringRule("humid", "null_share", max_change=0.02, severity="ERROR"),  # a sensor went quiet
        FeatureMonitoringRule("visib", "null_share", max_change=0.02, severity="ERROR"),
    ],
    "route_delay_stats": [
        FeatureMonitoringRule("mean_dep_delay_7d", "mean", max_change=10.0),  # minutes
        FeatureMonitoringRule("pct_cancelled_7d", "mean", max_change=0.05),
        FeatureMonitoringRule("flights_7d", "null_share", max_change=0.01, severity="ERROR"),
    ],
}

FEATURE_MONITORING_CHECKS = build_feature_monitoring_checks(FEATURE_GROUP_SPECS, FEATURE_MONITORING_RULES)

MONITORING_ASSETS = [flight_delay_api_drift, weather_hourly_drift, flight_delay_api_quality]
