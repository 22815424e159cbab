"""Dagster definitions of the reference project (``workspace.yaml`` loads this module)."""

from __future__ import annotations

from dagster import Definitions

from assets.feature_groups import FEATURE_GROUP_ASSETS
from assets.sources import SOURCE_ASSETS
from resources import RESOURCES
from sensors import SENSORS

defs = Definitions(assets=[*SOURCE_ASSETS, *FEATURE_GROUP_ASSETS], resources=RESOURCES, sensors=SENSORS)
