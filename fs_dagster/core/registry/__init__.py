"""Metadata registry (SQLAlchemy: SQLite by default, PostgreSQL by URL) and keyword search."""

from fs_dagster.core.registry.registry import CommitRecord, Registry
from fs_dagster.core.registry.search import SearchHit

__all__ = ["CommitRecord", "Registry", "SearchHit"]
