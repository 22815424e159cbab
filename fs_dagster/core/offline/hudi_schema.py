"""Arrow <-> Avro schema handling for Hudi tables: which types a feature may have, and how a batch is made to
fit an existing table (safe casts, new nullable columns) or refused (type changes, missing columns)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from fs_dagster.core.errors import InvalidDataError, SchemaChangeError

META_COLUMNS: tuple[str, ...] = (
    "_hoodie_commit_time",
    "_hoodie_commit_seqno",
    "_hoodie_record_key",
    "_hoodie_partition_path",
    "_hoodie_file_name",
)
# Spark writes the meta columns as non-null strings; we do the same so files of both writers share one schema.
META_SCHEMA = pa.schema([pa.field(name, pa.string(), nullable=False) for name in META_COLUMNS])

TIMESTAMP = pa.timestamp("us", tz="UTC")

# Type families: a batch may carry any member of the column's family (it is cast safely), never another family.
_FAMILIES: dict[str, Any] = {
    "integer": pa.types.is_integer,
    "floating": pa.types.is_floating,
    "boolean": pa.types.is_boolean,
    "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "timestamp": pa.types.is_timestamp,
    "date": pa.types.is_date,
}
SUPPORTED_TYPES_TEXT = "int, float, bool, string, timestamp, date"

# Hudi keeps each commit's schema as Avro, whose names are ASCII letters, digits and '_', not starting with a digit.
# Any other column name makes hudi-rs and Spark fail on every later read of the table ("Invalid field name").
AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_column_name(name: object, role: str = "column") -> str:
    """Refuses a column name Hudi cannot store (not an Avro name), suggesting one it can.

    Raises:
        InvalidDataError: naming the column and the rule.
    """
    if isinstance(name, str) and AVRO_NAME.fullmatch(name):
        return name
    if not isinstance(name, str) or not name:
        raise InvalidDataError(f"{role} name {name!r}: a column name must be a non-empty string")
    suggestion = re.sub(r"[^A-Za-z0-9_]", "_", name)
    suggestion = "_" + suggestion if suggestion[0].isdigit() else suggestion
    raise InvalidDataError(
        f"{role} name {name!r} cannot be stored: Hudi keeps the schema as Avro, whose names are ASCII letters, "
        f"digits and '_', not starting with a digit; rename it (e.g. {suggestion!r})"
    )


def type_family(arrow_type: pa.DataType) -> str | None:
    """The family name of a type fs-dagster can store as a feature, else None."""
    for name, test in _FAMILIES.items():
        if test(arrow_type):
            return name
    return None


def canonical_type(column: str, arrow_type: pa.DataType) -> pa.DataType:
    """The storage type of a feature column: int64/int32, float64/float32, bool, string, timestamp[us, UTC], date32.

    Raises:
        InvalidDataError: the type is not one a feature may have; the message names the column.
    """
    family = type_family(arrow_type)
    if family == "integer":
        if arrow_type in (pa.uint64(),):
            raise InvalidDataError(f"column {column!r}: unsigned 64-bit integers are not supported; cast to int64")
        return pa.int32() if arrow_type.bit_width <= 16 or arrow_type == pa.int32() else pa.int64()
    if family == "floating":
        return pa.float32() if arrow_type == pa.float32() else pa.float64()
    if family == "boolean":
        return pa.bool_()
    if family == "string":
        return pa.string()
    if family == "timestamp":
        return TIMESTAMP
    if family == "date":
        return pa.date32()
    raise InvalidDataError(
        f"column {column!r} has type {arrow_type}, which a feature cannot have (supported: {SUPPORTED_TYPES_TEXT})"
    )


def cast_column(column: str, array: pa.ChunkedArray | pa.Array, target: pa.DataType) -> pa.ChunkedArray:
    """Casts safely to ``target``; naive timestamps are taken as UTC. Raises InvalidDataError naming the column."""
    source = array.type
    try:
        if pa.types.is_timestamp(source) and source.tz is None and pa.types.is_timestamp(target):
            array = pc.assume_timezone(array, "UTC")
        # safe=True: overflow, or nanoseconds below a microsecond, is an error rather than silent truncation.
        return array.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidDataError(f"column {column!r}: cannot store {source} values as {target}: {exc}") from exc


def to_arrow(data: Any) -> pa.Table:
    """Accepts a pyarrow Table, a pandas DataFrame or anything ``pa.table`` understands."""
    if isinstance(data, pa.Table):
        return data
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            if not all(isinstance(c, str) for c in data.columns):
                raise InvalidDataError(f"column names must be strings, got {list(data.columns)!r}")
            twice = sorted({c for c in data.columns if list(data.columns).count(c) > 1})
            if twice:  # pyarrow would raise a bare ValueError
                raise InvalidDataError(f"column(s) {twice} appear more than once in the DataFrame")
            return pa.Table.from_pandas(data, preserve_index=False)
    except pa.ArrowTypeError as exc:  # mixed object columns
        raise InvalidDataError(f"cannot convert DataFrame to Arrow: {exc}") from exc
    except pa.ArrowInvalid as exc:
        raise InvalidDataError(f"cannot convert DataFrame to Arrow: {exc}") from exc
    return pa.table(data)


def canonicalize_new_table(table: pa.Table) -> pa.Table:
    """Casts every column of the first batch of a new table to its storage type."""
    _check_names(table)
    arrays = [cast_column(f.name, table[f.name], canonical_type(f.name, f.type)) for f in table.schema]
    return pa.table(arrays, names=table.column_names)


def _check_names(table: pa.Table) -> None:
    seen: set[str] = set()
    for name in table.column_names:
        if name in seen:
            raise InvalidDataError(f"column {name!r} appears twice")
        if name.startswith("_hoodie_"):
            raise InvalidDataError(f"column {name!r}: names starting with '_hoodie_' are reserved for Hudi")
        if not name:
            raise InvalidDataError("a column has an empty name")
        check_column_name(name)
        seen.add(name)


@dataclass(frozen=True)
class SchemaPlan:
    """How a batch fits a table: the table's data schema after this write and the columns it adds."""

    schema: pa.Schema
    added: tuple[str, ...]


def conform_to_table(table: pa.Table, existing: pa.Schema) -> tuple[pa.Table, SchemaPlan]:
    """Makes ``table`` fit an existing table schema (data columns only).

    Same-family types are cast safely (e.g. int64 batch into an int32 column), integers may go into float columns,
    new columns are appended as nullable (schema evolution); a changed family or a missing column is refused.

    Raises:
        SchemaChangeError: a column's type would change, or an existing column is missing from the batch.
        InvalidDataError: a new column has an unsupported type or a value does not fit its column.
    """
    _check_names(table)
    missing = [name for name in existing.names if name not in table.column_names]
    if missing:
        raise SchemaChangeError(
            f"columns {missing} of the table are missing from the batch; every write must carry all columns"
        )
    arrays = []
    for field in existing:
        incoming = table[field.name]
        want, got = type_family(field.type), type_family(incoming.type)
        widening = want == "floating" and got == "integer"
        if want is not None and (got == want or widening):
            arrays.append(cast_column(field.name, incoming, field.type))
        elif want is None and incoming.type == field.type:
            arrays.append(incoming)  # a type we do not create ourselves (e.g. decimal in a Spark table): pass through
        elif incoming.type == pa.null():
            arrays.append(pa.nulls(len(incoming), field.type))
        else:
            raise SchemaChangeError(
                f"column {field.name!r} is {field.type} in the table but {incoming.type} in the batch; "
                "changing a feature's type needs a new feature group version"
            )
    added = [name for name in table.column_names if name not in existing.names]
    new_fields = list(existing)
    for name in added:
        target = canonical_type(name, table[name].type)
        arrays.append(cast_column(name, table[name], target))
        new_fields.append(pa.field(name, target, nullable=True))
    schema = pa.schema(new_fields)
    return pa.Table.from_arrays(arrays, schema=schema), SchemaPlan(schema=schema, added=tuple(added))


# --- Avro ---------------------------------------------------------------------------------------------------

def _avro_type(arrow_type: pa.DataType) -> Any:
    if pa.types.is_int64(arrow_type):
        return "long"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_float64(arrow_type):
        return "double"
    if pa.types.is_float32(arrow_type):
        return "float"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_timestamp(arrow_type):
        return {"type": "long", "logicalType": "timestamp-micros"}
    if pa.types.is_date(arrow_type):
        return {"type": "int", "logicalType": "date"}
    raise InvalidDataError(f"type {arrow_type} has no Avro mapping here (supported: {SUPPORTED_TYPES_TEXT})")


def avro_field(field: pa.Field) -> dict[str, Any]:
    return {"name": field.name, "type": ["null", _avro_type(field.type)], "default": None}


def avro_schema(table_name: str, schema: pa.Schema, previous: str | None = None) -> str:
    """The Avro record schema of the data columns, as Hudi stores it in every commit.

    With ``previous`` (the schema of the latest commit), its fields are kept verbatim (Spark-written tables may
    hold types we do not generate, e.g. decimals) and only columns new in ``schema`` are appended.
    """
    if previous:
        record = json.loads(previous)
        known = {f["name"] for f in record["fields"]}
        record["fields"].extend(avro_field(f) for f in schema if f.name not in known)
    else:
        record = {
            "type": "record",
            "name": f"{table_name}_record",
            "namespace": f"hoodie.{table_name}",
            "fields": [avro_field(f) for f in schema],
        }
    return json.dumps(record, separators=(",", ":"))
