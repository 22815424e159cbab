"""The DataFrame a feature-group asset computes, as a Dagster type built with dagster-pandas.

Columns, storage types and constraints come from the feature-group spec (declared ``Feature.type``), else from the
pandera schema (its dtypes, mapped to the types the offline store writes): every column must be there, hold values
of its type's family (what the store would cast or refuse, see ``fs_dagster.core.offline.hudi_schema``), and the
primary key has no nulls. The UI shows the type with its column schema on the asset page.

Where the check runs: a :func:`feature_group_asset` commits inside its body and outputs the commit
(:class:`FeatureGroupCommit`), not the frame, so a type check of the output would come after the write. The body
therefore checks the frame itself, after pandera and before anything is written (a failure is a step failure
naming the column, and nothing is written); the output's type check then reports that result, which Dagster shows
as the step's type check. A plain ``@asset(dagster_type=feature_group_dagster_type(spec), io_manager_key=...)``
gets the ordinary behaviour: Dagster checks the returned frame before the IO manager writes it.

Pandera stays the validation of values (ranges, uniqueness, allowed sets) as a blocking asset check with failure
cases; this type is the contract of shape and types.

dagster-pandas is optional (the ``[dagster-pandas]`` extra; it pins one exact dagster release, so a hard
dependency would move the user's dagster): without it the same constraints are checked here, with the same
messages, and the type carries the same column schema.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd
import pandas.api.types as ptypes
import pyarrow as pa
from dagster import DagsterType, MetadataValue, TableColumn, TableColumnConstraints, TableSchema, TypeCheck

from fs_dagster.beta_apis import accepting_beta
from fs_dagster.core.offline.hudi_schema import type_family
from fs_dagster.core.specs import Feature, FeatureGroupSpec

TIMESTAMP_TEXT = "timestamp[us, tz=UTC]"  # what the offline store writes for any timestamp (naive = UTC)


def _family_of_text(type_text: str) -> str | None:
    """The type family (``hudi_schema`` families) of a ``Feature.type`` text such as ``int64`` or ``double``."""
    text = type_text.strip().lower()
    if not text:
        return None
    if text.startswith(("int", "uint")):
        return "integer"
    if text in ("double", "float", "halffloat", "float64", "float32", "float16"):
        return "floating"
    if text in ("bool", "boolean"):
        return "boolean"
    if text in ("string", "large_string", "utf8", "large_utf8", "str"):
        return "string"
    if text.startswith("timestamp") or text.startswith("datetime"):
        return "timestamp"
    if text.startswith("date"):
        return "date"
    return None


def storage_type_of(dtype: Any) -> str:
    """The offline store's type (Arrow text) for a pandas/numpy dtype or a pandera ``DataType``; ``""`` if it is
    not one a feature can have (then the first write decides, or refuses it)."""
    raw = getattr(dtype, "type", dtype)  # a pandera DataType wraps the pandas/numpy dtype
    text = str(dtype).lower()
    try:
        if ptypes.is_bool_dtype(raw):
            return "bool"
        if ptypes.is_integer_dtype(raw):
            return "int32" if pd.api.types.pandas_dtype(raw).itemsize <= 4 else "int64"
        if ptypes.is_float_dtype(raw):
            return "float" if pd.api.types.pandas_dtype(raw).itemsize == 4 else "double"
        if ptypes.is_datetime64_any_dtype(raw):
            return TIMESTAMP_TEXT
        if text in ("date", "date32[day]"):
            return "date32[day]"
        if ptypes.is_string_dtype(raw):
            return "string"
    except TypeError:  # not a dtype pandas knows (a pandera logical type): leave it to the first write
        return ""
    return ""


def typed_spec(spec: FeatureGroupSpec, schema: Any = None) -> FeatureGroupSpec:
    """The spec with one :class:`Feature` per column (keys, event time and partition columns included), each with
    its storage type: the declared ``Feature.type``, else the pandera schema's dtype; descriptions from the spec,
    else from pandera fields. Columns the spec does not name come in the schema's order.

    Used for what Dagster shows before the first write (the ``fs_dagster/feature_group`` spec, column schema and
    Dagster type); the registry's types, from the table, are what materializations show.
    """
    columns: dict[str, tuple[str, str]] = {}  # name -> (type, description) from pandera
    if schema is not None:
        frame_schema = schema.to_schema() if hasattr(schema, "to_schema") else schema
        for name, column in getattr(frame_schema, "columns", {}).items():
            columns[str(name)] = (storage_type_of(column.dtype) if column.dtype is not None else "",
                                  column.description or "")
    names = list(columns) or [*spec.primary_key, *([spec.event_time] if spec.event_time else []),
                              *spec.partition_key]
    names += [f.name for f in spec.features]
    features = []
    for name in dict.fromkeys(names):
        declared = spec.feature(name)
        schema_type, schema_description = columns.get(name, ("", ""))
        features.append(Feature(
            name=name,
            type=(declared.type if declared and declared.type else schema_type),
            description=(declared.description if declared and declared.description else schema_description),
            primary=name in spec.primary_key,
            partition=name in spec.partition_key,
            event_time=name == spec.event_time,
        ))
    return replace(spec, features=tuple(features))


def spec_column_schema(spec: FeatureGroupSpec) -> TableSchema:
    """``dagster/column_schema`` of a (typed) spec: every column, its storage type, its role in the description."""
    return TableSchema(columns=[
        TableColumn(
            name=f.name,
            type=f.type or "unknown",
            description=_described(f.description, _roles(spec, f.name)) or None,
            constraints=TableColumnConstraints(nullable=f.name not in spec.primary_key),
        )
        for f in spec.features
    ])


def _roles(spec: FeatureGroupSpec, name: str) -> list[str]:
    roles = []
    if name in spec.primary_key:
        roles.append("primary key")
    if name == spec.event_time:
        roles.append("event time")
    if name in spec.partition_key:
        roles.append("partition key")
    return roles


def _described(description: str, roles: list[str]) -> str:
    return f"[{', '.join(roles)}] {description}".strip() if roles else description


def storage_type_violation(frame: pd.DataFrame, column: str, type_text: str) -> str | None:
    """Why ``column``'s dtype cannot be stored as ``type_text`` (same family; integers may go into floats), or
    None when it can."""
    dtype = frame[column].dtype
    if _dtype_fits(dtype, _family_of_text(type_text)):
        return None
    return (f"dtype {dtype} cannot be stored as {type_text} (the feature group's type); a type change needs a new "
            "feature group version")


def null_key_violation(frame: pd.DataFrame, column: str) -> str | None:
    """How many nulls primary-key ``column`` holds and where the first is (the store refuses them), or None."""
    missing = frame[column].isna().to_numpy()
    if not missing.any():
        return None
    nulls, first = int(missing.sum()), int(missing.argmax())
    return f"{nulls} null value(s) in primary-key column (first at row {first})"


def _dtype_fits(dtype: Any, family: str | None) -> bool:
    if family is None:
        return True
    if family == "integer":
        return ptypes.is_integer_dtype(dtype) and not ptypes.is_bool_dtype(dtype)
    if family == "floating":
        return (ptypes.is_float_dtype(dtype) or ptypes.is_integer_dtype(dtype)) and not ptypes.is_bool_dtype(dtype)
    if family == "boolean":
        return ptypes.is_bool_dtype(dtype)
    if family == "timestamp":
        return ptypes.is_datetime64_any_dtype(dtype)
    if family == "string":
        return ptypes.is_string_dtype(dtype) or ptypes.is_object_dtype(dtype)
    if family == "date":
        return ptypes.is_object_dtype(dtype) or ptypes.is_datetime64_any_dtype(dtype)
    return True


def _constraints(spec: FeatureGroupSpec, feature: Feature) -> list[tuple[str, str, Any]]:
    """(name, description, check) of each constraint of a feature's column; ``check(frame, column)`` gives the
    violation or None."""
    out: list[tuple[str, str, Any]] = []
    if feature.type:
        out.append(("StorageTypeConstraint", f"values storable as {feature.type}",
                    lambda frame, column, type_text=feature.type: storage_type_violation(frame, column, type_text)))
    if feature.name in spec.primary_key:
        out.append(("NoNullKeyConstraint", "no nulls (primary key)", null_key_violation))
    return out


def _markdown(description: str, spec: FeatureGroupSpec) -> str:
    """The type's description with a ``### Columns`` list of each column's constraints (dagster-pandas's layout)."""
    text = "\n".join([description, "### Columns", ""])
    for feature in spec.features:
        bullets = "".join(f"+ {about}\n" for _name, about, _check in _constraints(spec, feature))
        text += f"**{feature.name}**\n{bullets}\n"
    return text


def _dagster_pandas() -> Any:
    """The ``dagster_pandas`` module, or None when the extra is not installed."""
    try:
        import dagster_pandas
    except ImportError:
        return None
    return dagster_pandas


def _dagster_pandas_column(dagster_pandas: Any, spec: FeatureGroupSpec, feature: Feature) -> Any:
    """The feature's ``PandasColumn``: our constraints as dagster-pandas ``ColumnConstraint`` objects."""
    from dagster_pandas.constraints import ColumnConstraint, ColumnConstraintViolationException

    class _Constraint(ColumnConstraint):
        def __init__(self, name: str, description: str, check: Any) -> None:
            self._check = check
            super().__init__(error_description=description, markdown_description=description)
            self.name = name  # what the message shows (dagster-pandas sets the class name)

        def validate(self, dataframe: pd.DataFrame, column_name: str) -> None:
            violation = self._check(dataframe, column_name)
            if violation is not None:
                raise ColumnConstraintViolationException(
                    constraint_name=self.name, constraint_description=violation, column_name=column_name)

    constraints = [_Constraint(*c) for c in _constraints(spec, feature)]
    return dagster_pandas.PandasColumn(feature.name, constraints=constraints, is_required=True)


def type_name(spec: FeatureGroupSpec) -> str:
    """The Dagster type's name: unique per feature group version (Dagster keys types by name)."""
    return f"FeatureGroupFrame_{spec.name}_v{spec.version}"


class FeatureGroupFrameType(DagsterType):
    """The DataFrame (or Arrow table) of one feature group; see the module doc for where it is checked."""

    def __init__(self, spec: FeatureGroupSpec, schema: Any = None) -> None:
        self.spec = typed_spec(spec, schema)
        description = (f"Rows of feature group {spec.name} v{spec.version}: every column present, values storable "
                       "as its type, no null primary key.")
        self.frame_type: Any = None  # the dagster-pandas type, when that extra is installed
        dagster_pandas = _dagster_pandas()
        if dagster_pandas is not None:
            with accepting_beta("PandasColumn", "create_dagster_pandas_dataframe_type"):
                columns = [_dagster_pandas_column(dagster_pandas, self.spec, f) for f in self.spec.features]
                self.frame_type = dagster_pandas.create_dagster_pandas_dataframe_type(
                    type_name(spec), description=description, columns=columns)
        super().__init__(
            type_check_fn=self._check,
            name=type_name(spec),
            # the columns and their constraints, as the UI shows the type (dagster-pandas's markdown, or the same)
            description=self.frame_type.description if self.frame_type is not None else _markdown(description,
                                                                                                    self.spec),
            metadata={"dagster/column_schema": MetadataValue.table_schema(spec_column_schema(self.spec))},
            typing_type=Any,
        )

    def check_frame(self, data: Any) -> TypeCheck:
        """Checks a frame the asset computed (pandas through dagster-pandas; Arrow by its schema)."""
        if isinstance(data, pa.Table):
            return self._check_arrow(data)
        if not isinstance(data, pd.DataFrame):
            return TypeCheck(success=False, description=f"expected a pandas DataFrame or Arrow table, got "
                             f"{type(data).__name__}")
        if self.frame_type is not None:
            result = self.frame_type.type_check(None, data)  # type: ignore[arg-type]  # dagster-pandas ignores it
        else:
            result = self._check_pandas(data)
        if not result.success:
            return result
        return TypeCheck(success=True, metadata={"rows_checked": len(data), "columns_checked": len(self.spec.features)})

    def _check_pandas(self, frame: pd.DataFrame) -> TypeCheck:
        """The dagster-pandas checks without dagster-pandas (same order and messages)."""
        for feature in self.spec.features:
            if feature.name not in frame.columns:
                return TypeCheck(success=False, description=f"Required column {feature.name} not in dataframe with "
                                 f"columns {frame.columns}")
        for feature in self.spec.features:
            for name, _description, check in _constraints(self.spec, feature):
                violation = check(frame, feature.name)
                if violation is not None:
                    return TypeCheck(success=False,
                                     description=f'Violated "{name}" for column "{feature.name}" - {violation}')
        return TypeCheck(success=True)

    def _check(self, _context: Any, value: Any) -> TypeCheck:
        from fs_dagster.materialization import FeatureGroupCommit

        if isinstance(value, FeatureGroupCommit):  # the frame was checked in the body, before the write
            return value.type_check or TypeCheck(success=True, description="committed (no frame to check)")
        return self.check_frame(value)

    def _check_arrow(self, table: pa.Table) -> TypeCheck:
        for feature in self.spec.features:
            index = table.schema.get_field_index(feature.name)
            if index < 0:
                return TypeCheck(success=False, description=f"column {feature.name!r} is missing")
            field = table.schema.field(index)
            want, got = _family_of_text(feature.type), type_family(field.type)
            if want is not None and field.type != pa.null() and not (
                    got == want or (want == "floating" and got == "integer")):
                return TypeCheck(success=False, description=f"column {feature.name!r}: {field.type} cannot be "
                                 f"stored as {feature.type} (the feature group's type)")
            if feature.name in self.spec.primary_key and table.column(index).null_count:
                return TypeCheck(success=False, description=f"column {feature.name!r}: "
                                 f"{table.column(index).null_count} null value(s) in primary-key column")
        return TypeCheck(success=True, metadata={"rows_checked": table.num_rows,
                                                 "columns_checked": len(self.spec.features)})


def feature_group_dagster_type(spec: FeatureGroupSpec, schema: Any = None) -> FeatureGroupFrameType:
    """The Dagster type of ``spec``'s frames (``schema``: a pandera schema that supplies undeclared types).

    Example:
        @asset(io_manager_key="fs_io_manager", dagster_type=feature_group_dagster_type(AIRCRAFT, schemas.Aircraft),
               metadata=FeatureGroupTranslator().get_asset_spec(AIRCRAFT).metadata)
        def aircraft() -> pd.DataFrame: ...
    """
    return FeatureGroupFrameType(spec, schema)
