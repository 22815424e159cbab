"""Materialization metadata for feature-group commits: what the Dagster UI shows for each write."""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd
import pyarrow as pa
from dagster import MetadataValue, TableColumn, TableColumnConstraints, TableSchema

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


def statistics_table(summary: list[dict[str, Any]]) -> MetadataValue:
    return MetadataValue.md(markdown_table(summary))


def commit_metadata(
    spec: FeatureGroupSpec,
    result: CommitResult,
    *,
    table_path: str,
    project: str,
    schema: pa.Schema,
    row_count: int,
    latest_instant: str | None,
) -> dict[str, Any]:
    """Metadata recorded with every feature-group materialization."""
    return {
        "fs_dagster/commit": MetadataValue.text(result.instant or f"(no new commit; latest {latest_instant})"),
        "fs_dagster/operation": result.operation,
        "fs_dagster/rows_inserted": result.rows_inserted,
        "fs_dagster/rows_updated": result.rows_updated,
        "fs_dagster/rows_deleted": result.rows_deleted,
        "fs_dagster/duplicates_dropped": result.duplicates_dropped,
        "fs_dagster/rows_unchanged": result.rows_unchanged,
        "fs_dagster/rows_outdated": result.rows_outdated,
        "fs_dagster/files_written": len(result.files),
        "fs_dagster/columns_added": ", ".join(result.columns_added) or "none",
        "fs_dagster/table_path": MetadataValue.path(table_path),
        "dagster/table_name": f"{project}.{spec.table_name}",
        "dagster/row_count": row_count,
        "dagster/column_schema": column_schema(spec, schema),
    }
