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


class RegistryError(FeatureStoreError):
    """The registry database failed an operation; the message names the registry (file or URL) and the operation."""


class RegistryUnavailableError(RegistryError, TimeoutError):
    """The registry stayed locked by another process (or unreachable) for longer than ``registry_timeout``."""


class DamagedTableError(FeatureStoreError):
    """A table's files contradict its timeline (a base file, commit or properties file missing or unreadable),
    or the registry lists a commit the timeline lacks. The message names the file; nothing was changed."""


class DamagedOnlineValueError(FeatureStoreError):
    """A value in the online store that is not one fs-dagster wrote for its key's layout (truncated, overwritten
    by another program). The message names the feature group and the key; nothing is served from it."""


class WriteFailedError(FeatureStoreError, OSError):
    """The storage refused a write (disk full, quota, read-only, I/O error). The message names the table and the
    file being written; the files of the failed commit were removed, so the table is as of its last commit.
    ``errno`` is the operating system's (``errno.ENOSPC`` for a full disk)."""


class CorruptFileError(FeatureStoreError):
    """A base file of a table cannot be trusted: a page checksum fails, it cannot be decoded, or it is missing or
    not the size its commit recorded. The message names the file; nothing was written."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class DeploymentError(FeatureStoreError):
    """A model deployment could not be started, switched or stopped; the message names the deployment and cause."""


class MissingDependencyError(FeatureStoreError, ImportError):
    """An optional dependency is not installed; the message names the package and the extra that installs it."""


class PipelineError(FeatureStoreError):
    """A SQL pipeline (a SQLMesh project) could not be loaded, planned or run, or a model's definition cannot
    become a feature group; the message names the project, the model and the cause."""


class PipelineLockedError(PipelineError, TimeoutError):
    """Another process kept the SQLMesh project's database busy for longer than the configured wait."""
