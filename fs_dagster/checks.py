"""Pandera schemas as blocking Dagster asset checks.

Error-level failures (ordinary pandera checks) fail the check with severity ERROR and the data is not written;
checks declared with ``raise_warning=True`` fail it with severity WARN and the data is written.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Union

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue, TableColumn, TableRecord, TableSchema

PanderaSchema = Union[Any]  # pandera.pandas.DataFrameSchema or a DataFrameModel subclass
MAX_FAILURE_ROWS = 100
_FAILURE_COLUMNS = ("schema_context", "column", "check", "check_number", "failure_case", "index")


@dataclass(frozen=True)
class SchemaValidation:
    """Outcome of validating a DataFrame: the (possibly coerced) data and the check result to report."""

    data: pd.DataFrame
    result: AssetCheckResult

    @property
    def blocks_write(self) -> bool:
        return not self.result.passed and self.result.severity == AssetCheckSeverity.ERROR


def validate_with_pandera(
    data: pd.DataFrame, schema: PanderaSchema, asset_key: AssetKey, check_name: str
) -> SchemaValidation:
    """Validates lazily (every failure collected) and turns pandera's failure cases into check metadata."""
    from pandera.errors import SchemaError, SchemaErrors, SchemaWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SchemaWarning)
        try:
            validated = schema.validate(data, lazy=True)
        except SchemaErrors as errors:
            return SchemaValidation(data, _failed(asset_key, check_name, errors.failure_cases, AssetCheckSeverity.ERROR))
        except SchemaError as error:  # raised for schema-level problems even in lazy mode
            cases = pd.DataFrame([{"schema_context": "DataFrameSchema", "check": str(error), "failure_case": None}])
            return SchemaValidation(data, _failed(asset_key, check_name, cases, AssetCheckSeverity.ERROR))
    warned = [w for w in caught if issubclass(w.category, SchemaWarning)]
    if warned:
        cases = pd.DataFrame([{"schema_context": "warning", "check": str(w.message)} for w in warned])
        return SchemaValidation(validated, _failed(asset_key, check_name, cases, AssetCheckSeverity.WARN))
    return SchemaValidation(
        validated,
        AssetCheckResult(
            asset_key=asset_key,
            check_name=check_name,
            passed=True,
            metadata={"num_failures": 0, "rows_validated": len(data)},
        ),
    )


def _failed(asset_key: AssetKey, check_name: str, cases: pd.DataFrame, severity: AssetCheckSeverity) -> AssetCheckResult:
    columns = [c for c in _FAILURE_COLUMNS if c in cases.columns]
    records = [
        TableRecord({c: _plain(row.get(c)) for c in columns})
        for row in cases.head(MAX_FAILURE_ROWS).to_dict("records")
    ]
    failing_columns = sorted({str(c) for c in cases.get("column", pd.Series(dtype=object)).dropna()})
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=False,
        severity=severity,
        description=f"{len(cases)} failure case(s) in column(s): {', '.join(failing_columns) or 'schema'}",
        metadata={
            "num_failures": len(cases),
            "failing_columns": ", ".join(failing_columns) or "schema",
            "failure_cases": MetadataValue.table(
                records=records, schema=TableSchema(columns=[TableColumn(c, "string") for c in columns])
            ),
        },
    )


def _plain(value: Any) -> str | None:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)
