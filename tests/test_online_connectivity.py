"""The online store's connection layer against real servers on loopback ports (see tests/valkey_servers.py).

Covers the embedded server (idempotent start, racing starters, AOF across stop/start and crashes, stale state,
the ``fs-dagster valkey`` CLI), external servers by URL (password, ACL user, databases, key prefixes), TLS (Debian
redis-server 7 or stunnel; skipped with a reason if neither is installed), a three-node cluster, unavailability and
the write guard (event time, then commit instant) with TTLs. Every server is killed by PID in teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest
import valkey
from valkey_servers import (
    HOST,
    ServerProcess,
    free_port,
    make_certificate,
    start_cluster,
    start_tls_server,
    start_valkey,
    tls_binary,
)

from fs_dagster.core.errors import FeatureStoreError, InvalidDataError
from fs_dagster.core.online import embedded as embedded_module
from fs_dagster.core.online.codec import OnlineLayout, header_of
from fs_dagster.core.online.embedded import EmbeddedServerError, EmbeddedValkey
from fs_dagster.core.online.online_store import (
    OnlineStore,
    OnlineStoreAuthError,
    OnlineStoreConfig,
    OnlineStoreUnavailable,
)

T = datetime(2024, 1, 1, tzinfo=timezone.utc)
SCHEMA = pa.schema([("id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("value", pa.float64())])
I1, I2, I3, I4 = "20240101000000001", "20240101000000002", "20240101000000003", "20240101000000004"


def layout(prefix: str = "fs:", project: str = "p", event_time: str | None = "ts") -> OnlineLayout:
    return OnlineLayout.build(prefix, project, "readings", 1, SCHEMA, ["id"], event_time)


def rows(*items: tuple[str, datetime, float]) -> pa.Table:
    ids, times, values = zip(*items)
    return pa.table({"id": list(ids), "ts": list(times), "value": list(values)}, schema=SCHEMA)


def value_of(store: OnlineStore, lay: OnlineLayout, key: str) -> float | None:
    row = store.get(lay, [(key,)])[0]
    return None if row is None else row[lay.value_columns.index("value")]


# --- servers (module scope: started once, killed by PID at the end) -------------------------------------------


@pytest.fixture(scope="module")
def servers_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("valkey_servers")


@pytest.fixture(scope="module")
def plain(servers_dir) -> ServerProcess:
    with start_valkey(servers_dir / "plain") as server:
        yield server


ADMIN_PASSWORD = "admin-s3cret"
USER_PASSWORD = "fs-user-pw"
# exactly what the store needs (the list OnlineStoreAuthError names), nothing more
FS_USER_ACL = [
    "on", f">{USER_PASSWORD}", "~fs:*", "resetchannels", "-@all", "+ping", "+get", "+set", "+getrange", "+mget",
    "+del", "+evalsha", "+script|load", "+script|exists", "+scan", "+select",
]


@pytest.fixture(scope="module")
def protected(servers_dir) -> ServerProcess:
    with start_valkey(servers_dir / "protected", password=ADMIN_PASSWORD) as server:
        admin = valkey.Valkey(host=HOST, port=server.port, password=ADMIN_PASSWORD)
        assert admin.execute_command("ACL", "SETUSER", "fsuser", *FS_USER_ACL) in (b"OK", "OK", True)
        admin.close()
        yield server


@pytest.fixture(scope="module")
def tls(servers_dir):
    kind = tls_binary()
    if kind is None:
        pytest.skip("no TLS-capable server: install Debian's redis-server (or stunnel4); .ci/run does")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed for a self-signed certificate)")
    cert, key = make_certificate(servers_dir / "certs")
    with start_tls_server(servers_dir / "tls", cert, key) as server:
        yield server, cert


@pytest.fixture(scope="module")
def cluster(servers_dir):
    with start_cluster(servers_dir / "cluster") as nodes:
        yield nodes


@pytest.fixture()
def connect():
    """OnlineStore.connect that closes every store at the end of the test."""
    opened: list[OnlineStore] = []

    def _connect(config: OnlineStoreConfig, embedded_root: str | None = None) -> OnlineStore:
        store = OnlineStore.connect(config, embedded_root)
        opened.append(store)
        return store

    yield _connect
    for store in opened:
        store.close()


# --- embedded server ------------------------------------------------------------------------------------------


def _valkey_pids_in(data_dir: Path) -> set[int]:
    """pids of the valkey-server processes working in ``data_dir`` (the embedded server runs with cwd there)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"valkey-server" in (entry / "cmdline").read_bytes() and Path(os.readlink(entry / "cwd")) == data_dir:
                if (entry / "stat").read_text().split()[2] != "Z":
                    found.add(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture()
def root(tmp_path):
    """A store root whose embedded server(s) are stopped, and any survivor killed by PID, after the test."""
    path = tmp_path / "store"
    yield path
    try:
        EmbeddedValkey(path).stop()
    finally:
        for pid in _valkey_pids_in((path / "online" / "data").resolve()) if Path("/proc").is_dir() else ():
            os.kill(pid, signal.SIGKILL)
        for pid, process in list(embedded_module._children.items()):  # servers this process started
            if process.poll() is None and str(path) in " ".join(map(str, process.args)):
                process.kill()
            process.wait(timeout=10)
            embedded_module._children.pop(pid, None)


def test_embedded_ensure_running_twice_returns_the_same_server(root, connect) -> None:
    first = EmbeddedValkey(root).ensure_running()
    again = EmbeddedValkey(root).ensure_running()  # another instance, as another component would make
    assert again == first and EmbeddedValkey(root).status() == first
    assert first.host == "127.0.0.1" and first.url == f"valkey://:{first.password}@127.0.0.1:{first.port}/0"
    store = connect(OnlineStoreConfig(), embedded_root=str(root))  # the default config: the embedded server
    assert store.address == f"127.0.0.1:{first.port}" and store.ping()


def test_embedded_server_requires_its_private_password(root, connect) -> None:
    """Loopback is shared by every local user: the embedded server takes a password that only the owner of the
    store root can read (not on its command line), kept across restarts."""
    server = EmbeddedValkey(root)
    info = server.ensure_running()
    password_file, config_file = server.dir / "password", server.dir / "valkey.conf"
    assert password_file.read_text() == info.password and len(info.password) >= 40
    for private in (password_file, config_file):
        assert private.stat().st_mode & 0o777 == 0o600, private
    assert info.password not in server.state_path.read_text()
    if Path("/proc").is_dir():
        assert info.password.encode() not in Path(f"/proc/{info.pid}/cmdline").read_bytes()
    anonymous = valkey.Valkey(host=info.host, port=info.port)
    with pytest.raises(valkey.AuthenticationError):
        anonymous.ping()
    anonymous.close()
    with pytest.raises(OnlineStoreAuthError, match=f"127.0.0.1:{info.port}"):
        connect(OnlineStoreConfig(url=f"valkey://:wrong@127.0.0.1:{info.port}/0", retries=0))
    assert server.stop() and server.ensure_running().password == info.password  # the same after a restart
    password_file.unlink()  # lost: the server cannot be used any more, but it can still be stopped
    with pytest.raises(EmbeddedServerError, match="password"):
        server.status()
    assert server.stop() is True
    assert server.ensure_running().password != info.password  # a new one


def test_embedded_server_started_before_passwords_is_used_as_it_is(root, connect, servers_dir) -> None:
    """A server started by an older version (state file without a password) keeps serving until it is stopped."""
    with start_valkey(servers_dir / "older") as older:
        server = EmbeddedValkey(root)
        server.dir.mkdir(parents=True)
        server.state_path.write_text(json.dumps(
            {"host": HOST, "port": older.port, "pid": older.pid, "data_dir": str(older.directory)}))
        info = server.status()
        assert info is not None and info.password is None and info.url == f"valkey://{HOST}:{older.port}/0"
        assert connect(OnlineStoreConfig(), embedded_root=str(root)).ping()


RACER = """
import json, sys, time
from fs_dagster.core.online.embedded import EmbeddedValkey
root, at = sys.argv[1], float(sys.argv[2])
while time.time() < at:
    time.sleep(0.001)
print(json.dumps(EmbeddedValkey(root).ensure_running().__dict__))
"""


def test_embedded_racing_processes_end_with_one_server(root) -> None:
    start_at = time.time() + 1.5  # after every racer has imported: they call ensure_running() together
    racers = [
        subprocess.Popen([sys.executable, "-c", RACER, str(root), str(start_at)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = []
    for racer in racers:
        out, _ = racer.communicate(timeout=60)
        assert racer.returncode == 0
        outputs.append(json.loads(out))
    assert all(o == outputs[0] for o in outputs), outputs
    info = EmbeddedValkey(root).status()
    assert info is not None and (info.pid, info.port) == (outputs[0]["pid"], outputs[0]["port"])
    if Path("/proc").is_dir():
        assert _valkey_pids_in(Path(info.data_dir)) == {info.pid}  # one server on the data directory


def test_embedded_data_survives_stop_and_start(root) -> None:
    server = EmbeddedValkey(root)
    info = server.ensure_running()
    client = valkey.Valkey.from_url(info.url)
    client.set("fs:survivor", "1")
    client.close()
    assert server.stop() is True
    assert server.status() is None and not server.state_path.exists()
    assert server.stop() is False  # nothing to stop
    restarted = server.ensure_running()
    assert restarted.pid != info.pid
    client = valkey.Valkey.from_url(restarted.url)
    assert client.get("fs:survivor") == b"1"  # from the AOF
    client.close()


def test_embedded_status_of_stale_or_broken_state_file_is_none(root) -> None:
    server = EmbeddedValkey(root)
    server.dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that certainly no longer runs
    stale = {"host": HOST, "port": free_port(), "pid": dead.pid, "data_dir": str(server.dir / "data")}
    server.state_path.write_text(json.dumps(stale))
    assert server.status() is None
    server.state_path.write_text(json.dumps({**stale, "pid": os.getpid()}))  # alive, but not a valkey-server
    assert server.status() is None
    server.state_path.write_text("{not json")
    assert server.status() is None
    assert server.stop() is False and not server.state_path.exists()
    server.state_path.write_text(json.dumps(stale))
    info = server.ensure_running()  # replaces the stale state
    assert info.pid != dead.pid and json.loads(server.state_path.read_text())["pid"] == info.pid


def test_embedded_crashed_server_is_restarted_with_its_data(root) -> None:
    server = EmbeddedValkey(root)
    info = server.ensure_running()
    client = valkey.Valkey.from_url(info.url)
    client.set("fs:acknowledged", "yes")  # written to the AOF before the reply: a process crash keeps it
    client.close()
    os.kill(info.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.status() is not None:
        assert time.monotonic() < deadline, "SIGKILLed server still answers"
        time.sleep(0.02)
    restarted = server.ensure_running()
    assert restarted.pid != info.pid and server.status() == restarted
    client = valkey.Valkey.from_url(restarted.url)
    assert client.get("fs:acknowledged") == b"yes"
    client.close()


def test_cli_valkey_start_status_stop(root, capsys) -> None:
    from fs_dagster.cli import main

    def run(action: str) -> tuple[int, str]:
        code = main(["--root", str(root), "valkey", action])
        return code, capsys.readouterr().out

    assert run("status") == (3, "not running\n")
    code, out = run("start")
    info = EmbeddedValkey(root).status()
    assert code == 0 and info is not None
    assert out == (f"running url=valkey://127.0.0.1:{info.port}/0 pid={info.pid} port={info.port} "
                   f"password_file={EmbeddedValkey(root).dir / 'password'}\n")  # (never the password itself)
    assert run("start") == (0, out)  # idempotent

    # the installed console script, as a user runs it
    script = Path(sys.executable).with_name("fs-dagster")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "fs_dagster.cli"]
    done = subprocess.run([*command, "--root", str(root), "valkey", "status"], capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout) == (0, out), done.stderr

    assert run("stop") == (0, "stopped\n")
    assert run("status") == (3, "not running\n")
    assert run("stop") == (0, "not running\n")


# --- external servers by URL ----------------------------------------------------------------------------------


def test_password_auth(protected, connect) -> None:
    lay = layout()
    for config in (
        OnlineStoreConfig(url=protected.url(), password=ADMIN_PASSWORD),
        OnlineStoreConfig(url=protected.url(auth=f":{ADMIN_PASSWORD}@")),  # in the URL
        OnlineStoreConfig(url=protected.url(auth=":wrong@"), password=ADMIN_PASSWORD),  # config overrides URL
    ):
        store = connect(config)
        assert store.write(lay, rows(("pw", T, 1.0)), I1) in (0, 1)
        assert value_of(store, lay, "pw") == 1.0
    for config in (
        OnlineStoreConfig(url=protected.url(), password="not-the-pw-123"),
        OnlineStoreConfig(url=protected.url()),  # no password at all
    ):
        with pytest.raises(OnlineStoreAuthError) as caught:
            connect(config)
        message = str(caught.value)
        assert protected.address in message and "authentication" in message
        assert "not-the-pw-123" not in message  # the secret is not echoed
        assert isinstance(caught.value, FeatureStoreError) and isinstance(caught.value, OnlineStoreUnavailable)


def test_acl_user_with_key_pattern(protected, connect) -> None:
    lay = layout(project="acl")
    store = connect(OnlineStoreConfig(url=f"valkey://fsuser:{USER_PASSWORD}@{protected.address}/0"))
    assert store.write(lay, rows(("u1", T, 1.0), ("u2", T, 2.0)), I1, ttl_seconds=60) == 2
    assert [r[-1] for r in store.get(lay, [("u1",), ("u2",)])] == [1.0, 2.0]
    store.set_marker(lay.sync_marker_key, I1)
    assert store.get_marker(lay.sync_marker_key) == I1
    assert len(list(store.scan_keys(lay.prefix + "*"))) == 2
    assert store.delete([lay.key_for(("u1",)), lay.key_for(("u2",))]) == 2
    db1 = connect(OnlineStoreConfig(url=f"valkey://{protected.address}/1", username="fsuser", password=USER_PASSWORD))
    assert db1.write(lay, rows(("u1", T, 1.0)), I1) == 1

    with pytest.raises(OnlineStoreAuthError, match="authentication") as caught:
        connect(OnlineStoreConfig(url=protected.url(), username="fsuser", password="nope"))
    assert protected.address in str(caught.value) and "fsuser" in str(caught.value)

    # keys outside the user's pattern: a clear error instead of a silent failure
    other = connect(OnlineStoreConfig(url=protected.url(), username="fsuser", password=USER_PASSWORD, key_prefix="x:"))
    with pytest.raises(OnlineStoreAuthError, match="permission") as caught:
        other.write(layout("x:"), rows(("u1", T, 1.0)), I1)
    assert protected.address in str(caught.value) and "'x:'" in str(caught.value)


def test_database_isolation(plain, connect) -> None:
    lay = layout()
    db1 = connect(OnlineStoreConfig(url=plain.url(1)))
    db2 = connect(OnlineStoreConfig(url=plain.url(2)))
    assert db1.write(lay, rows(("k", T, 1.0)), I1) == 1
    assert value_of(db2, lay, "k") is None
    assert db2.write(lay, rows(("k", T - timedelta(days=1), 2.0)), I1) == 1  # older, but db 2 has nothing
    assert (value_of(db1, lay, "k"), value_of(db2, lay, "k")) == (1.0, 2.0)
    assert db1.delete([lay.key_for(("k",))]) == 1
    assert (value_of(db1, lay, "k"), value_of(db2, lay, "k")) == (None, 2.0)


def test_key_prefix_isolation(plain, connect) -> None:
    a = connect(OnlineStoreConfig(url=plain.url(3), key_prefix="team_a:"))
    b = connect(OnlineStoreConfig(url=plain.url(3), key_prefix="team_b:"))
    lay_a, lay_b = layout(a.config.key_prefix), layout(b.config.key_prefix)
    assert a.write(lay_a, rows(("k", T, 1.0), ("only_a", T, 3.0)), I1) == 2
    assert b.write(lay_b, rows(("k", T - timedelta(days=1), 2.0)), I1) == 1  # not guarded by team_a's newer value
    assert (value_of(a, lay_a, "k"), value_of(b, lay_b, "k")) == (1.0, 2.0)
    assert value_of(b, lay_b, "only_a") is None
    assert sorted(b.scan_keys("team_b:*")) == [lay_b.key_for(("k",))]
    assert all(k.startswith(b"team_a:") for k in a.scan_keys("team_a:*"))


def test_config_repr_hides_secrets() -> None:
    config = OnlineStoreConfig(url="valkey://fsuser:hunter2@db.example:6379/0", password="hunter3")
    assert "hunter" not in repr(config) and "db.example:6379" in repr(config)


def test_missing_tls_file_is_a_configuration_error(tmp_path) -> None:
    missing = tmp_path / "no-ca.pem"
    with pytest.raises(FeatureStoreError, match="tls_ca_file .*no-ca.pem.* does not exist") as caught:
        OnlineStore.connect(OnlineStoreConfig(url="valkeys://localhost:6379/0", tls_ca_file=str(missing)))
    assert not isinstance(caught.value, OnlineStoreUnavailable)


# --- TLS ------------------------------------------------------------------------------------------------------


def test_tls_guarded_write_and_read(tls, connect) -> None:
    server, cert = tls
    lay = layout()
    store = connect(OnlineStoreConfig(url=f"valkeys://localhost:{server.port}/0", tls_ca_file=str(cert)))
    assert store.write(lay, rows(("t", T, 1.0)), I2) == 1
    assert store.write(lay, rows(("t", T, 0.5)), I1) == 0  # earlier commit at the same event time: ignored
    assert value_of(store, lay, "t") == 1.0
    # a CA file alone turns TLS on for a valkey:// URL as well
    also = connect(OnlineStoreConfig(url=f"valkey://localhost:{server.port}/0", tls_ca_file=str(cert)))
    assert value_of(also, lay, "t") == 1.0


def test_cluster_over_tls(servers_dir, connect) -> None:
    """A production shape: Valkey Cluster with TLS to clients and on the bus (Debian's redis-server nodes)."""
    if shutil.which("redis-server") is None or shutil.which("openssl") is None:
        pytest.skip("needs Debian's redis-server (built with TLS) and openssl; .ci/run installs them")
    cert, _ = certs = make_certificate(servers_dir / "cluster-tls-certs")
    with start_cluster(servers_dir / "cluster-tls", tls=certs) as cluster:
        store = connect(OnlineStoreConfig(url=f"valkeys://localhost:{cluster.nodes[0].port}", cluster=True,
                                          tls_ca_file=str(cert), batch_size=200))
        lay = layout()
        n = 1200
        ids = [f"c{i}" for i in range(n)]
        table = pa.table({"id": ids, "ts": [T] * n, "value": [float(i) for i in range(n)]}, schema=SCHEMA)
        assert store.write(lay, table, I1) == n
        per_node = [valkey.Valkey(host=HOST, port=node.port, ssl=True, ssl_ca_certs=str(cert)).dbsize()
                    for node in cluster.nodes]
        assert sum(per_node) == n and all(count > n // 6 for count in per_node), per_node
        older = table.set_column(1, "ts", pa.array([T - timedelta(hours=1)] * n, pa.timestamp("us", tz="UTC")))
        assert store.write(lay, older, I2) == 0  # the guard, over TLS on every node
        assert [r[-1] for r in store.get(lay, [(i,) for i in ids])] == [float(i) for i in range(n)]
        keys = [lay.key_for((i,)) for i in ids]
        assert store.mget_pieces([lambda: keys[:600], lambda: keys[600:]], lambda i, raw: len(raw)) == [600, 600]
        assert store.delete(keys) == n
        with pytest.raises(OnlineStoreUnavailable, match="certificate verification failed"):
            connect(OnlineStoreConfig(url=f"valkeys://localhost:{cluster.nodes[0].port}", cluster=True,
                                      retries=0, socket_timeout=3))  # the system trust store only


def test_tls_without_the_ca_fails_clearly(tls, connect) -> None:
    server, _ = tls
    with pytest.raises(OnlineStoreUnavailable, match="certificate verification failed") as caught:
        connect(OnlineStoreConfig(url=f"valkeys://localhost:{server.port}/0"))  # system trust store only
    assert f"localhost:{server.port}" in str(caught.value) and "tls_ca_file" in str(caught.value)
    with pytest.raises(OnlineStoreUnavailable) as caught:  # a plain-text client at a TLS port
        connect(OnlineStoreConfig(url=f"valkey://localhost:{server.port}/0", socket_timeout=3, retries=0))
    assert f"localhost:{server.port}" in str(caught.value)


# --- cluster --------------------------------------------------------------------------------------------------


def test_cluster_guarded_writes_reads_and_deletes(cluster, connect) -> None:
    store = connect(OnlineStoreConfig(url=cluster.url, cluster=True, batch_size=500))
    assert not store.packs_reads  # (a piece must be its keys: they go to several nodes)
    lay = layout()
    n = 3000
    ids = [f"e{i}" for i in range(n)]
    table = pa.table({"id": ids, "ts": [T] * n, "value": [float(i) for i in range(n)]}, schema=SCHEMA)
    assert store.write(lay, table, I1) == n
    per_node = [valkey.Valkey(host=HOST, port=node.port).dbsize() for node in cluster.nodes]
    assert sum(per_node) == n and all(count > n // 6 for count in per_node), per_node  # spread over 3 nodes

    entities = [(i,) for i in ids]
    assert [r[-1] for r in store.get(lay, entities)] == [float(i) for i in range(n)]  # MGET across nodes

    older = table.set_column(1, "ts", pa.array([T - timedelta(hours=1)] * n, pa.timestamp("us", tz="UTC")))
    assert store.write(lay, older, I2) == 0
    newer = table.set_column(2, "value", pa.array([-1.0] * n))
    for node in cluster.nodes:  # a restarted node has lost its scripts: the write reloads and retries
        valkey.Valkey(host=HOST, port=node.port).script_flush()
    assert store.write(lay, newer, I2) == n
    assert {r[-1] for r in store.get(lay, entities)} == {-1.0}

    # settling entities from a snapshot (a time series' deleted rows): one script call per key, routed by slot
    settled = lay.key_array(pa.table({"id": ids[:40]}))
    survivors = table.slice(0, 20).set_column(2, "value", pa.array([5.0] * 20))  # e0..e19 keep a row, e20.. none
    assert store.settle(lay, settled, survivors, I1, I1) == (0, 0)  # the snapshot is older than what is stored
    for node in cluster.nodes:
        valkey.Valkey(host=HOST, port=node.port).script_flush()
    assert store.settle(lay, settled, survivors, I1, I3) == (20, 20)
    assert [r and r[-1] for r in store.get(lay, entities[:40])] == [5.0] * 20 + [None] * 20
    assert store.write(lay, newer.slice(0, 40), I3) == 40  # (back as before, for the checks below)

    store.set_marker(lay.sync_marker_key, I2)
    assert store.get_marker(lay.sync_marker_key) == I2
    assert len(list(store.scan_keys(lay.prefix + "*"))) == n
    keys = [lay.key_for(e) for e in entities]
    pieces = [lambda a=a: keys[a : a + 700] for a in range(0, n, 700)]  # (big feature-vector batches)
    assert store.mget_pieces(pieces, lambda i, raw: (i, raw)) == [
        (i, store.mget(keys[a : a + 700])) for i, a in enumerate(range(0, n, 700))]
    assert store.delete(keys[: n // 2]) == n // 2
    got = store.get(lay, entities)
    assert got[: n // 2] == [None] * (n // 2) and None not in got[n // 2 :]
    assert store.delete(keys) == n - n // 2


# --- unavailability -------------------------------------------------------------------------------------------


def test_closed_port_is_unavailable_naming_the_address(connect) -> None:
    port = free_port()
    for cluster_mode in (False, True):
        started = time.monotonic()
        with pytest.raises(OnlineStoreUnavailable) as caught:
            connect(OnlineStoreConfig(url=f"valkey://127.0.0.1:{port}/0", cluster=cluster_mode))
        assert f"127.0.0.1:{port}" in str(caught.value)
        assert time.monotonic() - started < 10


def test_server_killed_between_calls(tmp_path, connect) -> None:
    lay = layout()
    with start_valkey(tmp_path / "doomed") as server:
        store = connect(OnlineStoreConfig(url=server.url()))
        assert store.write(lay, rows(("k", T, 1.0)), I1) == 1
        server.kill()
        with pytest.raises(OnlineStoreUnavailable, match=f"127.0.0.1:{server.port}"):
            store.write(lay, rows(("k", T, 2.0)), I2)
        with pytest.raises(OnlineStoreUnavailable, match=f"127.0.0.1:{server.port}"):
            store.get(lay, [("k",)])
    # the same store object reconnects once a server is back on the address
    with start_valkey(tmp_path / "reborn", port=server.port):
        assert store.write(lay, rows(("k", T, 3.0)), I3) == 1 and value_of(store, lay, "k") == 3.0


# --- the write guard and TTL ----------------------------------------------------------------------------------


def test_guard_orders_by_event_time_then_commit_instant(plain, connect) -> None:
    store = connect(OnlineStoreConfig(url=plain.url(4), batch_size=2))
    lay = layout()
    key = lay.key_for(("k",))

    def write(ts: datetime, instant: str, value: float) -> int:
        return store.write(lay, rows(("k", ts, value)), instant)

    assert write(T, I2, 1.0) == 1
    assert write(T - timedelta(seconds=1), I4, 2.0) == 0  # older event time (even from a later commit): ignored
    assert write(T + timedelta(microseconds=1), I1, 3.0) == 1  # newer event time (even from an earlier commit)
    assert write(T + timedelta(microseconds=1), I3, 4.0) == 1  # equal time, later commit: applied
    assert write(T + timedelta(microseconds=1), I2, 5.0) == 0  # equal time, earlier commit: ignored
    assert value_of(store, lay, "k") == 4.0
    assert header_of(store.mget([key])[0]) == ((T - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(
        microseconds=1) + 1, I3)
    assert write(T + timedelta(microseconds=1), I3, 4.0) == 1  # the same commit again (a re-sync): idempotent

    # pre-1970 event times compare correctly (offset header), and a batch spanning several script calls
    old = datetime(1960, 1, 1, tzinfo=timezone.utc)
    batch = rows(("a", old, 1.0), ("b", old, 1.0), ("c", old, 1.0), ("d", old, 1.0), ("e", old, 1.0))
    assert store.write(lay, batch, I1) == 5
    assert store.write(lay, rows(("a", old - timedelta(days=1), 0.0), ("b", old + timedelta(days=1), 2.0)), I1) == 1
    assert [r[-1] for r in store.get(lay, [("a",), ("b",)])] == [1.0, 2.0]

    static = layout(project="static", event_time=None)  # no event time: only the commit instant orders
    assert store.write(static, rows(("s", T, 1.0)), I2) == 1
    assert store.write(static, rows(("s", T, 0.0)), I1) == 0
    assert store.write(static, rows(("s", T, 2.0)), I3) == 1 and value_of(store, static, "s") == 2.0


def test_ttl_is_set_and_cleared(plain, connect) -> None:
    store = connect(OnlineStoreConfig(url=plain.url(5)))
    lay = layout()
    key = lay.key_for(("k",))
    assert store.write(lay, rows(("k", T, 1.0)), I1, ttl_seconds=1) == 1
    assert 0 < store.client.pttl(key) <= 1000
    store.client.pexpire(key, 20)  # let it expire now rather than waiting a second
    deadline = time.monotonic() + 5
    while value_of(store, lay, "k") is not None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert store.client.pttl(key) == -2

    assert store.write(lay, rows(("k", T, 1.0)), I1, ttl_seconds=60) == 1
    assert store.write(lay, rows(("k", T - timedelta(days=1), 0.0)), I2, ttl_seconds=3600) == 0  # ignored write
    assert 0 < store.client.pttl(key) <= 60_000  # ... leaves the TTL alone
    assert store.write(lay, rows(("k", T, 2.0)), I2) == 1  # applied without a TTL: persistent
    assert store.client.pttl(key) == -1
    with pytest.raises(ValueError):
        store.write(lay, rows(("k", T, 3.0)), I3, ttl_seconds=-5)


def test_headers_refuse_what_would_corrupt_them(plain, connect) -> None:
    store = connect(OnlineStoreConfig(url=plain.url(6)))
    lay = layout(project="headers")
    assert store.write(lay, rows(("k", T, 1.0)), "20240101000000") == 1  # a 14-digit Hudi instant: Hudi's "999"
    assert header_of(store.mget([lay.key_for(("k",))])[0])[1] == "20240101000000999"
    assert store.write(lay, rows(("k", T, 2.0)), I1) == 0  # earlier than ...000999
    for bad in ("2024", "2024010100000000x"):
        with pytest.raises(InvalidDataError, match="instant"):
            store.write(lay, rows(("k", T, 3.0)), bad)
    with pytest.raises(InvalidDataError, match="2 commit instants for 1 rows"):
        store.write(lay, rows(("k", T, 3.0)), [I1, I2])
    null_time = pa.table({"id": ["k"], "ts": pa.array([None], SCHEMA.field("ts").type), "value": [1.0]})
    with pytest.raises(InvalidDataError, match="event time column 'ts'"):
        store.write(lay, null_time, I1)
    null_key = pa.table({"id": pa.array([None], pa.string()), "ts": [T], "value": [1.0]}, schema=SCHEMA)
    with pytest.raises(InvalidDataError, match="key column 'id'"):
        store.write(lay, null_key, I1)
    assert header_of(store.mget([lay.key_for(("k",))])[0])[1] == "20240101000000999"  # nothing was overwritten
