"""Arrow tables as pandas (``fs_dagster.core.online.pandas_frames``): exactly ``table.to_pandas(use_threads=False)``.

* a property test over random tables of the handled types (nulls, NaN, -0.0, inf, empty and non-ASCII strings,
  0 and 1 rows, several chunks, odd column names), with pandas' default and string dtypes: the fast path is taken
  and gives the same frame (values, dtypes column by column, column names and order, RangeIndex);
* other types, pandas metadata and duplicate names go to ``to_pandas`` and give its frame;
* the frame owns writable data: changing it changes neither the table nor the next frame.
"""

from __future__ import annotations

import gc
from contextlib import nullcontext
import math
import os
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fs_dagster.core.online import pandas_frames
from fs_dagster.core.online.columns import to_pandas
from fs_dagster.core.online.pandas_frames import arrow_to_pandas

EXAMPLES = 2000 if os.environ.get("FS_DAGSTER_LONG_TESTS") == "1" else 150
# pandas 2.3 can be asked for pandas 3's string dtype; then the fast path converts strings as pyarrow does there
STRING_DTYPE_MODES = [False, True] if hasattr(pd.options.future, "infer_string") else [False]

INTEGER_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]
TIMESTAMP_TYPES = [pa.timestamp(unit, tz) for unit in ("s", "ms", "us", "ns") for tz in (None, "UTC")]
STRING_TYPES = [pa.string(), pa.large_string()]
HANDLED_TYPES = [*INTEGER_TYPES, pa.float32(), pa.float64(), pa.bool_(), *STRING_TYPES, pa.date32(),
                 *TIMESTAMP_TYPES]
ODD_NAMES = ["", " ", "a b", "é", "日本", "0", "None", "__index_level_0__", "x.y", "tab\t", "ünïcode-ß"]


def assert_same_frame(fast: pd.DataFrame, table: pa.Table) -> None:
    expected = table.to_pandas(use_threads=False)
    pd.testing.assert_frame_equal(fast, expected, check_exact=True)
    assert list(fast.columns) == list(expected.columns)
    assert fast.columns.dtype == expected.columns.dtype
    assert fast.index.equals(expected.index) and isinstance(fast.index, pd.RangeIndex)
    for name in expected.columns:  # (assert_frame_equal compares dtypes too; this names the column)
        assert fast[name].dtype == expected[name].dtype, name
    assert fast.attrs == expected.attrs


def _values(arrow_type: pa.DataType) -> st.SearchStrategy:
    if pa.types.is_integer(arrow_type):
        info = np.iinfo(arrow_type.to_pandas_dtype())
        return st.one_of(st.integers(int(info.min), int(info.max)), st.sampled_from([int(info.min), int(info.max), 0]))
    if pa.types.is_floating(arrow_type):
        return st.one_of(st.floats(width=32 if arrow_type == pa.float32() else 64),
                         st.sampled_from([math.nan, -0.0, 0.0, math.inf, -math.inf]))
    if pa.types.is_boolean(arrow_type):
        return st.booleans()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return st.one_of(st.text(max_size=8), st.sampled_from(["", "UA", "BOEING", "é", "日本語", "\x00"]))
    if pa.types.is_date32(arrow_type):
        return st.dates()
    assert pa.types.is_timestamp(arrow_type)
    # (whole seconds scaled to the unit: every value fits in int64 and in datetime64 of the unit)
    scale = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[arrow_type.unit]
    return st.integers(-(2**62) // 10**9, (2**62) // 10**9).map(lambda seconds: seconds * scale)


@st.composite
def columns(draw, rows: int) -> tuple[pa.DataType, list]:
    arrow_type = draw(st.sampled_from(HANDLED_TYPES))
    nulls = draw(st.sampled_from(["none", "some", "all"]))
    values = draw(st.lists(_values(arrow_type), min_size=rows, max_size=rows))
    if nulls == "some":
        values = [None if draw(st.booleans()) else v for v in values]
    elif nulls == "all":
        values = [None] * rows
    if pa.types.is_timestamp(arrow_type):
        return arrow_type, pa.array(values, pa.int64()).cast(arrow_type)
    return arrow_type, pa.array(values, arrow_type)


@st.composite
def tables(draw) -> pa.Table:
    rows = draw(st.sampled_from([0, 1, 2, 5]) | st.integers(0, 60))
    count = draw(st.integers(0, 9))
    names = draw(st.lists(st.sampled_from(ODD_NAMES) | st.text(max_size=6), min_size=count, max_size=count,
                          unique=True))
    arrays = [draw(columns(rows))[1] for _ in names]
    table = pa.table(dict(zip(names, arrays))) if names else pa.table({})
    if rows > 1 and draw(st.booleans()):  # several chunks per column, cut where record batches would be
        cuts = sorted(set(draw(st.lists(st.integers(1, rows - 1), max_size=3))))
        bounds = [0, *cuts, rows]
        table = pa.Table.from_batches([batch for start, end in zip(bounds, bounds[1:])
                                       for batch in table.slice(start, end - start).to_batches()],
                                      schema=table.schema)
    return table


@pytest.mark.parametrize("force_string_dtype", STRING_DTYPE_MODES)
@settings(max_examples=EXAMPLES, deadline=None)
@given(table=tables())
def test_fast_path_frames_equal_to_pandas(table: pa.Table, force_string_dtype: bool) -> None:
    with pd.option_context("future.infer_string", True) if force_string_dtype else nullcontext():
        plan = pandas_frames._plan(table.schema, pandas_frames._uses_string_dtype())
        assert plan is not None, table.schema  # (a handled schema: the fast path is taken, no silent fallback)
        fast = pandas_frames._build(table, plan)
        assert fast is not None
        assert_same_frame(fast, table)
        assert_same_frame(arrow_to_pandas(table), table)


def test_serving_shaped_frame_and_columns_to_pandas_use_it() -> None:
    rng = np.random.default_rng(7)
    rows = 1000
    table = pa.table({
        "tailnum": pa.array([f"N{x}UA" for x in rng.integers(100, 999, rows)]),
        "carrier": pa.array(rng.choice(["UA", "AA", "DL", None], rows).tolist()),
        "year": pa.array(rng.integers(1990, 2013, rows), pa.int64()),
        "seats": pa.array([None if x < 60 else int(x) for x in rng.integers(50, 400, rows)], pa.int64()),
        "mean_delay": pa.array(np.where(rng.random(rows) < 0.1, np.nan, rng.normal(5, 9, rows))),
        "flag": pa.array(rng.random(rows) < 0.5),
        "flag_null": pa.array([None if x < 0.1 else bool(x < 0.5) for x in rng.random(rows)]),
        "day": pa.array([date(2013, 1, 1 + int(x)) if x < 28 else None for x in rng.integers(0, 31, rows)]),
        "event_ts": pa.array([None if x % 17 == 0 else int(x) * 10**6 for x in rng.integers(1.3e9, 1.4e9, rows)],
                             pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    })
    frame = to_pandas(table)
    assert_same_frame(frame, table)
    assert frame["seats"].dtype == np.float64 and frame["flag_null"].dtype == object  # (nulls: as to_pandas)
    assert frame["event_ts"].dtype == pd.DatetimeTZDtype("us", "UTC") and frame["event_ts"].isna().sum() > 0


@pytest.mark.parametrize("table", [
    pytest.param(pa.table({"c": pa.array(["a", "b", "a"]).dictionary_encode()}), id="dictionary"),
    pytest.param(pa.table({"l": pa.array([[1, 2], None, []])}), id="list"),
    pytest.param(pa.table({"d": pa.array([1, None], pa.decimal128(5, 2))}), id="decimal"),
    pytest.param(pa.table({"b": pa.array([b"x", None])}), id="binary"),
    pytest.param(pa.table({"t": pa.array([0, None], pa.timestamp("us", tz="Europe/Paris"))}), id="other-tz"),
    pytest.param(pa.table({"n": pa.array([None, None])}), id="null-type"),
    pytest.param(pa.table({"d": pa.array([0, None], pa.date64())}), id="date64"),
    pytest.param(pa.table({"t": pa.array([1, None], pa.time64("us"))}), id="time64"),
    pytest.param(pa.table({"s": pa.array([{"a": 1}, None])}), id="struct"),
    pytest.param(pa.Table.from_pandas(pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index([5, 6], name="k"))),
                 id="pandas-metadata"),
    pytest.param(pa.Table.from_arrays([pa.array([1, 2]), pa.array(["a", "b"])], names=["x", "x"]),
                 id="duplicate-names"),
    pytest.param(pa.table({"x": pa.array([1, 2]), "c": pa.array(["a", "b"]).dictionary_encode()}),
                 id="handled-with-one-unhandled"),
])
def test_other_tables_go_to_to_pandas_and_give_its_frame(table: pa.Table, monkeypatch) -> None:
    built = []
    original = pandas_frames._build
    monkeypatch.setattr(pandas_frames, "_build", lambda *a: built.append(1) or original(*a))
    frame = arrow_to_pandas(table)
    assert built == []  # (declined from the schema, before any conversion)
    pd.testing.assert_frame_equal(frame, table.to_pandas(use_threads=False), check_exact=True)


def test_a_block_it_does_not_know_sends_the_table_to_to_pandas(monkeypatch) -> None:
    table = pa.table({"x": pa.array([1, 2]), "s": pa.array(["a", None])})
    real = pa.lib.table_to_blocks
    monkeypatch.setattr(pa.lib, "table_to_blocks",
                        lambda *a: [dict(item, dictionary=None) for item in real(*a)])
    assert pandas_frames._build(table, pandas_frames._plan(table.schema, pandas_frames._uses_string_dtype())) is None
    monkeypatch.undo()
    monkeypatch.setattr(pandas_frames, "_build", lambda *a: None)
    pd.testing.assert_frame_equal(arrow_to_pandas(table), table.to_pandas(use_threads=False), check_exact=True)


def test_an_error_in_the_fast_path_goes_to_to_pandas(monkeypatch) -> None:
    table = pa.table({"x": pa.array([1.5, None])})

    def broken(*_: object) -> None:
        raise KeyError("coerce_something_new")  # (as a newer pyarrow wanting an option this does not pass)

    monkeypatch.setattr(pandas_frames, "_build", broken)
    pd.testing.assert_frame_equal(arrow_to_pandas(table), table.to_pandas(use_threads=False), check_exact=True)


def test_out_of_range_dates_behave_as_to_pandas() -> None:
    table = pa.table({"d": pa.array([0, 2**31 - 1], pa.int32()).cast(pa.date32())})
    try:
        expected = table.to_pandas(use_threads=False)
    except Exception as error:  # noqa: BLE001 - whatever to_pandas does, the same
        with pytest.raises(type(error)):
            arrow_to_pandas(table)
    else:
        pd.testing.assert_frame_equal(arrow_to_pandas(table), expected, check_exact=True)


def test_the_frame_owns_writable_data_and_changing_it_changes_nothing_else() -> None:
    table = pa.table({"i": pa.array([1, 2, 3], pa.int64()), "f": pa.array([0.5, None, 2.0]),
                      "s": pa.array(["a", "b", None]), "b": pa.array([True, False, True]),
                      "t": pa.array([0, 1, None], pa.int64()).cast(pa.timestamp("us", tz="UTC"))})
    expected = table.to_pandas(use_threads=False)
    frame = arrow_to_pandas(table)
    frame["i"] += 1
    frame.loc[0, "f"] = 9.0
    frame.iloc[1, frame.columns.get_loc("s")] = "changed"
    frame["b"] = ~frame["b"]
    frame.loc[2, "t"] = pd.Timestamp("2024-01-01", tz="UTC")
    frame.columns.name = "renamed"
    assert frame["i"].tolist() == [2, 3, 4] and frame.loc[0, "f"] == 9.0
    assert table.column("i").to_pylist() == [1, 2, 3] and table.column("s").to_pylist() == ["a", "b", None]
    again = arrow_to_pandas(table)
    pd.testing.assert_frame_equal(again, expected, check_exact=True)
    assert again.columns.name is None
    with pytest.raises(ValueError):  # (the cached names cannot be edited through a frame)
        again.columns.values[0] = "x"
    assert arrow_to_pandas(table).columns.tolist() == ["i", "f", "s", "b", "t"]


def test_the_frame_outlives_the_table() -> None:
    table = pa.table({"s": pa.array(["x" * 40, None, "日本"] * 50), "f": pa.array([1.0, 2.0, None] * 50)})
    expected = table.to_pandas(use_threads=False)
    frame = arrow_to_pandas(table)
    del table
    gc.collect()
    pa.table({"junk": pa.array(["y" * 40] * 1000)})  # (reuse freed memory)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


def test_the_schema_cache_is_bounded_and_keyed_by_the_whole_schema() -> None:
    for i in range(3 * pandas_frames._CACHE_SIZE):
        table = pa.table({f"c{i}": pa.array([i], pa.int64())})
        assert arrow_to_pandas(table).columns.tolist() == [f"c{i}"]
    assert len(pandas_frames._plans) <= pandas_frames._CACHE_SIZE
    same_names = pa.table({"c0": pa.array(["text"])})  # (same name, another type: another plan)
    pd.testing.assert_frame_equal(arrow_to_pandas(same_names), same_names.to_pandas(), check_exact=True)
    with_metadata = pa.table({"c0": pa.array([1.0])}).replace_schema_metadata({"k": "v"})
    pd.testing.assert_frame_equal(arrow_to_pandas(with_metadata), with_metadata.to_pandas(), check_exact=True)
