"""Materialization metadata for feature-group commits: what the Dagster UI shows for each write."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Sequence

import pandas as pd
import pyarrow as pa
from dagster import MetadataValue, TableColumn, TableColumnConstraints, TableRecord, TableSchema

from fs_dagster.core.commit_windows import WindowFigures
from fs_dagster.core.monitoring.statistics import summarize
from fs_dagster.core.offline.hudi_writer import CommitResult
from fs_dagster.core.specs import FeatureGroupSpec


def column_schema(spec: FeatureGroupSpec, schema: pa.Schema) -> TableSchema:
    """``dagster/column_schema`` from the table's Arrow schema and the spec's feature descriptions."""
    columns = []
    for field in schema:
        feature = spec.feature(field.name)
        role = []
        if field.name in spec.primary_key:
            role.append("primary key")
        if field.name == spec.event_time:
            role.append("event time")
        if field.name in spec.partition_key:
            role.append("partition key")
        description = (feature.description if feature else "") or ""
        if role:
            description = f"[{', '.join(role)}] {description}".strip()
        columns.append(
            TableColumn(
                name=field.name,
                type=str(field.type),
                description=description or None,
                constraints=TableColumnConstraints(nullable=field.name not in spec.primary_key),
            )
        )
    return TableSchema(columns=columns)


def arrow_table_schema(schema: pa.Schema) -> TableSchema:
    """``dagster/column_schema`` of an Arrow schema (names, Arrow types, nullability)."""
    return TableSchema(
        columns=[
            TableColumn(name=f.name, type=str(f.type), constraints=TableColumnConstraints(nullable=f.nullable))
            for f in schema
        ]
    )


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A small Markdown table (the UI renders it); values are shortened to keep it readable."""
    if not rows:
        return "_(no rows)_"
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 40 else text[:37] + "..."


def preview(data: pd.DataFrame, rows: int = 10) -> MetadataValue:
    return MetadataValue.md(markdown_table(data.head(rows).to_dict("records"), list(data.columns)))


STATISTICS_COLUMNS = ("feature", "count", "nulls", "mean ± std", "range")


def statistics_table(summary: list[dict[str, Any]]) -> MetadataValue:
    """``fs_dagster/statistics``: one row per feature (the same table for feature groups, their partitions and
    training datasets). Built to fit the UI's metadata column, which cuts what is wider: five columns (types are
    in the column schema), numbers to 4 significant digits, times to the minute, long text cut, and the two wide
    cells (``mean ± std``, ``range``: ``min – max``) wrap at their spaces. Full statistics: ``fg.statistics()`` /
    ``td.statistics``."""
    records = []
    for row in summary:
        type_text = row.get("type")
        mean, std = _short_value(row.get("mean")), _short_value(row.get("std"))
        low, high = _short_value(row.get("min"), type_text), _short_value(row.get("max"), type_text)
        records.append(TableRecord({
            "feature": str(row.get("name")),
            "count": _int_or_none(row.get("count")),
            "nulls": _int_or_none(row.get("nulls")),
            "mean ± std": None if mean is None else f"{mean} ± {std}" if std is not None else mean,
            "range": None if low is None and high is None else f"{low} – {high}",
        }))
    schema = TableSchema(columns=[
        TableColumn(name, "int" if name in ("count", "nulls") else "string") for name in STATISTICS_COLUMNS
    ])
    return MetadataValue.table(records=records, schema=schema)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _short_value(value: Any, type_text: Any = None) -> str | None:
    """A statistic as short text: 4 significant digits, a time to the minute (its date alone at midnight)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str) and str(type_text or "").startswith("timestamp"):
        try:
            value = pd.Timestamp(value)  # statistics keep times as ISO text
        except ValueError:
            pass
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    if isinstance(value, (datetime, pd.Timestamp)):
        moment = pd.Timestamp(value)
        return moment.strftime("%Y-%m-%d") if moment == moment.normalize() else moment.strftime("%Y-%m-%d %H:%M")
    text = str(value)
    return text if len(text) <= 16 else text[:15] + "\u2026"


def commit_metadata(
    spec: FeatureGroupSpec,
    result: CommitResult,
    *,
    table_path: str,
    project: str,
    schema: pa.Schema,
    row_count: int,
    latest_instant: str | None,
    per_partition: bool = False,
) -> dict[str, Any]:
    """Metadata recorded with every feature-group materialization: the commit and the whole table.

    With ``per_partition`` (a time-partitioned run) the counts of the whole commit and table are
    ``fs_dagster/commit_rows_*`` and ``fs_dagster/table_row_count``: the unprefixed names and ``dagster/row_count``
    belong to each partition's own figures (:func:`partition_metadata`).
    """
    counts = {
        "rows_inserted": result.rows_inserted,
        "rows_updated": result.rows_updated,
        "rows_deleted": result.rows_deleted,
    }
    prefix = "fs_dagster/commit_" if per_partition else "fs_dagster/"
    metadata: dict[str, Any] = {
        "fs_dagster/commit": MetadataValue.text(result.instant or f"(no new commit; latest {latest_instant})"),
        "fs_dagster/operation": result.operation,
        **{prefix + name: value for name, value in counts.items()},
        "fs_dagster/duplicates_dropped": result.duplicates_dropped,
        "fs_dagster/rows_unchanged": result.rows_unchanged,
        "fs_dagster/rows_outdated": result.rows_outdated,
        "fs_dagster/files_written": len(result.files),
        "fs_dagster/columns_added": ", ".join(result.columns_added) or "none",
        "fs_dagster/table_path": MetadataValue.path(table_path),
        "dagster/table_name": f"{project}.{spec.table_name}",
        "fs_dagster/table_row_count" if per_partition else "dagster/row_count": row_count,
        "dagster/column_schema": column_schema(spec, schema),
        # the definition as stored, every column with the type the table gives it
        "fs_dagster/feature_group": MetadataValue.json(
            spec.with_schema([(f.name, str(f.type)) for f in schema]).to_dict()),
    }
    return metadata


def partition_metadata(figures: WindowFigures, batch: pd.DataFrame, in_window: pd.Series) -> dict[str, Any]:
    """One time partition's own figures after a commit (see :mod:`fs_dagster.core.commit_windows`).

    ``dagster/row_count`` is the rows the partition's event-time window holds after the commit (what the
    partition is, not what this run sent: that is ``fs_dagster/batch_rows``).

    Args:
        figures: the window's figures.
        batch: the rows the run wrote; ``in_window`` marks those of this window (for the preview).
    """
    metadata: dict[str, Any] = {
        "fs_dagster/partition_window": f"[{figures.start.isoformat()}, {figures.end.isoformat()})",
        "dagster/row_count": figures.row_count,
        "fs_dagster/batch_rows": figures.batch_rows,
        "fs_dagster/rows_inserted": figures.rows_inserted,
        "fs_dagster/rows_updated": figures.rows_updated,
        "fs_dagster/partition_version": figures.content_version,
    }
    if figures.statistics is not None:
        metadata["fs_dagster/statistics"] = statistics_table(summarize(figures.statistics))
    metadata["fs_dagster/preview"] = preview(batch.loc[in_window.to_numpy()])
    return metadata
