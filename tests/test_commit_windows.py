"""A commit seen per event-time window (what each time partition's materialization reports): batch rows, rows
inserted/updated, rows after the commit, statistics, and the content version that identifies a window's rows."""

from __future__ import annotations

import os
import random
import time
from datetime import datetime, timezone

import pandas as pd

from fs_dagster import FeatureStore, TimeWindow

MONTHS = [TimeWindow(datetime(2024, m, 1, tzinfo=timezone.utc), datetime(2024, m + 1, 1, tzinfo=timezone.utc))
          for m in (1, 2, 3)]
ALL = TimeWindow(MONTHS[0].start, MONTHS[-1].end)


def _rows(items: list[tuple[str, int, float]]) -> pd.DataFrame:
    """(key, month, value) -> rows keyed by ``key`` with event time in that month (day = value's last digit + 1)."""
    return pd.DataFrame({
        "key": [k for k, _, _ in items],
        "ts": pd.Series([datetime(2024, m, 1 + int(v) % 9, tzinfo=timezone.utc) for _, m, v in items],
                        dtype="datetime64[ns, UTC]"),
        "value": [float(v) for _, _, v in items],
    })


def _group(tmp_path):
    fs = FeatureStore(root=tmp_path / "store", project="test")
    return fs.get_or_create_feature_group("readings", version=1, primary_key=["key"], event_time="ts")


def test_one_commit_split_by_window(tmp_path) -> None:
    fg = _group(tmp_path)
    first = _rows([("a", 1, 1), ("b", 1, 2), ("c", 2, 3), ("d", 3, 4), ("e", 3, 5), ("f", 3, 6)])
    result = fg.insert(first, window=ALL)
    figures = fg.window_figures(MONTHS, instant=result.instant, batch=first, statistics=True)
    assert [(f.batch_rows, f.rows_inserted, f.rows_updated, f.row_count) for f in figures] == [
        (2, 2, 0, 2), (1, 1, 0, 1), (3, 3, 0, 3)]
    assert [f.statistics["features"]["value"]["mean"] for f in figures] == [1.5, 3.0, 5.0]
    assert {f.content_version for f in figures} == {f"{result.instant}/2", f"{result.instant}/1", f"{result.instant}/3"}

    # b moves from January to February (its event time changed), c is sent again unchanged (not rewritten), g is
    # new in March
    second = _rows([("b", 2, 7), ("c", 2, 3), ("g", 3, 8)])
    result2 = fg.insert(second, window=ALL)
    figures = fg.window_figures(MONTHS, instant=result2.instant, batch=second)
    assert [(f.batch_rows, f.rows_inserted, f.rows_updated, f.row_count) for f in figures] == [
        (0, 0, 0, 1), (2, 0, 1, 2), (1, 1, 0, 4)]
    assert sum(f.rows_inserted for f in figures) == result2.rows_inserted == 1
    assert sum(f.rows_updated for f in figures) == result2.rows_updated == 1 and result2.rows_unchanged == 1
    # January lost b without a row of it being written: the newest commit is the same, the count tells
    assert figures[0].content_version == f"{result.instant}/1" != f"{result.instant}/2"

    # nothing committed: the latest snapshot, nothing written, versions as they are
    again = fg.window_figures(MONTHS, instant=None, batch=_rows([]))
    assert [(f.rows_inserted, f.rows_updated, f.row_count) for f in again] == [(0, 0, 1), (0, 0, 2), (0, 0, 4)]
    assert [f.content_version for f in again] == [f.content_version for f in figures]

    fg.delete(pd.DataFrame({"key": ["a"]}))
    assert fg.window_figures(MONTHS[:1], instant=None)[0].content_version == "empty"


def test_content_version_identifies_a_windows_rows(tmp_path) -> None:
    """Random upserts (new keys, rewrites, moves between months) and deletes; after every commit each month's
    content version is recorded with its rows. Equal versions must mean equal rows, and a month whose rows
    the commit neither wrote nor removed must keep its version."""
    steps = 200 if os.environ.get("FS_DAGSTER_LONG_TESTS") == "1" else 30
    rng = random.Random(20240601)
    fg = _group(tmp_path)
    seen: dict[tuple[int, str], frozenset] = {}  # (month, version) -> the month's rows
    before: list[tuple[str, frozenset]] | None = None
    started, checks = time.monotonic(), 0
    for step in range(steps):
        keys = [f"k{i}" for i in range(8)]
        if step and rng.random() < 0.25:
            result = fg.delete(pd.DataFrame({"key": rng.sample(keys, rng.randint(1, 3))}))
        else:
            batch = _rows([(k, rng.randint(1, 3), rng.randint(0, 3)) for k in rng.sample(keys, rng.randint(1, 4))])
            result = fg.insert(batch, window=ALL)
        snapshot = fg._reader().read(with_meta=True).to_pandas()
        now = []
        for index, (month, figures) in enumerate(zip(MONTHS, fg.window_figures(MONTHS, instant=result.instant))):
            rows = snapshot[(snapshot["ts"] >= month.start) & (snapshot["ts"] < month.end)]
            content = frozenset(zip(rows["key"], rows["ts"], rows["value"]))
            stamped = frozenset(zip(rows["key"], rows["_hoodie_commit_time"]))
            version = figures.content_version
            assert seen.setdefault((index, version), content) == content, (step, index, version)
            if before is not None and before[index][1] == stamped:  # untouched by this commit
                assert before[index][0] == version, (step, index)
            now.append((version, stamped))
            checks += 1
        before = now
    print(f"content versions: {steps} commits, {checks} window checks in {time.monotonic() - started:.1f}s")
