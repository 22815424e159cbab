"""The online store on Valkey: guarded batch writes of the latest row per key, and one-round-trip reads.

Writes go through a server-side Lua script that compares the stored value's header (event time, then commit
instant) with the new one and writes only if the new one is not older, so a backfill of old partitions never
overwrites newer values, and of two rows with equal event times the later commit wins. (The one exception,
:meth:`OnlineStore.settle`, sets keys to what an offline snapshot holds, for a time series whose served row was
deleted offline, yet never over a value a later commit wrote.) Batches are pipelined (in a cluster: one script
call per hash slot, pipelined per node). On a standalone server, writes are packed into RESP by Arrow kernels and
new or existing unique keys skip the script (``MSETNX``, or WATCH/MULTI/EXEC with the headers compared client
side; same outcome, a third of the server's work): see :mod:`.pipeline`.

Errors: every failure to reach or use the server is raised as a :class:`FeatureStoreError` naming the address:
:class:`OnlineStoreUnavailable` (refused, timed out, TLS handshake failed, server loading/out of memory/read-only),
its subclass :class:`OnlineStoreAuthError` (wrong password or user, ACL denies a command or key) and
:class:`OnlineStoreError` for anything else the server rejects.

The embedded server of a store root may be stopped and started again on another port (``fs-dagster valkey
stop|start``, a reboot) while serving processes keep their store open: an operation that finds it unavailable
looks up where the root's server runs now (starting it if it is not running), reconnects, and is retried once.
"""

from __future__ import annotations

import os
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fs_dagster.core.errors import FeatureStoreError
from fs_dagster.core.online.codec import (
    BINARY,
    HEADER_BYTES,
    ChunkedEncoding,
    EncodedRows,
    OnlineLayout,
    _instant_bytes,
    _offsets,
    check_values,
)

# KEYS[i] gets ARGV[i + 1] if its header is >= the stored value's (or nothing is stored); ARGV[1] is the TTL.
# The stored values are read with one MGET per 1,000 keys (not one GETRANGE call per key: a call from Lua costs
# microseconds); ``latest`` keeps what this call wrote, so a key repeated in one call compares with its own write.
GUARDED_SET = """
local ttl = tonumber(ARGV[1])
local n = #KEYS
local call, sub = redis.call, string.sub
local stored = {}
for first = 1, n, 1000 do
  local values = call('MGET', unpack(KEYS, first, math.min(first + 999, n)))
  for j = 1, #values do stored[first + j - 1] = values[j] end
end
local latest = {}
local written = 0
for i = 1, n do
  local key, new = KEYS[i], ARGV[i + 1]
  local old = latest[key]
  if old == nil then old = stored[i] end
  if not old or sub(old, 1, %d) <= sub(new, 1, %d) then
    if ttl > 0 then call('SET', key, new, 'EX', ttl) else call('SET', key, new) end
    latest[key] = new
    written = written + 1
  end
end
return written
""" % (HEADER_BYTES, HEADER_BYTES)

# Settles values from an offline snapshot (as of commit ARGV[1]): KEYS[i] gets ARGV[i + 2], or is deleted if that
# is empty, unless its stored value was written by a later commit than the snapshot's (header bytes 21-37: the
# commit instant); ARGV[2] is the TTL. Returns {keys deleted, keys replaced} (an identical value is left alone).
SETTLE = """
local instant, ttl = ARGV[1], tonumber(ARGV[2])
local call, sub = redis.call, string.sub
local deleted, replaced = 0, 0
for i = 1, #KEYS do
  local key, new = KEYS[i], ARGV[i + 2]
  local old = call('GET', key)
  if old and sub(old, 21, %d) > instant then
    -- written by a commit after the snapshot: it is newer than anything settled here
  elseif new == '' then
    if old then
      call('DEL', key)
      deleted = deleted + 1
    end
  elseif old ~= new then
    if ttl > 0 then call('SET', key, new, 'EX', ttl) else call('SET', key, new) end
    replaced = replaced + 1
  end
end
return {deleted, replaced}
""" % HEADER_BYTES

TLS_SCHEMES = ("valkeys", "rediss")
SCHEMES = ("valkey", "redis", *TLS_SCHEMES, "unix")


class OnlineStoreError(FeatureStoreError):
    """The online store rejected a request; the message names the address and the server's reason."""


class OnlineStoreUnavailable(OnlineStoreError, ConnectionError):
    """Valkey could not be reached or used; the message names the address. Offline data is unaffected."""


class OnlineStoreAuthError(OnlineStoreUnavailable):
    """Authentication failed (wrong password or user) or an ACL denies a command or key; names the address."""


@dataclass(frozen=True, repr=False)
class OnlineStoreConfig:
    """Where the online store lives.

    Args:
        url: ``valkey://[user:password@]host:port/db``, ``valkeys://...`` for TLS or ``unix:///path.sock?db=0``;
            None = the embedded server of the store root (started on demand). Query options of valkey-py
            (``?socket_timeout=5``...) are honoured.
        password, username: ACL credentials (override the URL's).
        tls_ca_file, tls_cert_file, tls_key_file: TLS trust (the CA that signed the server certificate; without it
            the system's trust store is used) and client certificate; setting any enables TLS.
        tls_verify_hostname: check that the certificate names the host of the URL.
        tls_verify: verify the server certificate at all (False only for throwaway test servers).
        cluster: talk to a Valkey Cluster (keys are routed by slot; vectors use one round trip per node).
        key_prefix: namespace for every key (projects are separated inside it as well).
        batch_size: keys per pipelined write command.
        socket_timeout: seconds to connect and for each reply.
        retries: reconnect-and-retry attempts after a connection error or timeout (every operation is idempotent).
        extra: further keyword arguments for ``valkey.Valkey`` / ``ValkeyCluster``.
    """

    url: str | None = None
    password: str | None = None
    username: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify_hostname: bool = True
    cluster: bool = False
    key_prefix: str = "fs:"
    batch_size: int = 1000
    socket_timeout: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    tls_verify: bool = True
    retries: int = 2

    @property
    def tls(self) -> bool:
        scheme = (self.url or "").split("://", 1)[0].lower()
        return bool(self.tls_ca_file or self.tls_cert_file) or scheme in TLS_SCHEMES

    def __repr__(self) -> str:  # never print secrets
        url = _redact(self.url) if self.url else None
        password = "***" if self.password is not None else None
        return (
            f"OnlineStoreConfig(url={url!r}, username={self.username!r}, password={password!r}, "
            f"tls={self.tls}, cluster={self.cluster}, key_prefix={self.key_prefix!r})"
        )


class OnlineStore:
    """A connection to Valkey plus the operations the feature store needs.

    Example:
        online = OnlineStore.connect(OnlineStoreConfig(url="valkey://localhost:6379/0"))
        online.write(layout, table, instants="20240101120000123")
        online.get(layout, [("JFK", ts)])
    """

    def __init__(self, client: Any, config: OnlineStoreConfig, address: str) -> None:
        self.client = client
        self.config = config
        self.address = address
        self._script = client.register_script(GUARDED_SET)
        self._settle_script = client.register_script(SETTLE)  # (called with the current client: it may move)
        self._script_loaded = False  # cluster mode: loaded on every primary before the first pipelined write
        self._msetnx = True  # False once the server's ACL refused MSETNX (writes then all go through the script)
        self._watch = True  # False once it refused WATCH/MULTI/EXEC/MSET (updates then go through the script)
        self._embedded_root: str | None = None  # set for the embedded server: it may move (see module doc)
        self._relocating = threading.Lock()

    @classmethod
    def connect(cls, config: OnlineStoreConfig, embedded_root: str | None = None) -> OnlineStore:
        """Connects (and PINGs). Raises OnlineStoreUnavailable / OnlineStoreAuthError naming the address."""
        url = config.url
        if url is None:
            if embedded_root is None:
                raise FeatureStoreError("no online store URL and no store root for the embedded server")
            from fs_dagster.core.online.embedded import EmbeddedValkey

            url = EmbeddedValkey(embedded_root).ensure_running().url
        url, kwargs = _client_arguments(config, url)
        address = _address(url)
        try:
            client = _make_client(config, url, kwargs)
        except (ValueError, TypeError) as exc:  # a malformed URL or option, not an outage
            raise FeatureStoreError(f"invalid online store configuration for {address}: {exc}") from exc
        except Exception as exc:  # the cluster client connects while it is constructed
            raise (_translate(exc, address, "connect", config) or exc) from exc
        store = cls(client, config, address)
        try:
            store._translated("connect", client.ping)
        except BaseException:
            _close_quietly(client)
            raise
        if config.url is None and not config.cluster:
            store._embedded_root = embedded_root
        return store

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` with errors translated; on the embedded server, an unavailable server is looked
        up again and the call retried once (``fn`` must use ``self.client`` at call time, not a bound method of
        it, and be safe to repeat: every operation here is)."""
        client = self.client
        try:
            return self._translated(what, fn, *args, **kwargs)
        except OnlineStoreUnavailable:
            if self._embedded_root is None or not self._relocate(client):
                raise
        return self._translated(what, fn, *args, **kwargs)

    def _translated(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if isinstance(exc, FeatureStoreError):
                raise
            translated = _translate(exc, self.address, what, self.config)
            if translated is None:
                raise
            raise translated from exc

    def _relocate(self, failed: Any) -> bool:
        """Connects to the embedded server where the root's state file says it runs now, starting it if it is not
        running; False if that fails too (the caller raises the original error). ``failed``: the client the
        error came from (another thread may have reconnected already)."""
        from fs_dagster.core.online.embedded import EmbeddedValkey

        with self._relocating:
            if self.client is not failed:
                return True
            try:
                url = EmbeddedValkey(self._embedded_root).ensure_running().url
                url, kwargs = _client_arguments(self.config, url)
                client = _make_client(self.config, url, kwargs)
            except Exception:  # (cannot start, unreadable password, ...): report the original unavailability
                return False
            self.client, self.address = client, _address(url)
            self._script = client.register_script(GUARDED_SET)
            _close_quietly(failed)
            return True

    # --- writes ---------------------------------------------------------------------------------------------

    def write(
        self, layout: OnlineLayout, table: pa.Table, instants: str | Sequence[str] | pa.Array | pa.ChunkedArray,
        ttl_seconds: int | None = None, *, unique_keys: bool | None = None, key_array: pa.Array | None = None,
    ) -> int:
        """Writes the rows (see module doc for the guard). Returns how many keys were written.

        ``unique_keys``: the caller knows whether the rows' keys are unique (None: checked here); a write of unique
        keys without TTL takes the MSETNX fast path for keys that do not exist yet (see :mod:`.pipeline`).
        ``key_array``: the rows' keys if the caller built them already (:meth:`OnlineLayout.key_array`).
        """
        if table.num_rows == 0:
            return 0
        if self.config.cluster:
            return self.write_encoded(layout.encode_keys(table), layout.encode_values(table, instants), ttl_seconds)
        from fs_dagster.core.online import pipeline

        # vectorized; anything that refuses the rows does so before a byte is sent
        if table.num_rows > pipeline.CHUNK_ROWS:  # big writes: chunks are encoded while earlier ones are stored
            rows: Any = ChunkedEncoding(layout, table, instants, pipeline.chunk_rows(self.config.batch_size),
                                        key_array)
        else:
            rows = layout.encode_rows(table, instants, key_array=key_array)
        return self._write_rows(rows, _ttl(ttl_seconds), unique_keys)

    def write_encoded(self, keys: list[bytes], values: list[bytes], ttl_seconds: int | None = None) -> int:
        """Guarded writes of encoded keys and values (each value starts with the 37-byte header)."""
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys but {len(values)} values")
        if not keys:
            return 0
        ttl = _ttl(ttl_seconds)
        if self.config.cluster:
            return self._write_cluster(keys, values, ttl)
        value_array = pa.array(values, BINARY)
        rows = EncodedRows(pa.array(keys, BINARY), (value_array,), np.diff(_offsets(value_array)))
        return self._write_rows(rows, ttl)

    def _write_rows(self, rows: EncodedRows | ChunkedEncoding, ttl: int, unique_keys: bool | None = None) -> int:
        """Standalone server: pre-packed batches streamed over one connection (see :mod:`.pipeline`)."""
        from fs_dagster.core.online import pipeline

        if unique_keys is None:
            unique_keys = len(pc.unique(rows.keys)) == len(rows)
        plain = unique_keys and ttl == 0
        written, msetnx_refused, watch_refused = self._call(
            "write", self._on_connection, pipeline.guarded_write, rows, ttl, self.config.batch_size,
            self._script.sha, GUARDED_SET, unique_keys, plain and self._msetnx, plain and self._watch,
        )
        if msetnx_refused:
            self._msetnx = False
        if watch_refused:
            self._watch = False
        return written

    def _on_connection(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(connection, *args)`` on a pooled connection, retried as valkey-py retries a command; a failed
        connection is dropped (it may be mid-reply)."""
        pool = self.client.connection_pool
        connection = pool.get_connection("EVALSHA")
        try:
            def fail(error: Exception) -> None:
                connection.disconnect()
                if not isinstance(error, tuple(connection.retry_on_error or ())):
                    raise error

            return connection.retry.call_with_retry(lambda: fn(connection, *args), fail)
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    def _write_cluster(self, keys: list[bytes], values: list[bytes], ttl: int) -> int:
        """One script call per hash slot (a script may only touch keys of one slot), pipelined per node."""
        from valkey.crc import key_slot
        from valkey.exceptions import NoScriptError

        by_slot: dict[int, tuple[list[bytes], list[bytes]]] = {}
        for key, value in zip(keys, values):
            ks, vs = by_slot.setdefault(key_slot(key), ([], []))
            ks.append(key)
            vs.append(value)
        size = self.config.batch_size
        calls = [
            (ks[start : start + size], vs[start : start + size])
            for ks, vs in by_slot.values()
            for start in range(0, len(ks), size)
        ]
        if not self._script_loaded:
            self._call("write", self.client.script_load, GUARDED_SET)  # SCRIPT LOAD goes to every primary
            self._script_loaded = True
        written = 0
        for attempt in range(2):
            pipe = self.client.pipeline()
            for ks, vs in calls:
                # (ClusterPipeline blocks its evalsha() method; the command itself routes by the keys' slot)
                pipe.execute_command("EVALSHA", self._script.sha, len(ks), *ks, ttl, *vs)
            results = self._call("write", pipe.execute, raise_on_error=False)
            missing = []
            for call, result in zip(calls, results):
                if isinstance(result, NoScriptError) and attempt == 0:
                    missing.append(call)  # a node that lost or never saw the script (restarted, added, failed over)
                elif isinstance(result, Exception):
                    raise self._translate_or(result, "write")
                else:
                    written += int(result)
            if not missing:
                break
            self._call("write", self.client.script_load, GUARDED_SET)
            calls = missing
        return written

    def _translate_or(self, exc: Exception, what: str) -> Exception:
        return _translate(exc, self.address, what, self.config) or exc

    def delete(self, keys: Sequence[bytes]) -> int:
        """Deletes ``keys``; returns how many existed."""
        if not keys:
            return 0
        size = self.config.batch_size
        if self.config.cluster:  # the cluster client splits DEL by slot and pipelines per node
            return sum(self._call("delete", self.client.delete, *keys[s : s + size]) for s in range(0, len(keys), size))

        def delete_all() -> list[int]:
            pipe = self.client.pipeline(transaction=False)
            for start in range(0, len(keys), size):
                pipe.delete(*keys[start : start + size])
            return pipe.execute()

        return sum(self._call("delete", delete_all))

    def settle(self, layout: OnlineLayout, keys: pa.Array, table: pa.Table,
               instants: str | Sequence[str] | pa.Array | pa.ChunkedArray, snapshot_instant: str,
               ttl_seconds: int | None = None) -> tuple[int, int]:
        """Sets ``keys`` to what an offline snapshot (as of commit ``snapshot_instant``) says they hold: the row of
        ``table`` with that key (``instants``: the commit that wrote each row), or nothing (the key is deleted) if
        ``table`` has none. Unlike :meth:`write`, an older value replaces a newer one (a time series' newest row
        was deleted offline: its entity serves the latest remaining one), but never a value written by a commit
        after the snapshot. Atomic per key. Returns (keys deleted, keys whose value changed)."""
        if not len(keys):
            return 0, 0
        values: dict[bytes, bytes] = {}
        if table.num_rows:
            values = dict(zip(layout.encode_keys(table), layout.encode_values(table, instants)))
        listed = keys.to_pylist()
        settled = [values.get(key, b"") for key in listed]
        instant, ttl = _instant_bytes(snapshot_instant), _ttl(ttl_seconds)
        # (one key per call in a cluster: a script may only touch keys of one slot; settling is rare and small)
        size = 1 if self.config.cluster else self.config.batch_size
        deleted = replaced = 0
        for start in range(0, len(listed), size):
            part, args = listed[start : start + size], [instant, ttl, *settled[start : start + size]]
            gone, changed = self._call(
                "write", lambda: self._settle_script(keys=part, args=args, client=self.client))
            deleted, replaced = deleted + int(gone), replaced + int(changed)
        return deleted, replaced

    def set_marker(self, key: str, value: str) -> None:
        self._call("marker", lambda: self.client.set(key, value))

    def get_marker(self, key: str) -> str | None:
        raw = self._call("marker", lambda: self.client.get(key))
        return raw.decode() if raw is not None else None

    # --- reads ----------------------------------------------------------------------------------------------

    def mget(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Raw values of ``keys`` in one round trip (one per node in cluster mode)."""
        if not keys:
            return []
        if self.config.cluster:
            return self._call("read", self.client.mget_nonatomic, list(keys))
        from fs_dagster.core.online import pipeline

        return self._call("read", self._on_connection, pipeline.mget, keys)

    @property
    def packs_reads(self) -> bool:
        """Whether :meth:`mget_pieces` takes pieces as packed MGET commands (bytes; see
        :func:`pipeline.packed_mget_of_texts`): a standalone server (in cluster mode a piece must be its keys)."""
        return not self.config.cluster

    def mget_pieces(self, pieces: Sequence[Callable[[], Sequence[bytes] | bytes]],
                    handle: Callable[[int, list[bytes | None]], Any]) -> list[Any]:
        """``handle(i, values of piece i's keys)`` for every piece, pieces pipelined in one round trip: each piece's
        keys are built (``pieces[i]()``) while the server looks up the previous one, and each piece is handled while
        the server answers the later ones. Returns the handles' results (one MGET each in cluster mode)."""
        if self.config.cluster:
            return [handle(i, self.mget(piece())) for i, piece in enumerate(pieces)]
        from fs_dagster.core.online import pipeline

        return self._call("read", self._on_connection, pipeline.mget_pieces, pieces, handle)

    def get(self, layout: OnlineLayout, entities: Iterable[Sequence[Any]]) -> list[tuple | None]:
        keys = [layout.key_for(e) for e in entities]
        raw = self.mget(keys)
        try:
            return layout.decode_many(raw)
        except (ValueError, TypeError):
            check_values(raw, layout, lambda i: keys[i].decode(errors="replace"))
            raise

    def scan_keys(self, match: str, count: int = 1000) -> Iterator[bytes]:
        """Keys matching ``match`` (every primary in cluster mode); errors are translated as for other calls (a
        scan is not retried on a relocated embedded server: its cursor belongs to the old one)."""
        iterator = self._translated("scan", self.client.scan_iter, match=match, count=count)
        while True:
            try:
                key = self._translated("scan", next, iterator)
            except StopIteration:
                return
            yield key

    def ping(self) -> bool:
        return bool(self._call("ping", lambda: self.client.ping()))

    def close(self) -> None:
        """Closes the connections (they reconnect if the store is used again)."""
        _close_quietly(self.client)
        try:
            self.client.connection_pool.disconnect()  # (close() leaves a pool it was given open)
        except Exception:
            pass

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OnlineStore({self.address}{', cluster' if self.config.cluster else ''})"


# --- connection helpers -----------------------------------------------------------------------------------


def _client_arguments(config: OnlineStoreConfig, url: str) -> tuple[str, dict[str, Any]]:
    """The URL to hand to valkey-py (TLS scheme if TLS is on, no credentials) and the client keyword arguments."""
    from valkey.backoff import ExponentialBackoff
    from valkey.exceptions import ConnectionError as ValkeyConnectionError
    from valkey.exceptions import TimeoutError as ValkeyTimeoutError
    from valkey.retry import Retry

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise FeatureStoreError(f"online store URL {_redact(url)!r} must start with one of {', '.join(SCHEMES)}://")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if config.username is not None:
        username = config.username
    if config.password is not None:
        password = config.password
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if config.tls and scheme != "unix":
        scheme = "valkeys"  # valkey-py picks its TLS connection class from the scheme (an ``ssl`` kwarg breaks it)
    url = urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))

    kwargs: dict[str, Any] = {
        "socket_timeout": config.socket_timeout,
        "socket_connect_timeout": config.socket_timeout,
        "socket_keepalive": True,
    }
    if config.retries > 0:
        kwargs["retry"] = Retry(ExponentialBackoff(cap=0.5, base=0.05), config.retries)
        if not config.cluster:  # the cluster client retries through cluster_error_retry_attempts instead
            kwargs["retry_on_error"] = [ValkeyConnectionError, ValkeyTimeoutError]
    if username is not None:
        kwargs["username"] = username
    if password is not None:
        kwargs["password"] = password
    if scheme in TLS_SCHEMES:
        for option in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            path = getattr(config, option)
            if path is not None and not os.path.isfile(path):
                raise FeatureStoreError(f"online store {option} {path!r} does not exist or is not a file")
        kwargs.update(
            ssl_ca_certs=config.tls_ca_file,  # None: the system trust store
            ssl_certfile=config.tls_cert_file,
            ssl_keyfile=config.tls_key_file,
            ssl_cert_reqs=ssl.CERT_REQUIRED if config.tls_verify else ssl.CERT_NONE,
        )
        if not config.cluster:  # the cluster client does not accept it (and never checks host names)
            kwargs["ssl_check_hostname"] = config.tls_verify and config.tls_verify_hostname
    kwargs.update(config.extra)
    return url, kwargs


def _make_client(config: OnlineStoreConfig, url: str, kwargs: dict[str, Any]) -> Any:
    import valkey
    from valkey.cluster import ValkeyCluster

    if config.cluster:
        return ValkeyCluster.from_url(url, **kwargs)
    return valkey.Valkey.from_url(url, **kwargs)


_AUTH_MARKERS = ("WRONGPASS", "NOAUTH", "invalid username-password", "Authentication required", "invalid password",
                 "without any password configured", "no password is set", "Invalid Username or Password")
_UNAVAILABLE_MARKERS = ("cannot be connected", "Connection refused", "Timeout", "timed out", "CLUSTERDOWN",
                        "No connection", "Error connecting")


def _translate(exc: BaseException, address: str, what: str, config: OnlineStoreConfig) -> FeatureStoreError | None:
    """A FeatureStoreError naming ``address`` for a valkey-py or socket error (None: not a server error)."""
    from valkey import exceptions as vx

    if not isinstance(exc, (vx.ValkeyError, vx.ValkeyClusterException, OSError)):
        return None
    message = str(exc) or type(exc).__name__
    username = config.username or (urlsplit(config.url).username if config.url else None)
    user = f"user {unquote(username)!r}" if username else "the default user"
    if isinstance(exc, vx.AuthenticationError) or any(m.lower() in message.lower() for m in _AUTH_MARKERS):
        return OnlineStoreAuthError(
            f"online store at {address}: authentication failed for {user} ({message}); "
            "check the password and username (OnlineStoreConfig.password/username or the URL)"
        )
    if isinstance(exc, (vx.NoPermissionError, vx.AuthorizationError)):
        return OnlineStoreAuthError(
            f"online store at {address}: permission denied by the server's ACL for {user} during {what} "
            f"({message}); the user needs the key pattern of key_prefix {config.key_prefix!r}* and the commands "
            "ping, get, set, getrange, mget, del, evalsha, script|load, script|exists, scan (and select for a database "
            "other than 0; msetnx, mset, watch, multi, exec and unwatch make writes faster)"
        )
    cert_error = _find(exc, ssl.SSLCertVerificationError)
    if cert_error is not None or "CERTIFICATE_VERIFY_FAILED" in message:
        reason = getattr(cert_error, "verify_message", None) or message
        return OnlineStoreUnavailable(
            f"online store at {address}: TLS certificate verification failed ({reason}); set tls_ca_file to the CA "
            "certificate that signed the server's certificate (and use the host name the certificate names)"
        )
    if _find(exc, ssl.SSLError) is not None:
        return OnlineStoreUnavailable(f"online store at {address}: TLS handshake failed during {what} ({message})")
    unavailable = (vx.ConnectionError, vx.TimeoutError, vx.ClusterDownError, vx.TryAgainError, vx.ReadOnlyError,
                   vx.OutOfMemoryError, OSError)
    if isinstance(exc, unavailable) or (
        isinstance(exc, vx.ValkeyClusterException) and any(m in message for m in _UNAVAILABLE_MARKERS)
    ):
        return OnlineStoreUnavailable(f"online store at {address} is unavailable ({what}): {message}")
    if isinstance(exc, (vx.ValkeyError, vx.ValkeyClusterException)):
        return OnlineStoreError(f"online store at {address} rejected {what}: {message}")
    return None


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _ttl(ttl_seconds: int | None) -> int:
    ttl = int(ttl_seconds or 0)
    if ttl < 0:
        raise ValueError(f"ttl_seconds must be positive or None, got {ttl_seconds}")
    return ttl


def _close_quietly(client: Any) -> None:
    try:
        client.close()
    except Exception:  # closing a broken connection must not hide the original error
        pass


def _address(url: str) -> str:
    """``host:port`` of a URL (the socket path of a unix:// URL), without credentials."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "unix":
        return parts.path or url
    host = parts.netloc.rsplit("@", 1)[-1]
    return host or url


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username}:***" if parts.username else ":***"
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))
