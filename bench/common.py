"""Small helpers shared by the benchmark scripts: best-of-N and per-call latency timing, machine description, markdown
tables."""

from __future__ import annotations

import gc
import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


def best_of(fn: Callable[..., Any], repeat: int, setup: Callable[[], Any] | None = None) -> tuple[float, Any]:
    """Runs ``fn`` ``repeat`` times (``setup`` before each, untimed) and returns (best seconds, last result).

    ``setup``'s return value, if not None, is passed to ``fn``.
    """
    timing = interleaved({"only": Case(fn, setup)}, repeat)["only"]
    return timing.best, timing.result


@dataclass
class Case:
    """One timed operation: ``setup()`` (untimed) makes the argument of ``run``; ``teardown(arg)`` cleans up."""

    run: Callable[..., Any]
    setup: Callable[[], Any] | None = None
    teardown: Callable[[Any], None] | None = None


@dataclass
class Timing:
    best: float
    result: Any
    times: list[float]


def interleaved(cases: dict[str, Case], repeat: int, rotate: bool = False) -> dict[str, Timing]:
    """Best of ``repeat`` for every case, the cases alternating within each round (A B A B ...), so an operation
    and its baseline see the same machine load even on a shared machine. Cases run in dict order each round; with
    ``rotate`` later rounds rotate that order (B A, ...) so that no case always follows the same one (page cache,
    writeback); the first round keeps the dict order (a case may need an earlier one's result)."""
    out: dict[str, Timing] = {name: Timing(float("inf"), None, []) for name in cases}
    names = list(cases)
    for round_ in range(max(1, repeat)):
        shift = round_ % len(names) if rotate else 0
        for name in names[shift:] + names[:shift]:
            case = cases[name]
            arg = case.setup() if case.setup is not None else None
            gc.collect()
            start = time.perf_counter()
            result = case.run(arg) if case.setup is not None else case.run()
            elapsed = time.perf_counter() - start
            if case.teardown is not None:
                case.teardown(arg)
            timing = out[name]
            timing.times.append(elapsed)
            timing.best = min(timing.best, elapsed)
            timing.result = result
    return out


def latencies(cases: dict[str, Callable[[int], Any]], n: int, warmup: int = 20) -> dict[str, np.ndarray]:
    """Seconds per call of every case; call ``i`` of each case runs back to back with the others, the order rotating
    (A B C, B C A, C A B, ...): the first call of a round was measured ~0.1 ms slower than the same call later in
    the round, so no case may always be first."""
    out: dict[str, list[int]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    names = list(cases)
    gc.collect()
    for i in range(-warmup, n):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            fn = cases[name]
            start = clock()
            fn(i)
            elapsed = clock() - start
            if i >= 0:
                out[name].append(elapsed)
    return {name: np.array(v, dtype=np.float64) / 1e9 for name, v in out.items()}


def load_average() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_info() -> str:
    cores = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = cores
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {usable} usable cores ({cores} logical), Python {platform.python_version()}, {platform.system()}"


def rate(rows: int, seconds: float) -> str:
    """Rows per second, human readable."""
    if seconds <= 0:
        return "inf"
    per_s = rows / seconds
    if per_s >= 1e6:
        return f"{per_s / 1e6:.2f}M rows/s"
    return f"{per_s / 1e3:.0f}k rows/s"


@dataclass
class Table:
    """A markdown table printed at the end of a run."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append([str(c) for c in cells])

    def render(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "|".join("---" for _ in self.header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)
