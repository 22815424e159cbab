"""Errors of the Dagster face: core errors surface as ``dagster.Failure`` with the same message."""

from __future__ import annotations

from dagster import Failure, MetadataValue

from fs_dagster.core.errors import FeatureStoreError


class FeatureStoreFailure(Failure):
    """A step failed because the feature store refused the data or the operation (message says why)."""


def as_failure(error: FeatureStoreError, **metadata: object) -> FeatureStoreFailure:
    """Wraps a core error for Dagster, keeping its class name and message in the run's metadata."""
    return FeatureStoreFailure(
        description=str(error),
        metadata={"error": MetadataValue.text(type(error).__name__), **metadata},  # type: ignore[dict-item]
    )
