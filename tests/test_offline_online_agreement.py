"""Offline and online stores settle every key by the same rule, so they never disagree (no train/serve skew).

The rule (Hudi's precombine semantics, ``DefaultHoodieRecordPayload``, and the online guard): the newer event time
wins; equal event times -> the later commit wins. A row older than the stored one is ignored, offline as online; a
row identical to the stored one changes nothing (no commit when a whole batch is such). A key whose partition value
changes lives in both partitions offline (Hudi's partition-local index); its served value is the newest of its
records (event time, then commit), online as in a point-in-time read.

A hypothesis property test runs random sequences of inserts, upserts (random keys, event times with ties, older and
newer, values with nulls and NaN, partition changes), restatements of stored rows and deletes (with and without the
partition column) through ``FeatureGroup`` against a real Valkey server, and after every step checks:
offline snapshot == in-memory oracle (record by record), online value of every key == the oracle's newest record of
the key == the newest record of the offline snapshot, and the write's counts and commit/no-commit. Budget: 80
examples per layout by default, ``FS_DAGSTER_LONG_TESTS=1`` for 600.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fs_dagster import FeatureStore
from fs_dagster.core.offline.hudi_reader import HudiTableReader
from fs_dagster.core.online.online_store import OnlineStoreConfig
from valkey_servers import start_valkey

LONG = os.environ.get("FS_DAGSTER_LONG_TESTS") == "1"
EXAMPLES = 600 if LONG else 80
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
TIMES = [T0 + timedelta(hours=h) for h in range(4)]  # few values: ties are common
KEYS = ["k0", "k1", "k2", "k3"]
SITES = ["a", "b"]
VALUES = st.none() | st.just(math.nan) | st.sampled_from([0.0, 1.5, -2.0]) | st.floats(-1e6, 1e6, width=32)

_names = itertools.count()
STATS = {"examples": 0, "steps": 0, "commits": 0, "no_commit_writes": 0, "seconds": 0.0}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("agreement")
    with start_valkey(directory / "valkey") as server:
        fs = FeatureStore(root=directory / "store", project="agree", durable=False,
                          online=OnlineStoreConfig(url=server.url()))
        yield fs
    print(f"\noffline/online agreement: {STATS}")


# --- the oracle ---------------------------------------------------------------------------------------------


@dataclass
class Record:
    site: str  # a data column too (the partition column of the partitioned layout)
    ts: datetime
    value: float | None
    commit: int  # number of the commit that wrote it (commits are numbered in instant order)


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


class Oracle:
    """(site, key) -> Record (site is "" for the non-partitioned layout), with the writer's rule spelled out."""

    def __init__(self, partitioned: bool) -> None:
        self.partitioned = partitioned
        self.records: dict[tuple[str, str], Record] = {}
        self.commits = 0

    def site(self, row: dict) -> str:
        return row["site"] if self.partitioned else ""

    def upsert(self, rows: list[dict]) -> tuple[int, int, int, int]:
        """Applies a batch; returns (inserted, updated, unchanged, outdated)."""
        winners: dict[tuple[str, str], dict] = {}
        for row in rows:  # within the batch: largest event time, then the last occurrence
            record = (self.site(row), row["key"])
            if record not in winners or row["ts"] >= winners[record]["ts"]:
                winners[record] = row
        inserted = updated = unchanged = outdated = 0
        changes: dict[tuple[str, str], dict] = {}
        for record, row in winners.items():
            stored = self.records.get(record)
            if stored is None:
                inserted += 1
            elif stored.ts > row["ts"]:
                outdated += 1  # the stored row is newer: it stays
                continue
            elif (stored.site, stored.ts) == (row["site"], row["ts"]) and same_value(stored.value, row["value"]):
                unchanged += 1  # identical in every column
                continue
            else:
                updated += 1
            changes[record] = row
        if changes:
            self.commits += 1
            for record, row in changes.items():
                self.records[record] = Record(row["site"], row["ts"], row["value"], self.commits)
        return inserted, updated, unchanged, outdated

    def delete(self, keys: list[dict], with_site: bool) -> int:
        if with_site and self.partitioned:
            gone = {(k["site"], k["key"]) for k in keys} & set(self.records)
        else:
            wanted = {k["key"] for k in keys}
            gone = {r for r in self.records if r[1] in wanted}
        for record in gone:
            del self.records[record]
        if gone:
            self.commits += 1
        return len(gone)

    def served(self, key: str) -> list[Record]:
        """The key's newest records over all sites: event time, then the later commit. More than one only when one
        commit wrote the key into several partitions with the same event time: which of those is served is not
        specified (offline, a point-in-time read may pick either too)."""
        mine = [r for (_, k), r in self.records.items() if k == key]
        if not mine:
            return []
        top = max((r.ts, r.commit) for r in mine)
        return [r for r in mine if (r.ts, r.commit) == top]


# --- the property -------------------------------------------------------------------------------------------

ROW = st.fixed_dictionaries(
    {"key": st.sampled_from(KEYS), "site": st.sampled_from(SITES), "ts": st.sampled_from(TIMES), "value": VALUES}
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), st.lists(ROW, min_size=1, max_size=6)),
        st.tuples(st.just("restate"), st.lists(st.sampled_from(KEYS), min_size=1, max_size=3)),
        st.tuples(st.just("delete"), st.lists(ROW, min_size=1, max_size=3), st.booleans()),
    ),
    min_size=1,
    max_size=8,
)
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


def frame(rows: list[dict]) -> pa.Table:
    """Arrow, not pandas: pandas would turn None into NaN (and Arrow NaN into null), losing the distinction."""
    return pa.table({
        "key": pa.array([r["key"] for r in rows], pa.string()),
        "site": pa.array([r["site"] for r in rows], pa.string()),
        "ts": pa.array([r["ts"] for r in rows], pa.timestamp("us", tz="UTC")),
        "value": pa.array([r["value"] for r in rows], pa.float64()),
    })


def run(store: FeatureStore, ops: list, partitioned: bool) -> None:
    started = time.perf_counter()
    fg = store.get_or_create_feature_group(
        f"g{next(_names)}", primary_key=["key"], event_time="ts", partition_key=["site"] if partitioned else [],
        online_enabled=True, statistics_enabled=False,
    )
    oracle = Oracle(partitioned)
    for op in ops:
        if op[0] == "upsert":
            expected = oracle.upsert(op[1])
            result = fg.insert(frame(op[1]))
            counts = (result.rows_inserted, result.rows_updated, result.rows_unchanged, result.rows_outdated)
            assert counts == expected, (op, counts, expected)
            assert (result.instant is None) == (expected[:2] == (0, 0)), op
        elif op[0] == "restate":  # the stored rows of some keys, written again: changes nothing
            rows = [{"key": k, "site": r.site, "ts": r.ts, "value": r.value}
                    for (_, k), r in oracle.records.items() if k in op[1]]
            if not rows:
                continue
            assert oracle.upsert(rows)[:2] == (0, 0)
            result = fg.insert(frame(rows))
            assert result.instant is None and result.rows_updated == 0 and result.rows_unchanged == len(rows)
        else:
            _, keys, with_site = op
            expected_deleted = oracle.delete(keys, with_site)
            key_frame = frame(keys).select(["key", "site"] if with_site and partitioned else ["key"])
            if not fg.exists():
                continue  # nothing written yet: a delete has no table to look at
            result = fg.delete(key_frame)
            assert result.rows_deleted == expected_deleted, op
            assert (result.instant is None) == (expected_deleted == 0), op
        STATS["steps"] += 1
        STATS["commits" if result.instant else "no_commit_writes"] += 1
        check(fg, oracle)
    STATS["examples"] += 1
    STATS["seconds"] += time.perf_counter() - started


def check(fg, oracle: Oracle) -> None:
    snapshot = HudiTableReader(fg.path).read(with_meta=True).to_pylist() if fg.exists() else []
    offline = {(r["site"] if oracle.partitioned else "", r["key"]): r for r in snapshot}
    assert len(offline) == len(snapshot), "a record appears twice offline"
    assert set(offline) == set(oracle.records)
    for record, expected in oracle.records.items():
        row = offline[record]
        assert (row["site"], row["ts"]) == (expected.site, expected.ts), (record, row, expected)
        assert same_value(row["value"], expected.value), (record, row, expected)
    online = fg.get_online([(k,) for k in KEYS]) if fg.exists() else [None] * len(KEYS)
    for key, served in zip(KEYS, online):
        newest = oracle.served(key)
        if not newest:
            assert served is None, (key, served)
            continue
        # the newest offline records of the key (what a point-in-time read at "now" sees) are the oracle's
        mine = [r for r in snapshot if r["key"] == key]
        top = max((r["ts"], r["_hoodie_commit_time"]) for r in mine)
        latest = [r for r in mine if (r["ts"], r["_hoodie_commit_time"]) == top]
        assert sorted((r["site"], r["ts"]) for r in latest) == sorted((r.site, r.ts) for r in newest), (key, latest)
        assert served is not None, f"key {key} missing online; offline newest: {latest}"
        # online serves the offline value exactly: NaN as NaN, only null as None
        assert any(
            (served["site"], served["ts"]) == (r.site, r.ts) and same_value(served["value"], r.value)
            for r in newest
        ), (key, served, newest)


@pytest.mark.parametrize("partitioned", [False, True], ids=["one_partition", "partition_changes"])
def test_offline_and_online_agree_after_any_sequence_of_writes(store: FeatureStore, partitioned: bool) -> None:
    @SETTINGS
    @given(ops=OPS)
    def sequence(ops: list) -> None:
        run(store, ops, partitioned)

    sequence()
