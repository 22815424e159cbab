"""One commit to a Hudi table in a process of its own, for tests/test_hudi_crash.py (which SIGKILLs it).

    python tests/hudi_crash_writer.py TABLE --first 0 --count 1000 --version 3 [--delete]

Rows are deterministic (see ``make_batch``), so the test knows what the commit holds. The process prints
``ready`` once the batch is built (kill delays are measured from there), then ``committed <instant>``.
``FS_DAGSTER_KILL_AT`` makes the writer kill itself at a fault point.
"""

from __future__ import annotations

import argparse
import json
import sys



class _NoPandas:
    """pyarrow imports pandas (1-2 s) on its first ``pa.array`` call just to recognise DataFrames; the writer
    process writes Arrow tables only, so pandas is made unavailable there and pyarrow goes without it."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"{name} is not used by this test process", name=name)


if __name__ == "__main__":  # only in the writer process: test_hudi_crash imports this module for make_batch
    sys.meta_path.insert(0, _NoPandas())

import pyarrow as pa  # noqa: E402

from fs_dagster.core.offline.hudi_properties import HudiTableConfig  # noqa: E402
from fs_dagster.core.offline.hudi_writer import HudiWriter  # noqa: E402

CONFIG = HudiTableConfig("crash", ("id",), ("part",), "ts")
PART_SIZE = 200  # ids per partition: ids 0-199 are in part=p0, 200-399 in part=p1, ...


def partition_of(i: int, part_size: int = PART_SIZE) -> str:
    return f"p{i // part_size}"


def make_batch(first: int, count: int, version: int, part_size: int = PART_SIZE) -> pa.Table:
    """Rows ``first .. first+count-1`` (partition by id range); ``v`` encodes (id, version)."""
    ids = pa.array(range(first, first + count), pa.int64())
    return pa.table(
        {
            "id": ids,
            "part": pa.array([partition_of(i, part_size) for i in range(first, first + count)]),
            "ts": pa.array([version] * count, pa.int64()),
            "v": pa.array([i * 10.0 + version for i in range(first, first + count)], pa.float64()),
            "note": pa.array([f"row {i} version {version}" for i in range(first, first + count)]),
        }
    )


def make_keys(first: int, count: int, part_size: int = PART_SIZE) -> pa.Table:
    return make_batch(first, count, 0, part_size).select(["id", "part"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("table")
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--delete", action="store_true")
    parser.add_argument("--max-file-rows", type=int, default=100)
    parser.add_argument("--part-size", type=int, default=PART_SIZE)
    parser.add_argument("--lock-timeout", type=float, default=60.0)
    args = parser.parse_args()
    writer = HudiWriter(args.table, CONFIG, max_file_rows=args.max_file_rows, small_file_rows=args.max_file_rows // 2,
                        lock_timeout=args.lock_timeout)
    if args.delete:
        data = make_keys(args.first, args.count, args.part_size)
    else:
        data = make_batch(args.first, args.count, args.version, args.part_size)
    print("ready", flush=True)
    result = writer.delete(data) if args.delete else writer.upsert(data)
    print("committed", json.dumps({"instant": result.instant, "rolled_back": list(result.rolled_back)}), flush=True)


if __name__ == "__main__":
    main()
