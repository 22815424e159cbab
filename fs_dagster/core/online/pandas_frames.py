"""Small Arrow tables as pandas DataFrames, identical to ``table.to_pandas(use_threads=False)`` but faster.

``pyarrow.Table.to_pandas`` is a C++ conversion of the columns into consolidated 2-D blocks (one per dtype)
followed by Python that rebuilds a DataFrame from them (pandas metadata, extension dtypes, the column index,
one pandas block per Arrow block). For a serving batch (1,000 rows x ~12 columns) the Python part costs about
twice the conversion itself. :func:`arrow_to_pandas` calls the same C++ conversion (``pyarrow.lib.table_to_blocks``,
with the options ``to_pandas`` passes by default) and builds the frame from its blocks directly, with the
per-schema work (which types are handled, the column index) done once per schema and kept in a small cache.

The fast path takes only tables whose schema has no pandas metadata, unique column names and columns of the
types listed in :func:`_handled`; anything else, and any block it does not recognise, goes to
``table.to_pandas(use_threads=False)``, so correctness never rests on the fast path. The blocks are freshly
allocated by the conversion (never views of Arrow buffers), so the frame owns its data and is writable like
``to_pandas``'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

try:  # pandas >= 3: the public way to build a frame from blocks (what pyarrow itself uses there)
    from pandas.api.internals import create_dataframe_from_blocks as _from_blocks
except ImportError:  # pandas 2.x (its internals no longer change): pyarrow builds the BlockManager itself, as here
    _from_blocks = None
    from pandas._libs.internals import BlockPlacement as _BlockPlacement
    from pandas.core.internals import BlockManager as _BlockManager
    from pandas.core.internals.blocks import ensure_block_shape as _ensure_block_shape
    from pandas.core.internals.blocks import new_block as _new_block

_PANDAS_GE_3 = int(pd.__version__.split(".", 1)[0]) >= 3
# what pyarrow's to_pandas() passes by default (use_threads=False); a key a newer pyarrow needs and this lacks
# makes table_to_blocks raise KeyError, which sends the table to to_pandas
_OPTIONS = dict(pool=None, strings_to_categorical=False, zero_copy_only=False, integer_object_nulls=False,
                date_as_object=True, timestamp_as_object=False, use_threads=False, deduplicate_objects=True,
                safe=True, split_blocks=False, self_destruct=False, maps_as_pydicts=None,
                coerce_temporal_nanoseconds=False)
_CACHE_SIZE = 16
# (schema, pandas string dtype in use, plan or None for "not handled"), most recent first
_plans: list[tuple[pa.Schema, bool, _Plan | None]] = []
_tz_dtypes: dict[tuple[str, str], Any] = {}


class _Plan:
    """What a schema needs beyond the conversion: its column index and, with pandas' string dtype, the string
    columns (converted by the dtype's ``__from_arrow__``, as pyarrow does)."""

    __slots__ = ("columns", "string_columns", "string_dtype")

    def __init__(self, columns: pd.Index, string_columns: list[str], string_dtype: Any) -> None:
        self.columns = columns
        self.string_columns = string_columns
        self.string_dtype = string_dtype

    def column_index(self) -> pd.Index:
        """A new Index object over the cached names: the caller may rename it (``frame.columns.name = ...``)
        without touching the cache, and the names array is read-only (object dtype) so it cannot be edited."""
        return self.columns.copy() if self.columns.dtype != object else pd.Index._simple_new(self.columns._values)


def _handled(arrow_type: pa.DataType) -> bool:
    """Types whose converted block is a plain numpy block (or, for tz-aware timestamps, a DatetimeArray) and
    that the property tests cover."""
    t = pa.types
    if t.is_timestamp(arrow_type):
        return arrow_type.tz in (None, "UTC")
    return (t.is_integer(arrow_type) or t.is_float64(arrow_type) or t.is_float32(arrow_type)
            or t.is_boolean(arrow_type) or t.is_string(arrow_type) or t.is_large_string(arrow_type)
            or t.is_date32(arrow_type))


def _uses_string_dtype() -> bool:
    """Whether pyarrow converts strings to pandas' string dtype (pandas 3, or 2.3 with ``future.infer_string``)."""
    if _PANDAS_GE_3:
        return True
    try:
        return bool(pd.get_option("future.infer_string"))
    except (KeyError, pd.errors.OptionError):
        return False


def _plan(schema: pa.Schema, string_dtype: bool) -> _Plan | None:
    for cached_schema, cached_string_dtype, plan in _plans:
        if cached_string_dtype == string_dtype and cached_schema.equals(schema, check_metadata=True):
            return plan
    plan = _make_plan(schema, string_dtype)
    _plans.insert(0, (schema, string_dtype, plan))
    del _plans[_CACHE_SIZE:]
    return plan


def _make_plan(schema: pa.Schema, string_dtype: bool) -> _Plan | None:
    metadata = schema.metadata
    names = schema.names
    if (metadata and b"pandas" in metadata) or len(set(names)) != len(names):
        return None
    if not all(_handled(field.type) for field in schema):
        return None
    columns = pd.Index(names)  # (as pyarrow builds it: object dtype, or str with pandas' string dtype)
    if columns.dtype == object:
        values = np.array(columns._values, dtype=object)
        values.flags.writeable = False
        columns = pd.Index._simple_new(values)
    string_columns = [field.name for field in schema
                      if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)]
    return _Plan(columns, string_columns if string_dtype else [],
                 pd.StringDtype(na_value=np.nan) if string_dtype else None)


def _tz_dtype(unit: str, tz: str) -> Any:
    key = (unit, tz)
    dtype = _tz_dtypes.get(key)
    if dtype is None:
        dtype = _tz_dtypes[key] = pd.DatetimeTZDtype(unit, pa.lib.string_to_tzinfo(tz))
    return dtype


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """``table.to_pandas(use_threads=False)``, built faster for tables of common column types (see module doc).

    Args:
        table: the Arrow table.

    Returns:
        A DataFrame equal in dtypes, values, nulls, column names and RangeIndex to ``to_pandas``'s.
    """
    string_dtype = _uses_string_dtype()
    plan = _plan(table.schema, string_dtype)
    if plan is not None:
        try:
            frame = _build(table, plan)
        except Exception:  # noqa: BLE001 - an internal API changed, or a value to_pandas would refuse too
            frame = None
        if frame is not None:
            return frame
    return table.to_pandas(use_threads=False)


def _build(table: pa.Table, plan: _Plan) -> pd.DataFrame | None:
    """The frame from pyarrow's blocks, or None for a block this does not recognise."""
    items = pa.lib.table_to_blocks(_OPTIONS, table, None, plan.string_columns)
    blocks = []
    for item in items:
        keys = item.keys()
        if keys == {"block", "placement"}:  # a 2-D numpy block of the columns at "placement"
            values = item["block"]
            if values.dtype.kind not in "biufOM":
                return None
        elif keys == {"block", "placement", "timezone"}:  # one tz-aware column as naive datetime64
            values = item["block"]
            if values.dtype.kind != "M":
                return None
            unit, _ = np.datetime_data(values.dtype)
            values = pd.arrays.DatetimeArray._simple_new(values, dtype=_tz_dtype(unit, item["timezone"]))
        elif keys == {"py_array", "placement"} and plan.string_dtype is not None:  # a string column (str dtype)
            values = plan.string_dtype.__from_arrow__(item["py_array"])
        else:  # (categorical, other extension blocks: never for the handled types)
            return None
        blocks.append((values, item["placement"]))
    index = pd.RangeIndex._simple_new(range(table.num_rows))  # (pd.RangeIndex(n) validates n: 3 us more)
    if _from_blocks is not None:
        return _from_blocks(blocks, index=index, columns=plan.column_index())
    # new_block: make_block without its argument checks (~2 us a block); the manager still checks the shapes
    manager = _BlockManager([_new_block(_ensure_block_shape(values, 2),
                                        _BlockPlacement(placement), ndim=2)
                             for values, placement in blocks],
                            [plan.column_index(), index])
    return pd.DataFrame._from_mgr(manager, manager.axes)
