"""Point-in-time joins against a brute-force oracle (hypothesis), plus examples of every refusal and of
reproducible output order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fs_dagster.core.errors import FeatureStoreError, InvalidDataError
from fs_dagster.core.training.point_in_time import PointInTimeSource, point_in_time_join

# --- the oracle's world: every time is an integer count of nanoseconds since the epoch (UTC) ------------------

NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
DAY_NS = 86_400 * NS["s"]
BASE_NS = 19_791 * DAY_NS  # 2024-03-09 (US clocks change the next day)
TICK_NS = 6 * 3600 * NS["s"]  # times are a few 6-hour ticks apart, so dates (midnights) meet them
TICKS = 12
ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"]


@dataclass(frozen=True)
class TimeKind:
    """How a time column is stored: ``date``, naive ``timestamp[unit]`` or ``timestamp[us, tz=zone]``."""

    unit: str  # "date" or a timestamp unit
    zone: str | None = None

    def arrow_type(self) -> pa.DataType:
        return pa.date32() if self.unit == "date" else pa.timestamp(self.unit, tz=self.zone)

    def step(self) -> int:
        """The column's resolution in ns: values one step apart are the closest distinct times it can hold."""
        return DAY_NS if self.unit == "date" else NS[self.unit]

    def to_arrow(self, values: list[int | None]) -> pa.Array:
        scaled = [None if v is None else v // self.step() for v in values]
        return pa.array(scaled, pa.int32() if self.unit == "date" else pa.int64()).cast(self.arrow_type())

    def output_type(self) -> pa.DataType:
        # DuckDB has one zone-aware type (microseconds); the join hands it back in UTC
        return pa.timestamp("us", tz="UTC") if self.zone else self.arrow_type()


def _time_kinds() -> st.SearchStrategy[TimeKind]:
    units = ["us", "ms", "s", "ns", "ns"]  # nanoseconds twice: their edges are the finest
    return st.one_of(
        st.builds(TimeKind, st.just("date")),
        st.builds(TimeKind, st.sampled_from(units)),
        st.builds(TimeKind, st.just("us"), st.sampled_from(ZONES)),
    )


def _times(kind: TimeKind) -> st.SearchStrategy[int | None]:
    """Times on the tick grid, or one step of the column's resolution off it (the lookback edges)."""
    if kind.unit == "date":
        on_grid = st.integers(0, TICKS * TICK_NS // DAY_NS).map(lambda d: BASE_NS + d * DAY_NS)
    else:
        on_grid = st.builds(lambda t, off: BASE_NS + t * TICK_NS + off * kind.step(),
                            st.integers(0, TICKS), st.sampled_from([0, 0, 1, -1]))
    return st.one_of(st.none(), on_grid, on_grid)  # nulls one time in three


@dataclass
class Source:
    name: str
    keys: list[tuple[str, str]]  # (spine column, source column)
    kind: TimeKind | None  # None: no event time
    rows: list[dict]
    lookback_ns: int | None
    unique: bool
    key_type: pa.DataType
    inclusive: bool = False  # lookback window closed at its start (Feast's ttl)

    def table(self) -> pa.Table:
        columns = {
            "id": pa.array([r["id"] for r in self.rows], self.key_type),
            "code": pa.array([r["code"] for r in self.rows], pa.string()),
            "val": pa.array([r["val"] for r in self.rows], pa.int64()),
            "note": pa.array([r["note"] for r in self.rows], pa.string()),
        }
        if self.kind is not None:
            columns["ev"] = self.kind.to_arrow([r["ev"] for r in self.rows])
        return pa.table(columns)

    def spec(self) -> PointInTimeSource:
        columns = [("val", f"{self.name}_val"), ("note", f"{self.name}_note")]
        if self.kind is not None:
            columns.append(("ev", f"{self.name}_ev"))
        return PointInTimeSource(
            name=self.name,
            relation=self.name,
            on=tuple(self.keys),
            event_time="ev" if self.kind is not None else None,
            columns=tuple(columns),
            lookback=None if self.lookback_ns is None else timedelta(microseconds=self.lookback_ns // 1000),
            unique=self.unique,
            lookback_inclusive=self.inclusive,
        )


KEY_SETS = [[], [("k_int", "id")], [("k_str", "code")], [("k_int", "id"), ("k_str", "code")]]
INT_KEYS = st.sampled_from([0, 1, 2, None])
STR_KEYS = st.sampled_from(["a", "b", None])


@st.composite
def sources(draw: st.DrawFn, index: int) -> Source:
    keys = draw(st.sampled_from(KEY_SETS))
    kind = draw(st.one_of(st.none(), _time_kinds(), _time_kinds()))  # a dimension table one time in three
    unique = draw(st.booleans())
    rows = []
    for i in range(draw(st.integers(0, 12))):
        rows.append({
            "id": draw(INT_KEYS), "code": draw(STR_KEYS), "val": index * 1000 + i,
            "note": draw(st.sampled_from(["x", "y", None])),
            "ev": draw(_times(kind)) if kind is not None else None,
        })
    if unique:  # what a trusted source promises: one row per keys (+ event time)
        seen, kept = set(), []
        for row in rows:
            identity = tuple(row[right] for _, right in keys) + (row["ev"],)
            if identity not in seen:
                seen.add(identity)
                kept.append(row)
        rows = kept
    lookback = None
    if kind is not None and draw(st.booleans()):
        lookback = draw(st.integers(1, 6)) * TICK_NS + draw(st.sampled_from([0, 0, NS["us"]]))
    key_type = draw(st.sampled_from([pa.int64(), pa.int32(), pa.int16()]))
    return Source(f"src{index}", keys, kind, rows, lookback, unique, key_type, draw(st.booleans()))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict], TimeKind, list[Source], str]:
    spine_kind = draw(_time_kinds())
    rows = [{"k_int": draw(INT_KEYS), "k_str": draw(STR_KEYS), "ts": draw(_times(spine_kind))}
            for _ in range(draw(st.integers(0, 10)))]
    if rows:  # duplicate spine rows are kept, each gets its own output row
        rows += [dict(rows[i]) for i in draw(st.lists(st.integers(0, len(rows) - 1), max_size=3))]
    for sid, row in enumerate(rows):
        row["sid"] = sid
    joined = [draw(sources(i)) for i in range(draw(st.integers(1, 3)))]
    session_zone = draw(st.sampled_from(ZONES))
    return rows, spine_kind, joined, session_zone


def oracle(spine_row: dict, source: Source) -> dict | None:
    """The source row a spine row gets, by the definition: keys equal (never null), event time the greatest one
    ``<= ts`` and ``> ts - lookback``; among tied rows of a non-unique source the greatest (val, note)."""
    if any(spine_row[left] is None for left, _ in source.keys):
        return None
    ts = spine_row["ts"]
    if source.kind is not None and ts is None:
        return None
    matches = []
    for row in source.rows:
        if any(row[right] != spine_row[left] for left, right in source.keys):
            continue
        if source.kind is not None:
            if row["ev"] is None or row["ev"] > ts:
                continue
            if source.lookback_ns is not None:
                start = ts - source.lookback_ns
                if row["ev"] < start or (row["ev"] == start and not source.inclusive):
                    continue
        matches.append(row)
    if not matches:
        return None
    if source.kind is None:
        assert len(matches) == 1 or not source.unique
        return max(matches, key=lambda r: r["val"])
    return max(matches, key=lambda r: (r["ev"], r["val"]))


def _instants(column: pa.ChunkedArray, kind: TimeKind) -> list[int | None]:
    """A time column back to epoch ns, whatever its type."""
    if pa.types.is_date32(column.type):
        return [None if d is None else d * DAY_NS for d in column.cast(pa.int32()).to_pylist()]
    step = NS[column.type.unit]
    return [None if v is None else v * step for v in column.cast(pa.int64()).to_pylist()]


CONNECTION = duckdb.connect()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_matches_the_oracle(scenario) -> None:
    spine_rows, spine_kind, joined, session_zone = scenario
    spine = pa.table({
        "sid": pa.array([r["sid"] for r in spine_rows], pa.int64()),
        "k_int": pa.array([r["k_int"] for r in spine_rows], pa.int64()),
        "k_str": pa.array([r["k_str"] for r in spine_rows], pa.string()),
        "ts": spine_kind.to_arrow([r["ts"] for r in spine_rows]),
    })
    con = CONNECTION
    con.execute(f"SET TimeZone = '{session_zone}'")
    for source in joined:
        con.register(source.name, source.table())
    try:
        result = point_in_time_join(con, spine, "ts", [s.spec() for s in joined], spine_columns=["sid", "ts"])
    finally:
        for source in joined:
            con.unregister(source.name)

    assert con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0] == session_zone
    expected_names = ["sid", "ts"] + [c for s in joined for _, c in s.spec().columns]
    assert result.column_names == expected_names
    # spine order, one row per spine row, spine times unchanged as instants
    assert result.column("sid").to_pylist() == [r["sid"] for r in spine_rows]
    assert _instants(result.column("ts"), spine_kind) == [r["ts"] for r in spine_rows]
    for source in joined:
        picked = [oracle(row, source) for row in spine_rows]
        assert result.column(f"{source.name}_val").to_pylist() == [p and p["val"] for p in picked], source
        assert result.column(f"{source.name}_note").to_pylist() == [p and p["note"] for p in picked], source
        if source.kind is not None:
            assert result.schema.field(f"{source.name}_ev").type == source.kind.output_type()
            assert _instants(result.column(f"{source.name}_ev"), source.kind) == [p and p["ev"] for p in picked]


# --- examples: the definition in words -----------------------------------------------------------------------

UTC = timezone.utc
T = datetime(2024, 3, 10, 12, tzinfo=UTC)


def _con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def test_lookback_edge_and_time_zones() -> None:
    con = _con()
    con.execute("SET TimeZone = 'America/Los_Angeles'")  # must not shift anything
    spine = pa.table({"user": [1, 1, 1], "ts": pa.array([T, T, None], pa.timestamp("us", tz="Asia/Tokyo"))})
    hourly = pa.table({  # naive = UTC: exactly 2 h before, and 1 us inside the 2 h window
        "user": [1, 1],
        "ev": pa.array([datetime(2024, 3, 10, 10), datetime(2024, 3, 10, 10, 0, 0, 1)], pa.timestamp("us")),
        "x": [10, 11],
    })
    daily = pa.table({"user": [1, 1], "day": [date(2024, 3, 10), date(2024, 3, 11)], "y": ["today", "tomorrow"]})
    con.register("hourly", hourly)
    con.register("daily", daily)
    result = point_in_time_join(con, spine, "ts", [
        PointInTimeSource("hourly", "hourly", (("user", "user"),), "ev", (("x", "x"), ("ev", "x_time")),
                          lookback=timedelta(hours=2)),
        PointInTimeSource("daily", "daily", (("user", "user"),), "day", (("y", "y"),)),
    ])
    assert result.column("x").to_pylist() == [11, 11, None]
    assert result.column("y").to_pylist() == ["today", "today", None]  # a date is midnight UTC
    assert result.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert result.schema.field("x_time").type == pa.timestamp("us")

    hourly_only_edge = hourly.slice(0, 1)
    con.register("hourly", hourly_only_edge)
    result = point_in_time_join(con, spine, "ts", [
        PointInTimeSource("hourly", "hourly", (("user", "user"),), "ev", (("x", "x"),), lookback=timedelta(hours=2)),
    ])
    assert result.column("x").to_pylist() == [None, None, None]  # exactly ts - lookback is outside the window
    result = point_in_time_join(con, spine, "ts", [
        PointInTimeSource("hourly", "hourly", (("user", "user"),), "ev", (("x", "x"),), lookback=timedelta(hours=2),
                          lookback_inclusive=True),
    ])
    assert result.column("x").to_pylist() == [10, 10, None]  # Feast's ttl rule: exactly ts - ttl is inside
    assert con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0] == "America/Los_Angeles"


def test_nanoseconds_are_compared_exactly() -> None:
    con = _con()
    at = 1_710_072_000_000_000_000  # T in ns
    spine = pa.table({"ts": pa.array([at, at + 1], pa.timestamp("ns"))})
    con.register("feats", pa.table({"ev": pa.array([at + 1], pa.timestamp("ns")), "x": [1]}))
    result = point_in_time_join(con, spine, "ts", [PointInTimeSource("feats", "feats", (), "ev", (("x", "x"),))])
    assert result.column("x").to_pylist() == [None, 1]  # 1 ns later is later
    # against microseconds (zone-aware): the us value is exact in ns, the lookback edge too
    con.register("feats", pa.table({"ev": pa.array([T - timedelta(hours=1)]), "x": [1]}))
    spine = pa.table({"ts": pa.array([at, at - 1], pa.timestamp("ns"))})
    result = point_in_time_join(con, spine, "ts", [
        PointInTimeSource("feats", "feats", (), "ev", (("x", "x"),), lookback=timedelta(hours=1))])
    assert result.column("x").to_pylist() == [None, 1]


def test_ties_of_a_non_unique_source_pick_the_greatest_row() -> None:
    con = _con()
    spine = pa.table({"k": [1, 1], "ts": pa.array([T, T + timedelta(hours=1)])})
    rows = pa.table({"k": [1, 1, 1], "ev": pa.array([T, T, T - timedelta(hours=1)]), "v": [5, 7, 9]})
    con.register("rows", rows)
    source = PointInTimeSource("rows", "rows", (("k", "k"),), "ev", (("v", "v"),), unique=False)
    for _ in range(3):
        assert point_in_time_join(con, spine, "ts", [source]).column("v").to_pylist() == [7, 7]


def test_empty_spine_and_empty_source() -> None:
    con = _con()
    con.register("feats", pa.table({"k": pa.array([], pa.int64()), "ev": pa.array([], pa.timestamp("us")),
                                    "v": pa.array([], pa.float32())}))
    source = PointInTimeSource("feats", "feats", (("k", "k"),), "ev", (("v", "v"),))
    empty = pa.table({"k": pa.array([], pa.int64()), "ts": pa.array([], pa.timestamp("us"))})
    result = point_in_time_join(con, empty, "ts", [source])
    assert result.num_rows == 0 and result.schema.field("v").type == pa.float32()
    spine = pa.table({"k": [1], "ts": pa.array([T.replace(tzinfo=None)])})
    assert point_in_time_join(con, spine, "ts", [source]).column("v").to_pylist() == [None]


def test_arrow_spine_is_unregistered_after_success_and_failure() -> None:
    con = _con()
    spine = pa.table({"k": [1], "ts": pa.array([T])})
    con.register("dims", pa.table({"k": [1], "name": ["one"]}))
    good = PointInTimeSource("dims", "dims", (("k", "k"),), None, (("name", "name"),))
    assert point_in_time_join(con, spine, "ts", [good]).column("name").to_pylist() == ["one"]
    con.register("dims", pa.table({"k": [1, 1], "name": ["one", "uno"]}))
    with pytest.raises(InvalidDataError):
        point_in_time_join(con, spine, "ts", [good])
    assert [name for (name,) in con.execute("SHOW TABLES").fetchall()] == ["dims"]


# --- examples: every refusal names what is wrong ----------------------------------------------------------------


@pytest.fixture()
def refusal_con() -> duckdb.DuckDBPyConnection:
    con = _con()
    con.register("feats", pa.table({"user": [1], "ev": pa.array([T]), "x": [1.0]}))
    con.register("dims", pa.table({"user": [1, 1, 2], "name": ["a", "b", "c"]}))
    return con


SPINE = pa.table({"user": [1, 2], "label": [0, 1], "ts": pa.array([T, T])})


def _feats(**changes) -> PointInTimeSource:
    fields = dict(name="feats_v1", relation="feats", on=(("user", "user"),), event_time="ev",
                  columns=(("x", "x"),))
    return PointInTimeSource(**{**fields, **changes})


@pytest.mark.parametrize(
    ("spine_time", "spine_columns", "source", "words"),
    [
        ("when", None, _feats(), ["the spine", "'when'", "spine_time"]),
        ("label", None, _feats(), ["the spine", "'label'", "BIGINT", "DATE or a TIMESTAMP"]),
        ("ts", ["user", "nope"], _feats(), ["the spine", "'nope'", "spine_columns"]),
        ("ts", None, _feats(on=(("account", "user"),)), ["feats_v1", "the spine", "'account'", "join key"]),
        ("ts", None, _feats(on=(("user", "account"),)), ["feats_v1", "'account'", "join key"]),
        ("ts", None, _feats(event_time="when"), ["feats_v1", "'when'", "event_time"]),
        ("ts", None, _feats(event_time="x"), ["feats_v1", "'x'", "DOUBLE", "DATE or a TIMESTAMP"]),
        ("ts", None, _feats(columns=(("y", "y"),)), ["feats_v1", "'y'", "feature column"]),
        ("ts", None, _feats(on=(("label", "ev"),)), ["feats_v1", "'label'", "BIGINT", "'ev'", "TIMESTAMP"]),
        ("ts", None, _feats(columns=(("x", "label"),)), ["feats_v1", "'label'"]),
        ("ts", None, _feats(columns=(("x", "f"), ("user", "f"))), ["feats_v1", "'f'"]),
        ("ts", None, _feats(lookback=timedelta(0)), ["feats_v1", "lookback"]),
        ("ts", None, _feats(event_time=None, lookback=timedelta(hours=1)), ["feats_v1", "lookback", "event time"]),
        ("ts", None, _feats(relation="no_such_table"), ["feats_v1", "no_such_table"]),
        ("ts", ["user", "user"], _feats(), ["the spine", "'user'", "twice"]),
    ],
)
def test_refusals_name_the_problem(refusal_con, spine_time, spine_columns, source, words) -> None:
    with pytest.raises(InvalidDataError) as raised:
        point_in_time_join(refusal_con, SPINE, spine_time, [source], spine_columns=spine_columns)
    for word in words:
        assert word in str(raised.value)


def test_incompatible_key_types_name_source_column_and_types(refusal_con) -> None:
    spine = pa.table({"user": ["1"], "ts": pa.array([T])})
    with pytest.raises(InvalidDataError, match=r"feats_v1.*'user' \(VARCHAR\).*'user' \(BIGINT\)"):
        point_in_time_join(refusal_con, spine, "ts", [_feats()])


def test_two_sources_with_one_output_name(refusal_con) -> None:
    other = PointInTimeSource("dims_v1", "dims", (), None, (("name", "x"),))
    with pytest.raises(InvalidDataError, match=r"dims_v1.*\['x'\]"):
        point_in_time_join(refusal_con, SPINE, "ts", [_feats(), other])


def test_duplicate_keys_of_a_source_without_event_time(refusal_con) -> None:
    dims = PointInTimeSource("dims_v1", "dims", (("user", "user"),), None, (("name", "name"),))
    with pytest.raises(InvalidDataError, match=r"dims_v1: 2 rows for key \{'user': 1\}"):
        point_in_time_join(refusal_con, SPINE, "ts", [_feats(), dims])
    # allowed to pick: the greatest name
    picked = point_in_time_join(refusal_con, SPINE, "ts", [_feats(), PointInTimeSource(
        "dims_v1", "dims", (("user", "user"),), None, (("name", "name"),), unique=False)])
    assert picked.column("name").to_pylist() == ["b", "c"]


def test_unordered_database_is_refused() -> None:
    con = duckdb.connect(config={"preserve_insertion_order": False})
    con.register("feats", pa.table({"user": [1], "ev": pa.array([T]), "x": [1.0]}))
    with pytest.raises(FeatureStoreError, match="preserve_insertion_order"):
        point_in_time_join(con, SPINE, "ts", [_feats()])


# --- reproducible output ------------------------------------------------------------------------------------


def _write_parts(table: pa.Table, folder: Path, parts: int) -> list[str]:
    folder.mkdir()
    step = -(-table.num_rows // parts)
    paths = []
    for i in range(parts):
        path = folder / f"part-{i}.parquet"
        pq.write_table(table.slice(i * step, step), path, row_group_size=2_000)
        paths.append(str(path))
    return paths


def _read_parquet(paths: list[str]) -> str:
    listed = ", ".join(f"'{p}'" for p in paths)
    return f"read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"


def test_same_files_give_identical_tables(tmp_path: Path) -> None:
    n = 60_000
    spine = pa.table({  # many duplicate keys and times: any order slip shows in the label column
        "user": pa.array([i % 97 for i in range(n)], pa.int64()),
        "ts": pa.array([T + timedelta(minutes=i % 500) for i in range(n)]),
        "label": pa.array(range(n), pa.int64()),
    })
    feats = pa.table({
        "user": pa.array([i % 97 for i in range(20_000)], pa.int32()),
        "ev": pa.array([T + timedelta(minutes=i % 701) for i in range(20_000)]),
        "x": pa.array([float(i) for i in range(20_000)]),
    })
    dims = pa.table({"user": pa.array(range(97), pa.int64()), "name": [f"u{i}" for i in range(97)]})
    spine_sql = _read_parquet(_write_parts(spine, tmp_path / "spine", 5))
    sources = [
        PointInTimeSource("feats", _read_parquet(_write_parts(feats, tmp_path / "feats", 3)), (("user", "user"),),
                          "ev", (("x", "x"),), lookback=timedelta(hours=3)),
        PointInTimeSource("dims", _read_parquet(_write_parts(dims, tmp_path / "dims", 2)), (("user", "user"),),
                          None, (("name", "name"),)),
    ]
    results = []
    for threads in (1, 4, 4):
        con = duckdb.connect(config={"threads": threads})
        results.append(point_in_time_join(con, spine_sql, "ts", sources))
    assert results[0].equals(results[1]) and results[1].equals(results[2])
    assert results[0].column("label").to_pylist() == list(range(n))  # the files' row order
    # an Arrow spine of the same rows gives the same table
    from_arrow = point_in_time_join(duckdb.connect(), spine, "ts", sources)
    assert from_arrow.equals(results[0])
