"""Tables of the metadata registry (SQLAlchemy 2.x declarative ORM).

Everything is scoped by ``project``: the same feature-group name in two projects is two unrelated rows. Lists and
tags are JSON columns; features get their own table so search can filter them in SQL. Column types are generic
(no SQLite- or PostgreSQL-only types) so the same models work on both.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out.

    SQLite has no time-zone type and returns naive values; PostgreSQL's ``timestamptz`` returns them in the session
    time zone. Normalising here gives callers aware UTC datetimes on both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # the project's convention: naive datetimes are UTC
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        # SQLite stores the text as given; drop the offset so stored values sort and compare as UTC text.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the registry tables (``Base.metadata`` creates them)."""


class FeatureGroupRow(Base):
    """One version of one feature group in one project."""

    __tablename__ = "fs_feature_groups"
    __table_args__ = (UniqueConstraint("project", "name", "version", name="uq_fs_feature_groups_pnv"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    primary_key: Mapped[list[str]] = mapped_column(JSON)
    event_time: Mapped[str | None] = mapped_column(String(255), nullable=True)
    partition_key: Mapped[list[str]] = mapped_column(JSON)
    online_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    online_ttl_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    statistics_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    hive_style_partitioning: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON)
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Lower-cased "name description tags" so a dialect-neutral LIKE can prefilter search candidates.
    search_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, onupdate=utc_now)

    features: Mapped[list[FeatureRow]] = relationship(
        back_populates="group", order_by="FeatureRow.position", cascade="all, delete-orphan"
    )


class FeatureRow(Base):
    """One column of a feature group version, in schema order (``position``)."""

    __tablename__ = "fs_features"
    __table_args__ = (UniqueConstraint("fg_id", "name", name="uq_fs_features_fg_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fg_id: Mapped[int] = mapped_column(ForeignKey("fs_feature_groups.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    # "is_" prefixes keep clear of SQL keywords (PRIMARY, PARTITION) on every dialect.
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    is_partition: Mapped[bool] = mapped_column(Boolean, default=False)
    is_event_time: Mapped[bool] = mapped_column(Boolean, default=False)
    search_text: Mapped[str] = mapped_column(Text, default="")

    group: Mapped[FeatureGroupRow] = relationship(back_populates="features")


class CommitRow(Base):
    """One Hudi commit of a feature group version (``instant`` is unique per group)."""

    __tablename__ = "fs_commits"
    __table_args__ = (UniqueConstraint("fg_id", "instant", name="uq_fs_commits_fg_instant"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fg_id: Mapped[int] = mapped_column(ForeignKey("fs_feature_groups.id", ondelete="CASCADE"), index=True)
    instant: Mapped[str] = mapped_column(String(17))
    operation: Mapped[str] = mapped_column(String(32))
    rows_inserted: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_updated: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_deleted: Mapped[int] = mapped_column(BigInteger, default=0)
    row_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    committed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StatisticsRow(Base):
    """Descriptive statistics of a feature group version as of one commit instant."""

    __tablename__ = "fs_statistics"
    __table_args__ = (UniqueConstraint("fg_id", "instant", name="uq_fs_statistics_fg_instant"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fg_id: Mapped[int] = mapped_column(ForeignKey("fs_feature_groups.id", ondelete="CASCADE"), index=True)
    instant: Mapped[str] = mapped_column(String(17))
    statistics: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class FeatureViewRow(Base):
    """One version of a feature view: its query, labels and transformations as a JSON spec."""

    __tablename__ = "fs_feature_views"
    __table_args__ = (UniqueConstraint("project", "name", "version", name="uq_fs_feature_views_pnv"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class TrainingDatasetRow(Base):
    """One version of a training dataset of a feature view version: how to rebuild it exactly (pinned commits,
    spine, splits, seed, format), what came out (row counts, content hash, statistics) and the fitted
    transformations, as one JSON spec."""

    __tablename__ = "fs_training_datasets"
    __table_args__ = (
        UniqueConstraint("project", "feature_view", "feature_view_version", "version", name="uq_fs_training_datasets"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(255), index=True)
    feature_view: Mapped[str] = mapped_column(String(255))
    feature_view_version: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class ModelVersionRow(Base):
    """One version of a model in the model registry: where its artifact is and its SHA-256 (checked on every
    load), metrics, parameters, schema and input example, lineage (feature view, training dataset) and tags, as
    one JSON spec beside the columns that are queried."""

    __tablename__ = "fs_model_versions"
    __table_args__ = (UniqueConstraint("project", "name", "version", name="uq_fs_model_versions_pnv"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class DeploymentRow(Base):
    """A named deployment serving one model version: where it runs (host, port, pid of a local process), which
    version it served before (for rollback), and its state, as kept by the serving layer."""

    __tablename__ = "fs_deployments"
    __table_args__ = (UniqueConstraint("project", "name", name="uq_fs_deployments_pn"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, onupdate=utc_now)
