"""Sensors of the reference project."""

from __future__ import annotations

from assets.feature_groups import FEATURE_GROUP_SPECS
from fs_dagster.sensors import build_external_commit_sensor

external_commits = build_external_commit_sensor(FEATURE_GROUP_SPECS)

SENSORS = [external_commits]
