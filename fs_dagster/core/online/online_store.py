"""The online store on Valkey: guarded batch writes of the latest row per key, and one-round-trip reads.

Writes go through a server-side Lua script that compares the stored value's header (event time, then commit
instant) with the new one and writes only if the new one is not older, so a backfill of old partitions never
overwrites newer values, and of two rows with equal event times the later commit wins. Batches are pipelined.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import pyarrow as pa

from fs_dagster.core.errors import FeatureStoreError
from fs_dagster.core.online.codec import HEADER_BYTES, OnlineLayout

GUARDED_SET = """
local ttl = tonumber(ARGV[1])
local written = 0
for i, key in ipairs(KEYS) do
  local new = ARGV[i + 1]
  local old = redis.call('GETRANGE', key, 0, %d)
  if old == '' or old <= string.sub(new, 1, %d) then
    if ttl > 0 then redis.call('SET', key, new, 'EX', ttl) else redis.call('SET', key, new) end
    written = written + 1
  end
end
return written
""" % (HEADER_BYTES - 1, HEADER_BYTES)


class OnlineStoreUnavailable(FeatureStoreError, ConnectionError):
    """Valkey could not be reached; the message names the address. Offline data is unaffected."""


@dataclass(frozen=True)
class OnlineStoreConfig:
    """Where the online store lives.

    Args:
        url: ``valkey://[user:password@]host:port/db`` or ``valkeys://...`` for TLS; None = the embedded server
            of the store root (started on demand).
        password, username: ACL credentials (override the URL's).
        tls_ca_file, tls_cert_file, tls_key_file: TLS trust and client certificate; setting any enables TLS.
        cluster: talk to a Valkey Cluster (keys are routed by slot; vectors use one round trip per node).
        key_prefix: namespace for every key (projects are separated inside it as well).
        batch_size: keys per pipelined write command.
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

    @property
    def tls(self) -> bool:
        return bool(self.tls_ca_file or self.tls_cert_file) or (self.url or "").startswith(("valkeys://", "rediss://"))


class OnlineStore:
    """A connection to Valkey plus the operations the feature store needs.

    Example:
        online = OnlineStore.connect(OnlineStoreConfig(url="valkey://localhost:6379/0"))
        online.write(layout, table, instant="20240101120000123")
        online.get(layout, [("JFK", ts)])
    """

    def __init__(self, client: Any, config: OnlineStoreConfig, address: str) -> None:
        self.client = client
        self.config = config
        self.address = address
        self._script = client.register_script(GUARDED_SET)

    @classmethod
    def connect(cls, config: OnlineStoreConfig, embedded_root: str | None = None) -> OnlineStore:
        import valkey
        from valkey.cluster import ValkeyCluster

        kwargs: dict[str, Any] = {"socket_timeout": config.socket_timeout, "socket_connect_timeout": config.socket_timeout}
        if config.password is not None:
            kwargs["password"] = config.password
        if config.username is not None:
            kwargs["username"] = config.username
        if config.tls:
            kwargs.update(
                ssl=True,
                ssl_ca_certs=config.tls_ca_file,
                ssl_certfile=config.tls_cert_file,
                ssl_keyfile=config.tls_key_file,
                ssl_cert_reqs=ssl.CERT_REQUIRED if config.tls_ca_file else ssl.CERT_NONE,
                ssl_check_hostname=config.tls_verify_hostname and bool(config.tls_ca_file),
            )
        kwargs.update(config.extra)
        url = config.url
        if url is None:
            if embedded_root is None:
                raise FeatureStoreError("no online store URL and no store root for the embedded server")
            from fs_dagster.core.online.embedded import EmbeddedValkey

            url = EmbeddedValkey(embedded_root).ensure_running().url
        if url.startswith("valkeys://") or url.startswith("rediss://"):
            kwargs.pop("ssl", None)
        address = _address(url)
        try:
            if config.cluster:
                client = ValkeyCluster.from_url(url, **kwargs)
            else:
                client = valkey.Valkey.from_url(url, **kwargs)
            client.ping()
        except Exception as exc:  # valkey raises many connection error types; all mean "unreachable"
            raise OnlineStoreUnavailable(f"online store at {address} is unavailable: {exc}") from exc
        return cls(client, config, address)

    def _call(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        import valkey

        try:
            return fn(*args, **kwargs)
        except (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError, OSError) as exc:
            raise OnlineStoreUnavailable(f"online store at {self.address} is unavailable ({what}): {exc}") from exc

    # --- writes ---------------------------------------------------------------------------------------------

    def write(
        self, layout: OnlineLayout, table: pa.Table, instants: str | Sequence[str], ttl_seconds: int | None = None
    ) -> int:
        """Writes the rows (one per key; see module doc for the guard). Returns how many keys were written."""
        if table.num_rows == 0:
            return 0
        keys = layout.encode_keys(table)
        values = layout.encode_values(table, instants)
        return self.write_encoded(keys, values, ttl_seconds)

    def write_encoded(self, keys: list[bytes], values: list[bytes], ttl_seconds: int | None = None) -> int:
        ttl = int(ttl_seconds or 0)
        size = self.config.batch_size
        if self.config.cluster:
            return self._write_cluster(keys, values, ttl)
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(keys), size):
            self._script(keys=keys[start : start + size], args=[ttl, *values[start : start + size]], client=pipe)
        return sum(self._call("write", pipe.execute))

    def _write_cluster(self, keys: list[bytes], values: list[bytes], ttl: int) -> int:
        from valkey.crc import key_slot

        by_slot: dict[int, tuple[list[bytes], list[bytes]]] = {}
        for key, value in zip(keys, values):
            ks, vs = by_slot.setdefault(key_slot(key), ([], []))
            ks.append(key)
            vs.append(value)
        written = 0
        for ks, vs in by_slot.values():  # a script may only touch keys of one slot in a cluster
            written += self._call("write", self._script, keys=ks, args=[ttl, *vs])
        return written

    def delete(self, keys: Sequence[bytes]) -> int:
        if not keys:
            return 0
        if self.config.cluster:
            return sum(self._call("delete", self.client.delete, k) for k in keys)
        pipe = self.client.pipeline(transaction=False)
        size = self.config.batch_size
        for start in range(0, len(keys), size):
            pipe.delete(*keys[start : start + size])
        return sum(self._call("delete", pipe.execute))

    def set_marker(self, key: str, value: str) -> None:
        self._call("marker", self.client.set, key, value)

    def get_marker(self, key: str) -> str | None:
        raw = self._call("marker", self.client.get, key)
        return raw.decode() if raw is not None else None

    # --- reads ----------------------------------------------------------------------------------------------

    def mget(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Raw values of ``keys`` in one round trip (one per node in cluster mode)."""
        if not keys:
            return []
        if self.config.cluster:
            return self._call("read", self.client.mget_nonatomic, list(keys))
        return self._call("read", self.client.mget, keys)

    def get(self, layout: OnlineLayout, entities: Iterable[Sequence[Any]]) -> list[tuple | None]:
        keys = [layout.key_for(e) for e in entities]
        return layout.decode_many(self.mget(keys))

    def scan_keys(self, match: str, count: int = 1000) -> Iterable[bytes]:
        return self.client.scan_iter(match=match, count=count)

    def close(self) -> None:
        self.client.close()


def _address(url: str) -> str:
    rest = url.split("://", 1)[-1]
    rest = rest.rsplit("@", 1)[-1]
    return rest.split("/", 1)[0]
