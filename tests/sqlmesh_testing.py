"""A small SQLMesh project written into a test's folder: a shop's sales and returns, computed by real SQLMesh on a
real DuckDB file.

- ``raw.events`` (external, declared in ``external_models.yaml``): one row per sale or return (store, time,
  amount); written by :func:`write_events` straight into the project's DuckDB database;
- ``shop.daily_sales`` (incremental by day, a feature group: grain (store_id, day), partitioned by store):
  revenue and sale count per store and day; blocking audits ``not_null`` and ``accepted_range(revenue >= 0)``;
- ``shop.daily_returns`` (incremental by day, not a feature group): refunds per store and day, a non-blocking
  audit ``small_refunds`` (no refund over 500);
- ``shop.store_totals`` (FULL): revenue per store over every day of ``daily_sales``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

START = datetime(2024, 1, 1, tzinfo=timezone.utc)
DAYS = 10

CONFIG = """
gateways:
  local:
    connection:
      type: duckdb
      database: {database}
default_gateway: local
model_defaults:
  dialect: duckdb
  start: '2024-01-01'
  cron: '@daily'
cache_dir: {cache}
"""

EXTERNAL = """
- name: raw.events
  description: Sales (positive amounts) and returns of the shop's stores.
  columns:
    store_id: int
    ts: timestamp
    amount: double
    kind: text
"""

DAILY_SALES = """
MODEL (
  name shop.daily_sales,
  kind INCREMENTAL_BY_TIME_RANGE (time_column day),
  grain (store_id, day),
  tags (feature_group, retail),
  owner 'team:shop',
  description 'Revenue per store and day',
  virtual_properties (fs_partition_key = ['store_id']),
  audits (not_null(columns := (store_id, day)), accepted_range(column := revenue, min_v := 0))
);
SELECT
  store_id::INT AS store_id, -- The store
  date_trunc('day', ts)::TIMESTAMP AS day, -- The day (UTC)
  sum(amount)::DOUBLE AS revenue, -- Revenue of the day
  count(*)::BIGINT AS sales -- Number of sales
FROM raw.events
WHERE kind = 'sale' AND ts >= @start_dt AND ts < @end_dt
GROUP BY ALL
"""

DAILY_RETURNS = """
MODEL (
  name shop.daily_returns,
  kind INCREMENTAL_BY_TIME_RANGE (time_column day),
  grain (store_id, day),
  description 'Refunds per store and day',
  audits (small_refunds(blocking := false))
);
SELECT
  store_id::INT AS store_id,
  date_trunc('day', ts)::TIMESTAMP AS day,
  sum(-amount)::DOUBLE AS refunds
FROM raw.events
WHERE kind = 'return' AND ts >= @start_dt AND ts < @end_dt
GROUP BY ALL
"""

SMALL_REFUNDS = """
AUDIT (name small_refunds);
SELECT * FROM @this_model WHERE refunds > 500
"""

STORE_TOTALS = """
MODEL (
  name shop.store_totals,
  kind FULL,
  grain store_id
);
SELECT store_id, sum(revenue) AS revenue FROM shop.daily_sales GROUP BY store_id
"""


def write_project(folder: Path, *, daily_sales: str = DAILY_SALES, extra_models: dict[str, str] | None = None) -> Path:
    """Writes the project (database and cache inside ``folder``) and returns its directory."""
    project = folder / "shop_project"
    (project / "models").mkdir(parents=True, exist_ok=True)
    (project / "audits").mkdir(exist_ok=True)
    (project / "config.yaml").write_text(
        CONFIG.format(database=folder / "shop.duckdb", cache=folder / "sqlmesh_cache"))
    (project / "external_models.yaml").write_text(EXTERNAL)
    (project / "audits" / "small_refunds.sql").write_text(SMALL_REFUNDS)
    models = {"daily_sales": daily_sales, "daily_returns": DAILY_RETURNS, "store_totals": STORE_TOTALS,
              **(extra_models or {})}
    for name, sql in models.items():
        (project / "models" / f"{name}.sql").write_text(sql)
    return project


def events(*, bad_sale_day: int | None = None, big_refund_day: int | None = None, scale: float = 1.0) -> list[tuple]:
    """Rows of ``raw.events``: each day, stores 1..3 sell (amounts depend on store, day, hour) and store 2
    refunds 10. ``bad_sale_day``: store 1 records a sale of -1000 that day (the revenue audit fails);
    ``big_refund_day``: store 3 refunds 900 that day (the non-blocking refund audit fails)."""
    rows = []
    for day in range(DAYS):
        base = START + timedelta(days=day)
        for store in (1, 2, 3):
            for hour in (9, 13, 17):
                rows.append((store, base + timedelta(hours=hour), scale * (store * 10 + day + hour / 10), "sale"))
        rows.append((2, base + timedelta(hours=12), -10.0, "return"))
        if day == bad_sale_day:
            rows.append((1, base + timedelta(hours=20), -1000.0, "sale"))
        if day == big_refund_day:
            rows.append((3, base + timedelta(hours=20), -900.0, "return"))
    return rows


def write_events(folder: Path, rows: list[tuple]) -> None:
    """(Re)writes ``raw.events`` in the project's database."""
    con = duckdb.connect(str(folder / "shop.duckdb"))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.execute("CREATE OR REPLACE TABLE raw.events (store_id INT, ts TIMESTAMP, amount DOUBLE, kind TEXT)")
        con.executemany("INSERT INTO raw.events VALUES (?, ?, ?, ?)",
                        [(s, t.replace(tzinfo=None), a, k) for s, t, a, k in rows])
    finally:
        con.close()


def expected_sales(rows: list[tuple], start: datetime, end: datetime) -> dict[tuple[int, datetime], tuple[float, int]]:
    """(store, day) -> (revenue, sales) computed in Python: what ``shop.daily_sales`` must hold for the range."""
    out: dict[tuple[int, datetime], tuple[float, int]] = {}
    for store, ts, amount, kind in rows:
        if kind != "sale" or not (start <= ts < end):
            continue
        day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
        revenue, count = out.get((store, day), (0.0, 0))
        out[(store, day)] = (revenue + amount, count + 1)
    return out
