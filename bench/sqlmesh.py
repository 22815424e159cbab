"""SQLMesh pipelines benchmark: the reference SQL feature group ``route_delays_hourly`` (departure delays per route
over the 24 hours and 7 days before each hour) run by SQLMesh and committed to the offline store, beside the same
SQL run by DuckDB into a parquet file (the floor).

For the real flights (336,776) and a 15x copy (each copy shifted 52 weeks further back: ~5M flights):

- ours, end to end: SQLMesh computes the model for the whole range (a restatement plan, audits included), the rows
  are read back as Arrow and committed as a new Hudi table (``FeatureGroup.insert``: durable, registry, statistics;
  online off). The run's parts are timed apart: SQLMesh run, read back, commit;
- the floor: the model's own SELECT (its macros replaced by the range's bounds, ``departures`` as a view over the
  same parquet files) in ``COPY (...) TO 'x.parquet'`` by a plain DuckDB connection;
- SQLMesh's fixed cost, apart: loading the project (``Context``), the first plan (creates the tables), a plan when
  nothing changed, and a run of one day (the cost of a run that computes almost nothing).

Rates are output rows (one per route and hour with a departure) per second. Best of ``--repeat``; ours and the
floor alternate within each repetition. The project is the reference one (``assets/sqlmesh_project``) copied with
its own config into a temporary folder.

Usage:
    python bench/sqlmesh.py            # real flights and the ~5M copy, best of 3
    python bench/sqlmesh.py --quick    # January's flights and a 2x copy, one repetition (smoke test)
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# This script is named like the package it measures: its folder must come after site-packages, or
# ``import sqlmesh`` would import this file. (``common`` is still found there.)
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH] + [str(_BENCH)]
sys.path.insert(0, str(_BENCH.parent))

from common import Table, load_average, machine_info, rate  # noqa: E402

GOAL = 0.5  # ours end to end / the floor (throughput), at ~5M rows
MODEL = "flight_features.route_delays_hourly"
REFERENCE = Path(__file__).resolve().parent.parent / "assets" / "sqlmesh_project"
SHIFT = timedelta(weeks=52)  # whole weeks: weekday patterns stay where they were
UTC = timezone.utc
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

CONFIG = """
gateways:
  local:
    connection:
      type: duckdb
      database: {database}
default_gateway: local
model_defaults:
  dialect: duckdb
  start: '{start}'
  cron: '@daily'
variables:
  flights_glob: {glob}
before_all:
  - CREATE SCHEMA IF NOT EXISTS raw
  - CREATE OR REPLACE VIEW raw.flights AS SELECT * FROM read_parquet(@flights_glob, union_by_name := true)
cache_dir: {cache}
"""


# --- data and project -----------------------------------------------------------------------------------------


def write_flights(folder: Path, copies: int, month: str | None) -> tuple[Path, int]:
    """The raw flights (``month`` only when given) and ``copies - 1`` copies shifted back by 52 weeks each, as
    one parquet file in the raw layout; returns its path and row count."""
    import duckdb
    import pyarrow as pa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from resources.flights_source import package_tables
    flights = package_tables()["flights"]
    if month is not None:
        flights = flights[flights["time_hour"].str.startswith(month)]
    con = duckdb.connect()
    con.register("flights", pa.Table.from_pandas(flights, preserve_index=False))
    parts = " UNION ALL ".join(
        f"SELECT * REPLACE (strftime(strptime(time_hour, '{TIME_FORMAT}') - INTERVAL {k * SHIFT.days} DAY, "
        f"'{TIME_FORMAT}') AS time_hour) FROM flights" for k in range(copies)
    )
    path = folder / "raw" / "flights" / "all.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY ({parts}) TO '{path}' (FORMAT parquet)")
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]
    con.close()
    return path, rows


def write_project(folder: Path, raw: Path, start: datetime) -> Path:
    """The reference models, audits and external table with a config pointing at ``folder``."""
    project = folder / "project"
    (project / "models").mkdir(parents=True)
    for name in ("departures.sql", "route_delays_hourly.sql"):
        shutil.copy(REFERENCE / "models" / name, project / "models" / name)
    shutil.copytree(REFERENCE / "audits", project / "audits")
    shutil.copy(REFERENCE / "external_models.yaml", project / "external_models.yaml")
    (project / "config.yaml").write_text(CONFIG.format(
        database=folder / "bench.duckdb", start=start.strftime("%Y-%m-%d"), glob=raw, cache=folder / "cache"))
    return project


def floor_sql(project: Path, raw: Path, start: datetime, end: datetime, out: Path) -> list[str]:
    """The statements that run the model's SELECT in plain DuckDB: the same views, bounds in place of macros."""

    def body(name: str) -> str:  # the SELECT after the MODEL (...); block
        text = (project / "models" / name).read_text()
        return text.split(");\n", 1)[1].strip().rstrip(";")

    bounds = {"@start_dt": f"TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}'", "@end_dt": f"TIMESTAMP '{end:%Y-%m-%d %H:%M:%S}'"}
    select = re.sub(r"@start_dt|@end_dt", lambda m: bounds[m.group(0)], body("route_delays_hourly.sql"))
    return [
        "CREATE SCHEMA IF NOT EXISTS raw",
        f"CREATE OR REPLACE VIEW raw.flights AS SELECT * FROM read_parquet('{raw}', union_by_name := true)",
        "CREATE SCHEMA IF NOT EXISTS flight_features",
        f"CREATE OR REPLACE VIEW flight_features.departures AS {body('departures.sql')}",
        f"COPY ({select}) TO '{out}' (FORMAT parquet)",
    ]


# --- the cases ------------------------------------------------------------------------------------------------


def run_floor(statements: list[str], out: Path) -> dict[str, Any]:
    import duckdb
    import pyarrow.parquet as pq

    out.unlink(missing_ok=True)
    con = duckdb.connect()
    for sql in statements[:-1]:
        con.execute(sql)
    started = time.perf_counter()
    con.execute(statements[-1])
    seconds = time.perf_counter() - started
    con.close()
    return {"seconds": seconds, "rows": pq.ParquetFile(out).metadata.num_rows}


def run_ours(project: Any, store_root: Path, rep: int, start: datetime, end: datetime) -> dict[str, Any]:
    """SQLMesh run + read back + commit into a new table (a new store project per repetition)."""
    from fs_dagster import FeatureStore
    from fs_dagster.core.sqlmesh.feature_groups import feature_group_spec

    spec = replace(feature_group_spec(project.model(MODEL)), online_enabled=False)
    fs = FeatureStore(root=store_root, project=f"rep{rep}")
    timings: dict[str, Any] = {}
    started = time.perf_counter()
    with project.session() as session:
        report = session.run([MODEL], start=start, end=end)
        outcome = report.outcomes[project.model(MODEL).fqn]
        assert outcome.ok and outcome.status == "evaluated", outcome
        timings["run"] = time.perf_counter() - started
        timings["sync_plan"] = report.timings["sync_plan"]
        mark = time.perf_counter()
        table = session.fetch(MODEL, start=start, end=end)
        timings["read_back"] = time.perf_counter() - mark
    mark = time.perf_counter()
    result = fs.create_feature_group(spec).insert(table)
    timings["commit"] = time.perf_counter() - mark
    timings["seconds"] = time.perf_counter() - started
    timings["rows"] = table.num_rows
    assert result.rows_inserted == table.num_rows
    return timings


def fixed_costs(project_dir: Path, start: datetime) -> dict[str, float]:
    """Loading the project, the first plan (tables created), a plan with nothing to do, a run of one day."""
    from fs_dagster.core.sqlmesh.project import SQLMeshProject

    project = SQLMeshProject(project_dir)
    started = time.perf_counter()
    project.models()
    out = {"context load": time.perf_counter() - started}
    with project.session() as session:
        started = time.perf_counter()
        session._sync("prod")
        out["first plan (creates the tables)"] = time.perf_counter() - started
        started = time.perf_counter()
        session._sync("prod")
        out["plan, nothing changed"] = time.perf_counter() - started
        started = time.perf_counter()
        session.run([MODEL], start=start, end=start + timedelta(days=1))
        out["run of one day (sync plan + restatement of 1 interval)"] = time.perf_counter() - started
    return out


def bench_size(label: str, copies: int, month: str | None, repeat: int, results: Table, fixed: Table,
               parts: Table, sizes_out: list[tuple[str, int, float, float]]) -> None:
    from fs_dagster.core.sqlmesh.project import SQLMeshProject

    with tempfile.TemporaryDirectory(prefix="bench_sqlmesh_") as tmp:
        folder = Path(tmp)
        raw, flights = write_flights(folder, copies, month)
        first = datetime(2013, 1, 1, tzinfo=UTC) - (copies - 1) * SHIFT
        start = datetime(first.year, first.month, 1, tzinfo=UTC)
        end = datetime(2014, 2, 1, tzinfo=UTC)
        project_dir = write_project(folder, raw, start)
        costs = fixed_costs(project_dir, start)
        for name, seconds in costs.items():
            fixed.add(label, name, f"{seconds:.2f} s")
        project = SQLMeshProject(project_dir)
        project.models()
        statements = floor_sql(project_dir, raw, start, end, folder / "floor.parquet")
        best_ours: dict[str, Any] | None = None
        best_floor: dict[str, Any] | None = None
        for rep in range(repeat):
            for case in (("ours", "floor") if rep % 2 == 0 else ("floor", "ours")):
                if case == "ours":
                    got = run_ours(project, folder / "store", rep, start, end)
                    best_ours = got if best_ours is None or got["seconds"] < best_ours["seconds"] else best_ours
                else:
                    got = run_floor(statements, folder / "floor.parquet")
                    best_floor = got if best_floor is None or got["seconds"] < best_floor["seconds"] else best_floor
        assert best_ours is not None and best_floor is not None
        assert best_ours["rows"] == best_floor["rows"], (best_ours["rows"], best_floor["rows"])
        rows = best_ours["rows"]
        ratio = best_floor["seconds"] / best_ours["seconds"]
        sqlmesh_only = best_floor["seconds"] / best_ours["run"]
        goal = f">= {GOAL}x" if copies > 1 and month is None else ""
        met = ("yes" if ratio >= GOAL else "**no**") if goal else ""
        results.add(f"{label}: {flights:,} flights -> {rows:,} rows", f"{rate(rows, best_ours['seconds'])} "
                    f"({best_ours['seconds']:.2f} s)", f"{rate(rows, best_ours['run'])} ({best_ours['run']:.2f} s)",
                    f"{rate(rows, best_floor['seconds'])} ({best_floor['seconds']:.2f} s)", f"{ratio:.2f}x",
                    f"{sqlmesh_only:.2f}x", goal, met)
        parts.add(label, f"{best_ours['run']:.2f} s", f"{best_ours['sync_plan']:.2f} s",
                  f"{best_ours['read_back']:.2f} s", f"{best_ours['commit']:.2f} s")
        sizes_out.append((label, rows, best_ours["seconds"], best_floor["seconds"]))
        project.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="January only, a 2x copy, one repetition")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    print(f"Machine: {machine_info()}; load average at start {load_average()}\n")
    results = Table(["run", "ours end to end (SQLMesh + read back + Hudi commit)", "SQLMesh run alone",
                     "DuckDB COPY to parquet (floor)", "ours / floor", "SQLMesh run / floor", "goal", "met"])
    fixed = Table(["data", "SQLMesh fixed cost", "time"])
    parts = Table(["data", "SQLMesh run (sync plan + restatement plan + audits)", "of which sync plan",
                   "read back (Arrow)", "Hudi commit (durable, registry, statistics)"])
    measured: list[tuple[str, int, float, float]] = []
    sizes = [("January 2013", 1, "2013-01"), ("January, 2x copy", 2, "2013-01")] if args.quick else \
        [("real flights", 1, None), ("15x copy", 15, None)]
    repeat = 1 if args.quick else args.repeat
    for label, copies, month in sizes:
        bench_size(label, copies, month, repeat, results, fixed, parts, measured)
    print(f"Best of {repeat}; ours and the floor alternate. Rates are output rows (route x hour) per second.\n")
    print(results.render() + "\n")
    print(parts.render() + "\n")
    print(fixed.render() + "\n")
    (small, r1, o1, f1), (large, r2, o2, f2) = measured
    fit = Table(["two-point fit", "fixed cost", "per output row"])
    for name, t1, t2 in (("ours end to end", o1, o2), ("floor", f1, f2)):
        per_row = (t2 - t1) / (r2 - r1)
        fit.add(name, f"{t1 - per_row * r1:.2f} s", f"{per_row * 1e6:.2f} us")
    print(f"Fixed and per-row cost, fitted through the two sizes ({small}, {large}):\n")
    print(fit.render() + "\n")
    print(f"Load average at end {load_average()}. Total run time {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
