"""Errors raised by the plain-Python core.

The Dagster face turns them into ``dagster.Failure`` with the same message; the core never imports Dagster.
"""

from __future__ import annotations


class FeatureStoreError(Exception):
    """Base class of every error fs-dagster raises on purpose."""


class InvalidDataError(FeatureStoreError, ValueError):
    """Input rows or columns cannot be written; the message names the column, key or value."""


class SchemaChangeError(InvalidDataError):
    """A write would change the type of an existing column or drop one."""


class TableLockedError(FeatureStoreError, TimeoutError):
    """Another writer holds the table's lock for longer than the configured wait."""


class IncompatibleTableError(FeatureStoreError):
    """The table's version or metadata-table settings are not ones this writer may write."""


class CommitNotFoundError(FeatureStoreError, LookupError):
    """A commit instant or point in time that the table's timeline does not have."""


class NotFoundError(FeatureStoreError, LookupError):
    """A feature group, feature view or other registry entry that does not exist."""


class DeploymentError(FeatureStoreError):
    """A model deployment could not be started, switched or stopped; the message names the deployment and cause."""
