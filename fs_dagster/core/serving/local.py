"""Local deployments: a ``seldon-core-microservice`` process on 127.0.0.1, started, switched and stopped by pid.

The server runs ``python -m fs_dagster.core.serving.launcher`` (seldon's own ``main()``, bound to loopback; see
:mod:`.launcher`) in its own session, so it outlives the command that started it and its pid is its process group.
Its settings travel in the environment (``PREDICTIVE_UNIT_PARAMETERS``, secrets as ``FS_DAGSTER_*`` variables), which
other local users cannot read, unlike a command line. gRPC is off (``--grpc-workers 0``): it would bind every
address, is not switched by gunicorn's signals, and its non-daemon process keeps the master alive after SIGTERM.

Rolling switch (measured in the research notes: no failed request, longest gap at the noise level whatever the
load time): the new version is loaded and checked in this process first (a version that cannot load is refused
before the server hears of it), the pointer file is replaced atomically, ``SIGTTIN`` makes the gunicorn master fork
one more worker per worker (its ``load()`` reads the new pointer), and once every new worker reports the new
version in ``loads.jsonl``, ``SIGTTOU`` retires the oldest workers gracefully (they finish their requests). Until
then old and new workers serve side by side. A new worker that still fails to load serves the last good version
(see :mod:`.seldon_model`) and the switch is undone; one that does not report in time is undone with ``SIGHUP``
(all workers reload the restored pointer).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fs_dagster.core.errors import DeploymentError
from fs_dagster.core.extras import ensure_installed
from fs_dagster.core.serving import processes
from fs_dagster.core.serving.client import ServingClient
from fs_dagster.core.serving.processes import ProcessRecord
from fs_dagster.core.serving.settings import ServingSettings
from fs_dagster.core.serving.state_files import (
    LOADS,
    SERVER_LOG,
    Pointer,
    Target,
    loads_size,
    log_tail,
    read_loads,
    write_pointer,
)

HOST = "127.0.0.1"
MODEL_CLASS = "fs_dagster.core.serving.seldon_model.FeatureStoreModel"
MARKER_PREFIX = "fs-dagster-serving:"


def marker_for(home: Path) -> str:
    return MARKER_PREFIX + str(home)


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class LaunchResult:
    record: ProcessRecord
    port: int
    metrics_port: int
    startup_seconds: float
    health: dict[str, Any]


@dataclass
class SwitchReport:
    """How a rolling switch went: seconds until the new workers were ready and until the old ones had left."""

    from_target: str
    to_target: str
    live: bool
    ready_seconds: float = 0.0
    total_seconds: float = 0.0
    new_workers: list[int] = field(default_factory=list)
    retired_workers: list[int] = field(default_factory=list)


def health(port: int, timeout: float = 5.0) -> tuple[int, Any]:
    """(status, body) of ``GET /health/status``; (0, error text) when nothing answers."""
    client = ServingClient(HOST, port, timeout=timeout)
    try:
        return client.request("GET", "/health/status")
    except DeploymentError as exc:
        return 0, str(exc)
    finally:
        client.close()


def launch(home: Path, settings: ServingSettings, target: Target, *, port: int | None, workers: int, threads: int,
           secrets: dict[str, str], timeout: float = 120.0, on_spawn: Any = None) -> LaunchResult:
    """Starts the server for ``target`` and waits until it answers with that version.

    Args:
        port: the HTTP port (None: a free one, chosen again if it is taken before the server binds it).
        secrets: environment variables for the server only (passwords, a registry URL with credentials).
        on_spawn: called with (record, port, metrics_port) right after the process exists, before waiting (the
            caller records it, so a server whose starter dies while waiting is still known and can be stopped).

    Raises:
        DeploymentError: the server exited (its load error and log tail in the message) or did not answer in time.
    """
    ensure_installed("serving", f"model deployment {settings.deployment}")  # before a server fails to import it
    home.mkdir(parents=True, exist_ok=True)
    _rotate(home)
    write_pointer(home, Pointer(target, None))
    for attempt in range(3):
        chosen = port or free_port()
        try:
            return _launch_once(home, settings, target, chosen, free_port(), workers, threads, secrets, timeout,
                                on_spawn)
        except _PortInUse:
            if port is not None or attempt == 2:
                raise DeploymentError(f"deployment {settings.deployment}: port {chosen} on {HOST} is in use") from None
    raise AssertionError("unreachable")


class _PortInUse(Exception):
    pass


def _rotate(home: Path, keep_bytes: int = 10 << 20) -> None:
    """Before a start (no worker runs): forget old load records, keep one previous server log when it grew large."""
    (home / LOADS).unlink(missing_ok=True)
    log = home / SERVER_LOG
    if log.exists() and log.stat().st_size > keep_bytes:
        os.replace(log, home / (SERVER_LOG + ".1"))


def _launch_once(home: Path, settings: ServingSettings, target: Target, port: int, metrics_port: int, workers: int,
                 threads: int, secrets: dict[str, str], timeout: float, on_spawn: Any) -> LaunchResult:
    marker = marker_for(home)
    command = [
        sys.executable, "-m", "fs_dagster.core.serving.launcher", "--marker", marker, "--bind", HOST, "--",
        MODEL_CLASS, "--service-type", "MODEL", "--http-port", str(port), "--metrics-port", str(metrics_port),
        "--grpc-workers", "0", "--workers", str(workers), "--threads", str(threads), "--log-level", "WARNING",
    ]
    env = dict(os.environ)
    env.update(secrets)
    env["PREDICTIVE_UNIT_PARAMETERS"] = json.dumps(settings.to_parameters())
    # one OpenMP thread per worker unless configured: a request's few rows gain nothing from parallel prediction,
    # and OpenMP's spinning threads (scikit-learn's gradient boosting) made a one-flight request ~50 ms instead of
    # ~3 ms on a busy 2-core machine (scale with workers/threads instead)
    env.setdefault("OMP_NUM_THREADS", "1")
    # a python-flavor model class must import in the server as it does here (e.g. from the current folder)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH", "")) if p)
    log_path = home / SERVER_LOG
    log_offset = log_path.stat().st_size if log_path.exists() else 0
    loads_offset = loads_size(home)
    started = time.monotonic()
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        try:
            process = subprocess.Popen(command, cwd=home, env=env, stdin=devnull, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        except OSError as exc:
            raise DeploymentError(f"deployment {settings.deployment}: could not start {command[0]}: {exc}") from exc
    processes.remember(process)
    record = processes.record_for(process.pid, marker)
    if on_spawn is not None:
        on_spawn(record, port, metrics_port)
    deadline = started + timeout
    while True:
        code = process.poll()
        if code is not None:
            processes.reap(process.pid)
            _stop_leftovers(process.pid)
            tail = log_tail(home, log_offset)
            if "Connection in use" in tail or "Address already in use" in tail:
                raise _PortInUse()
            errors = [r["error"] for r in read_loads(home, loads_offset)[0] if not r.get("ok") and r.get("error")]
            cause = f"loading {target} failed: {errors[-1]}" if errors else f"see {log_path}"
            raise DeploymentError(f"deployment {settings.deployment}: the server exited with code {code} at start; "
                                  f"{cause}\n{tail[-1500:]}")
        status, body = health(port, timeout=2.0)
        if status == 200 and isinstance(body, dict):
            info = body.get("jsonData") or {}
            if info.get("model_version") == target.model_version and info.get("model") == target.model_name:
                return LaunchResult(record, port, metrics_port, time.monotonic() - started, info)
        if time.monotonic() > deadline:
            processes.terminate_group(process.pid)
            raise DeploymentError(f"deployment {settings.deployment}: the server did not answer with {target} "
                                  f"within {timeout:.0f}s (last answer: {status} {str(body)[:300]}); see {log_path}")
        time.sleep(0.05)


def _stop_leftovers(pgid: int) -> None:
    """Helpers of a master that died at start (seldon's metrics server) must not outlive it."""
    if processes.group_members(pgid):
        processes.terminate_group(pgid, timeout=5)


def stop(record: ProcessRecord | None, timeout: float = 20.0) -> bool:
    """Stops the recorded server's whole process group. False (nothing signalled) if the record is stale."""
    if not processes.is_ours(record):
        return False
    assert record is not None
    processes.terminate_group(record.pid, timeout)
    return True


def _workers(home: Path, master: int) -> list[int]:
    """Live REST workers of ``master`` (the pids that reported a load with it as parent)."""
    records, _ = read_loads(home)
    return sorted({r["pid"] for r in records if r.get("ppid") == master and processes.alive(r["pid"])})


def switch(home: Path, record: ProcessRecord, current: Target, new: Target, *, workers: int,
           timeout: float = 120.0) -> SwitchReport:
    """Rolls the running server to ``new`` (see module doc). The caller has validated ``new`` and holds the lock.

    Raises:
        DeploymentError: the new workers failed to load ``new`` (the server goes on serving ``current``) or did
            not report in time (rolled back with SIGHUP).
    """
    master = record.pid
    started = time.monotonic()
    old_workers = _workers(home, master)
    offset = loads_size(home)
    write_pointer(home, Pointer(new, current))
    for i in range(workers):
        if i:
            time.sleep(0.1)  # (standard signals do not queue: one TTIN per master loop turn)
        os.kill(master, signal.SIGTTIN)
    new_workers: list[int] = []
    failure = ""
    deadline = started + timeout
    while len(new_workers) < workers:
        records, _ = read_loads(home, offset)
        mine = [r for r in records if r.get("ppid") == master]
        failed = [r for r in mine if r.get("fallback_from") or not r.get("ok")]
        if failed:
            failure = failed[0].get("error") or "load failed"
            break
        new_workers = [r["pid"] for r in mine if r.get("model_version") == new.model_version
                       and r.get("model_name") == new.model_name]
        if time.monotonic() > deadline:
            failure = f"the new worker(s) did not report {new} within {timeout:.0f}s"
            break
        if not processes.is_ours(record):
            raise DeploymentError(f"the server (pid {master}) exited during the switch to {new}")
        time.sleep(0.01)
    ready = time.monotonic() - started
    if failure:
        write_pointer(home, Pointer(current, None))
        if new_workers or failed:  # the extra workers are up (serving the fallback): retire the extra ones
            for i in range(workers):
                if i:
                    time.sleep(0.1)
                os.kill(master, signal.SIGTTOU)
        else:  # still loading: every worker reloads the restored pointer
            os.kill(master, signal.SIGHUP)
        raise DeploymentError(f"switch to {new} refused, still serving {current}: {failure}")
    for i in range(workers):
        if i:
            time.sleep(0.1)
        os.kill(master, signal.SIGTTOU)
    retire_deadline = time.monotonic() + 35  # gunicorn's graceful timeout is 30 s
    while any(processes.alive(pid) for pid in old_workers) and time.monotonic() < retire_deadline:
        time.sleep(0.02)
    return SwitchReport(str(current), str(new), True, ready, time.monotonic() - started, new_workers, old_workers)
